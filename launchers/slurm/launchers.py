"""experimaestro launchers for a Slurm cluster

Copy this file to ~/.config/experimaestro/launchers.py on the machine that
runs ``experimaestro run-experiment`` (or pass ``--xpm-config-dir
launchers/slurm``), and adapt the partitions below to your cluster. A task
goes to the first partition whose nodes fit its requirements (memory, GPUs,
duration); the experiment driver keeps running on the login node and submits
jobs with sbatch.
"""

from experimaestro.launcherfinder.specs import (
    CPUSpecification,
    CudaSpecification,
    HostRequirement,
    HostSpecification,
)
from experimaestro.launchers.slurm import SlurmLauncher, SlurmOptions

GiB = 1024**3
DAY = 24 * 3600

#: (partition name, what one node offers, Slurm options)
PARTITIONS = [
    (
        "cpu",
        HostSpecification(
            cpu=CPUSpecification(cores=32, memory=128 * GiB), max_duration=3 * DAY
        ),
        {},
    ),
    (
        "gpu-24g",
        HostSpecification(
            cpu=CPUSpecification(cores=16, memory=96 * GiB),
            cuda=[CudaSpecification(memory=24 * GiB) for _ in range(4)],
            max_duration=5 * DAY,
        ),
        {},
    ),
    (
        "gpu-80g",
        HostSpecification(
            cpu=CPUSpecification(cores=32, memory=256 * GiB),
            cuda=[CudaSpecification(memory=80 * GiB) for _ in range(4)],
            max_duration=5 * DAY,
        ),
        {},
    ),
]


def find_launcher(requirements: HostRequirement, tags: frozenset[str] = frozenset()):
    for partition, host, options in PARTITIONS:
        if match := requirements.match(host):
            memory = match.requirement.cpu.memory
            return SlurmLauncher(
                options=SlurmOptions(
                    partition=partition,
                    gpus_per_node=len(match.requirement.cuda_gpus) or None,
                    cpus_per_task=str(max(match.requirement.cpu.cores, 1)),
                    time=f"{int(match.requirement.duration // 60)}",
                    mem=f"{memory // 2**20}M" if memory else None,
                    **options,
                )
            )
    return None
