"""CPU time of every Python process of the end-to-end runs, to see where the
suite's time goes (installed with the network guard as a ``sitecustomize``
module, see conftest.user_environment)

When ``$SPLADE_TEST_CPU_LOG`` names a file, each process appends to it, when
it exits, a line ``user+system seconds <TAB> wall seconds <TAB> HOME <TAB>
command line``. ``python tests/support/cpu_account.py FILE`` sums them by task (the
job folders' ``jobs/<task>/``) and by HOME::

    SPLADE_TEST_CPU_LOG=/tmp/cpu.log python -m pytest -m slow
    python tests/support/cpu_account.py /tmp/cpu.log
"""

import atexit
import os
import re
import resource
import sys
import time
from collections import defaultdict


def install():
    path = os.environ.get("SPLADE_TEST_CPU_LOG")
    if not path:
        return
    start = time.monotonic()

    def record():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        command = " ".join(sys.argv).replace("\t", " ").replace("\n", " ")
        cpu, wall = usage.ru_utime + usage.ru_stime, time.monotonic() - start
        home = os.environ.get("HOME", "")
        line = f"{cpu:.2f}\t{wall:.2f}\t{home}\t{command}\n"
        with open(path, "a") as fp:
            fp.write(line)

    atexit.register(record)


def _what(command: str) -> str:
    if match := re.search(r"/jobs/([^/]+)/[0-9a-f]{64}/", command):
        return match.group(1)
    if "run-experiment" in command:
        return "experimaestro run-experiment"
    return command.split()[0].rsplit("/", 1)[-1] if command else "?"


def _home(home: str) -> str:
    """The test's folder (its name without pytest's number)"""
    parts = [part for part in home.split("/") if part]
    name = parts[-2] if parts and parts[-1] == "home" else (parts or ["-"])[-1]
    return re.sub(r"\d+$", "", name)


def report(path: str, top: int = 40):
    by_task, by_home = defaultdict(lambda: [0, 0.0]), defaultdict(lambda: [0, 0.0])
    total = 0.0
    with open(path) as fp:
        for line in fp:
            cpu, _, home, command = line.rstrip("\n").split("\t", 3)
            cpu = float(cpu)
            total += cpu
            for table, key in ((by_task, _what(command)), (by_home, _home(home))):
                table[key][0] += 1
                table[key][1] += cpu
    for title, table in (("task", by_task), ("home", by_home)):
        print(f"{'CPU s':>8} {'processes':>9}  {title}")
        for key, (count, cpu) in sorted(table.items(), key=lambda kv: -kv[1][1])[:top]:
            print(f"{cpu:8.0f} {count:9d}  {key}")
        print()
    print(f"{total:8.0f} CPU seconds in all")


if __name__ == "__main__":
    report(sys.argv[1])
