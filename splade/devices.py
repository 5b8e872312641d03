"""Device, precision and training processes, decided where each task runs

The learner trains with ``learner.devices`` processes on each of
``learner.num_nodes`` nodes (Lightning Fabric's ``ddp`` strategy, through
xpm_torch's ``FabricConfiguration``): :func:`fabric` gives its Fabric
settings (what to ask the launcher for is in :mod:`splade.requirements`).
The Fabric settings of the processes are experimaestro ``Meta`` values: they
do not change the task identifiers.
"""

import logging

import torch
from xpm_torch.configuration import FabricConfiguration

from splade.workarounds.lightning import die_with_parent
from splade.workarounds.xpm_torch import check_launches_without_function

logger = logging.getLogger(__name__)


#: The precisions resolved where the task runs
AUTOMATIC = ("auto", "auto-bf16")


def resolve_precision(precision: str) -> str:
    """``auto``: mixed precision (``16-mixed``) on a GPU, ``32-true`` on a
    CPU; ``auto-bf16``: ``bf16-mixed`` on a GPU that has bfloat16 (Ampere
    and later; what LLMs are trained in), ``16-mixed`` on another GPU,
    ``32-true`` on a CPU"""
    if not torch.cuda.is_available():
        return "32-true"
    if precision == "auto-bf16" and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "16-mixed"


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
        if self.precision not in AUTOMATIC:
            fabric = super()._get_fabric(**kwargs)
        else:
            resolved = FabricConfiguration.C(
                precision=resolve_precision(self.precision),
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
