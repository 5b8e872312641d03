"""Device and precision, decided where the task runs"""

import torch
from xpm_torch.configuration import FabricConfiguration


class AutoFabricConfiguration(FabricConfiguration):
    """Lightning Fabric configuration whose ``auto`` precision is resolved
    on the machine that runs the task: mixed precision (``16-mixed``) when a
    GPU is available, full precision (``32-true``) on CPU

    The experiment may be launched from a machine without GPU while its
    tasks run on GPU nodes, so the decision cannot be taken when the
    experiment is built. ``_get_fabric`` is the hook that xpm_torch's
    ``FabricConfigurationBase`` declares for building the Fabric.
    """

    # The identifier of the class when it was in splade/fabric.py
    __xpmid__ = "splade.fabric.autofabricconfiguration"

    def _get_fabric(self, **kwargs):
        if self.precision != "auto":
            return super()._get_fabric(**kwargs)
        resolved = FabricConfiguration.C(
            precision="16-mixed" if torch.cuda.is_available() else "32-true",
            torch_fp32_precision=self.torch_fp32_precision,
            num_nodes=self.num_nodes,
            devices=self.devices,
            strategy=self.strategy,
            accelerator=self.accelerator,
        ).instance()
        return resolved.get_fabric(**kwargs)


def fabric(precision: str) -> FabricConfiguration:
    """The fabric configuration for a precision (``auto`` or a Lightning
    precision string)"""
    return AutoFabricConfiguration.C(precision=precision)
