"""experimaestro launchers for a Slurm cluster

Copy this file to ~/.config/experimaestro/launchers.py on the machine that
runs ``experimaestro run-experiment`` (or pass ``--xpm-config-dir
launchers/slurm``), and adapt the partitions below to your cluster. A task
goes to the first partition whose nodes fit its requirements (memory, GPUs,
duration); the experiment driver keeps running on the login node and submits
jobs with sbatch.

A task that asks for several GPUs (``cuda(mem=24G)*4``: the learner with
``learner.devices: 4``) runs one Slurm task per GPU on one node
(``--ntasks-per-node=4 --gpus-per-node=4``), as Lightning Fabric expects
(``SLURM_NTASKS_PER_NODE`` equal to its ``devices``); the memory and cores
asked for are the node's, shared between its tasks. The experiment sets
``--nodes`` for ``learner.num_nodes`` (experimaestro's requirements cannot
say it; see ``splade.devices.learner_launcher``).
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
            gpus = len(match.requirement.cuda_gpus)
            # one task (process) per GPU, each with its share of the cores
            tasks = max(gpus, 1)
            return SlurmLauncher(
                options=SlurmOptions(
                    partition=partition,
                    nodes=1,
                    ntasks_per_node=tasks,
                    gpus_per_node=gpus or None,
                    cpus_per_task=str(max(match.requirement.cpu.cores // tasks, 1)),
                    time=f"{int(match.requirement.duration // 60)}",
                    mem=f"{memory // 2**20}M" if memory else None,
                    **options,
                )
            )
    return None
