"""Device and precision, decided where the task runs"""

import torch
from xpm_torch.configuration import FabricConfiguration


class AutoFabricConfiguration(FabricConfiguration):
    """Lightning Fabric configuration whose ``auto`` precision is resolved
    on the machine that runs the task: mixed precision (``16-mixed``) when a
    GPU is available, full precision (``32-true``) on CPU

    The experiment may be launched from a machine without GPU while its
    tasks run on GPU nodes, so the decision cannot be taken when the
    experiment is built.
    """

    def _get_fabric(self, **kwargs):
        if self.precision == "auto":
            self.precision = "16-mixed" if torch.cuda.is_available() else "32-true"
        return super()._get_fabric(**kwargs)


def fabric(precision: str) -> FabricConfiguration:
    """The fabric configuration for a precision (``auto`` or a Lightning
    precision string)"""
    return AutoFabricConfiguration.C(precision=precision)
