"""Refuses (and records) any network access that leaves the machine

Installed in the test process by conftest.py, and in every process of the
end-to-end run as a ``sitecustomize`` module. Attempts are appended to the
file named by ``$SPLADE_TEST_NETWORK_LOG`` when it is set; each process that
installs the guard appends its process id and command line to the file named
by ``$SPLADE_TEST_GUARD_LOG`` (so that a test can check that job processes
were guarded).
"""

import os
import socket
import sys

LOCAL = {"localhost", "127.0.0.1", "::1", "", None}


def _refuse(what):
    if path := os.environ.get("SPLADE_TEST_NETWORK_LOG"):
        with open(path, "a") as fp:
            fp.write(f"{os.getpid()} {what}\n")
    raise OSError(f"Network access attempted during tests: {what}")


def install():
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo
    if path := os.environ.get("SPLADE_TEST_GUARD_LOG"):
        with open(path, "a") as fp:
            fp.write(f"{os.getpid()} {' '.join(sys.argv)}\n")

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOCAL:
            _refuse(address)
        return connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL:
            _refuse(host)
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.getaddrinfo = guarded_getaddrinfo
    return connect, getaddrinfo


def uninstall(saved):
    socket.socket.connect, socket.getaddrinfo = saved
