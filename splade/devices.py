"""Device, precision and training processes, decided where each task runs

The learner trains with ``learner.devices`` processes on each of
``learner.num_nodes`` nodes (Lightning Fabric's ``ddp`` strategy, through
xpm_torch's ``FabricConfiguration``): :func:`fabric` gives its Fabric
settings, :func:`node_requirement` what to ask the launcher for. The Fabric
settings of the processes are experimaestro ``Meta`` values: they do not
change the task identifiers.
"""

import copy
import logging
import os

import torch
from experimaestro.launcherfinder import find_launcher
from experimaestro.launcherfinder.parser import parse
from experimaestro.launcherfinder.specs import HostRequirement, RequirementUnion
from experimaestro.launchers.slurm import SlurmLauncher
from xpm_torch.configuration import FabricConfiguration

from splade.configuration import ConfigurationError, Learner
from splade.workarounds.lightning import die_with_parent
from splade.workarounds.xpm_torch import check_launches_without_function

logger = logging.getLogger(__name__)


class AutoFabricConfiguration(FabricConfiguration):
    """Lightning Fabric configuration whose ``auto`` precision is resolved
    on the machine that runs the task: mixed precision (``16-mixed``) when a
    GPU is available, full precision (``32-true``) on CPU

    The experiment may be launched from a machine without GPU while its
    tasks run on GPU nodes, so the decision cannot be taken when the
    experiment is built. ``_get_fabric`` is the hook that xpm_torch's
    ``FabricConfigurationBase`` declares for building the Fabric.

    With several processes, it also checks, before anything is trained, that
    the strategy can be launched as xpm_torch's ``Learner`` does
    (:func:`~splade.workarounds.xpm_torch.check_launches_without_function`)
    and that the processes that take part are as many as configured (under
    Slurm, Lightning takes the number of processes from the job, not from
    ``devices``: a job with one task per node would silently train with one
    process per node).
    """

    # The identifier of the class when it was in splade/fabric.py
    __xpmid__ = "splade.fabric.autofabricconfiguration"

    def _get_fabric(self, **kwargs):
        if self.precision != "auto":
            fabric = super()._get_fabric(**kwargs)
        else:
            resolved = FabricConfiguration.C(
                precision="16-mixed" if torch.cuda.is_available() else "32-true",
                torch_fp32_precision=self.torch_fp32_precision,
                num_nodes=self.num_nodes,
                devices=self.devices,
                strategy=self.strategy,
                accelerator=self.accelerator,
            ).instance()
            fabric = resolved.get_fabric(**kwargs)
        if fabric is not None and self.devices.isdigit():
            expected = int(self.devices) * self.num_nodes
            check_launches_without_function(fabric)
            if fabric.world_size != expected:
                raise RuntimeError(
                    f"{fabric.world_size} training process(es) instead of"
                    f" {expected} (learner.devices={self.devices},"
                    f" learner.num_nodes={self.num_nodes}): under Slurm, the job"
                    f" must have {self.devices} task(s) per node on"
                    f" {self.num_nodes} node(s) (launchers/slurm/launchers.py)"
                )
            if expected > 1:
                die_with_parent()
            logger.info(
                "Fabric: %d process(es), strategy %s",
                fabric.world_size,
                type(fabric.strategy).__name__,
            )
        return fabric


def fabric(precision: str, devices: int = 0, num_nodes: int = 1) -> FabricConfiguration:
    """The fabric configuration for a precision (``auto`` or a Lightning
    precision string)

    :param devices: processes per node (0: Lightning's ``auto``, every GPU
        of the machine, as xpm_torch's default); with more than one process
        in all, the strategy is ``ddp`` (one process per device, launched as
        a script: see :func:`check_launches_without_function`)
    :param num_nodes: number of nodes
    """
    settings = {}
    if devices:
        settings["devices"] = str(devices)
    if num_nodes > 1:
        settings["num_nodes"] = num_nodes
    if devices * num_nodes > 1:
        settings["strategy"] = "ddp"
    return AutoFabricConfiguration.C(precision=precision, **settings)


def gather_rows(fabric, rows: torch.Tensor):
    """The rows of every training process, in the order of their ranks,
    and where this process's rows begin

    Gradients flow back to each process's rows (Lightning's ``all_gather``
    with ``sync_grads``: each process receives the sum over the processes
    of the gradients of its rows; data parallelism then averages the
    parameters' gradients). Processes may have different numbers of rows.
    """
    if fabric is None or fabric.world_size == 1:
        return rows, 0
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = fabric.all_gather(count).flatten().tolist()
    largest = max(counts)
    padded = rows
    if rows.shape[0] < largest:
        padding = rows.new_zeros((largest - rows.shape[0], *rows.shape[1:]))
        padded = torch.cat([rows, padding], dim=0)
    gathered = fabric.all_gather(padded, sync_grads=True)
    parts = [gathered[rank, :n] for rank, n in enumerate(counts)]
    return torch.cat(parts, dim=0), sum(counts[: fabric.global_rank])


def node_requirement(requirement: str, devices: int) -> HostRequirement:
    """What one node of the learner needs: ``devices`` times what one
    process needs (``requirement``, e.g. ``duration=4 days & cuda(mem=24G)
    & cpu(cores=8, mem=32G)`` gives, for 4 devices, 4 GPUs of 24 GB, 32
    cores and 128 GB of memory: ``cuda(mem=24G)*4`` in experimaestro's
    grammar); the duration is unchanged"""
    parsed = parse(requirement)
    if devices == 1:
        return parsed
    alternatives = []
    for simple in parsed.requirements:
        node = copy.deepcopy(simple)
        node.accelerators = simple.accelerators * devices
        node.cpu.cores = simple.cpu.cores * devices
        node.cpu.memory = simple.cpu.memory * devices
        alternatives.append(node)
    return RequirementUnion(*alternatives)


def learner_launcher(learner: Learner):
    """The launcher of the learner: the one ``launchers.py`` gives for what a
    node needs (:func:`node_requirement`), set, if it is a Slurm launcher,
    to run ``learner.devices`` tasks (processes) on each of
    ``learner.num_nodes`` nodes, as Lightning expects (its Slurm environment
    requires ``SLURM_NTASKS_PER_NODE == devices`` and ``SLURM_NNODES ==
    num_nodes``; experimaestro's job script runs ``srun`` on the job's
    tasks, and treats the ranks > 0 as followers)

    experimaestro's requirement grammar has no number of nodes: it is set
    here. Other launchers run the task on one machine, where Lightning
    starts the ``devices`` processes: ``num_nodes`` must then be 1.
    """
    launcher = find_launcher(node_requirement(learner.requirements, learner.devices))
    if isinstance(launcher, SlurmLauncher):
        options = {"nodes": learner.num_nodes, "ntasks_per_node": learner.devices}
        # the node's cores, shared by its tasks (launchers.py made one task
        # per GPU: another number of tasks, e.g. CPU processes, shares them)
        tasks, cores = launcher.options.ntasks_per_node, launcher.options.cpus_per_task
        if tasks and cores and tasks != learner.devices:
            options["cpus_per_task"] = str(
                max(int(cores) * tasks // learner.devices, 1)
            )
        configured = launcher.config(**options)
        # srun then ends the job when a task fails, instead of leaving the
        # others waiting for it (the environment of sbatch is the job's)
        environment = launcher.launcherenv or dict(os.environ)
        configured.launcherenv = {**environment, "SLURM_KILL_BAD_EXIT": "1"}
        return configured
    if learner.num_nodes > 1:
        raise ConfigurationError(
            f"learner.num_nodes: {learner.num_nodes} nodes need a launcher that"
            f" starts the task on each of them (Slurm, launchers/slurm), not"
            f" {launcher}"
        )
    return launcher
