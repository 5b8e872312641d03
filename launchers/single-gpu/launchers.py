"""experimaestro launchers for one machine with one GPU

Copy this file to ~/.config/experimaestro/launchers.py (or run with
``--xpm-config-dir launchers/single-gpu``) and describe your machine below:
each task then runs on it if its requirements fit, and experimaestro reports
the task that does not fit before anything starts.
"""

from experimaestro.connectors.local import LocalConnector
from experimaestro.launcherfinder.specs import (
    CPUSpecification,
    CudaSpecification,
    HostRequirement,
    HostSpecification,
)
from experimaestro.launchers.direct import DirectLauncher

GiB = 1024**3

#: This machine: 16 cores, 128 GiB of memory, one 80 GiB GPU (A100 / H100)
HOST = HostSpecification(
    cpu=CPUSpecification(cores=16, memory=128 * GiB),
    cuda=[CudaSpecification(memory=80 * GiB)],
    max_duration=30 * 24 * 3600,
)


def find_launcher(requirements: HostRequirement, tags: frozenset[str] = frozenset()):
    if requirements.match(HOST):
        return DirectLauncher(LocalConnector.instance())
    return None
