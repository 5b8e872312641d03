"""Work-arounds for the libraries the package builds on, one module per
library: :mod:`.xpmir`, :mod:`.xpm_torch`, :mod:`.experimaestro`,
:mod:`.datamaestro_ir`, :mod:`.impact_index`

Each one names the library version, the failing call and its upstream
location, and has a test that asserts the upstream behaviour
(``tests/unit/test_workarounds.py``, ``tests/unit/test_engines.py``,
``tests/pipeline/test_reliability.py``...): when upstream fixes it, the test
fails and the work-around can go.

Some of them, and the package's faster SPLADE encoder
(:mod:`splade.encoders`), rely on private attributes of the libraries.
:func:`check_private_hooks` checks, when an experiment starts, that the
installed versions still have them, so that a renamed attribute stops the
command at once with a clear message instead of failing a task hours later.
"""

import inspect
from typing import List


def _assigns(function, *names: str) -> bool:
    """Whether the source of ``function`` assigns ``self.<name>`` for each
    name (instance attributes cannot be checked on the class)"""
    source = inspect.getsource(function)
    return all(f"self.{name} =" in source for name in names)


def missing_private_hooks() -> List[str]:
    """The private attributes the package relies on that the installed
    libraries do not have"""
    from datamaestro_ir.data import CompressedDocumentStore
    from datamaestro_ir.data.distillation import PairwiseDistillationSamplesTSV
    from experimaestro.core.objects.config import ConfigInformation
    from experimaestro.scheduler.base import Scheduler
    from experimaestro.scheduler.interfaces import BaseJob
    from experimaestro.scheduler.jobs import Job
    from xpm_torch.configuration import FabricConfigurationBase
    from xpm_torch.learner import UpdateModelHook
    from xpm_torch.trainers.context import TrainerContext
    from xpmir.letor.samplers.adapters import BufferedProcessingDataset
    from xpmir.neural.splade import PyTorchAggregationModule, SpladeTextEncoder

    hooks = [
        # keep_done_markers (.experimaestro)
        (Scheduler, "_cleanup_job_marker_files", "experimaestro 2.7"),
        # keep_job_directories (.experimaestro)
        (Job, "load_from_disk", "experimaestro 2.7"),
        # widen_type_variables (.experimaestro)
        (ConfigInformation, "check_typevar", "experimaestro 2.7"),
        # documents_int (.datamaestro_ir)
        (CompressedDocumentStore, "_store", "datamaestro-ir 0.5.0"),
        # StaleCheckpointsCleaner (.xpm_torch)
        (TrainerContext, "PREFIX", "xpm_torch 0.3.1"),
        # AutoFabricConfiguration (splade.devices)
        (FabricConfigurationBase, "_get_fabric", "xpm_torch 0.3.1"),
        # DistillationSamplesSampler, ProcessedSampler (.xpmir)
        (PairwiseDistillationSamplesTSV, "_parse_line", "datamaestro-ir 0.5.0"),
        (BufferedProcessingDataset, "_flush", "xpmir 1.5.0"),
    ]
    missing = [
        f"{owner.__module__}.{owner.__qualname__}.{name} (as in {version})"
        for owner, name, version in hooks
        if not hasattr(owner, name)
    ]
    # SpladeMaxEncoder (splade.encoders): the backbone and head that
    # SpladeTextEncoder.__initialize__ sets, and the head's two parts
    if not _assigns(SpladeTextEncoder.__initialize__, "_backbone", "_head"):
        missing.append("xpmir SpladeTextEncoder._backbone/_head (as in xpmir 1.5.0)")
    if not _assigns(PyTorchAggregationModule.__init__, "transform", "decoder"):
        missing.append(
            "xpmir PyTorchAggregationModule.transform/decoder (as in xpmir 1.5.0)"
        )
    # keep_job_directories (.experimaestro): the flag and the count it sets
    if not _assigns(Job.__init__, "resumable"):
        missing.append("experimaestro Job.resumable (as in experimaestro 2.7)")
    if "self.retry_count =" not in inspect.getsource(BaseJob._load_from_status_dict):
        missing.append("experimaestro Job.retry_count (as in experimaestro 2.7)")
    # SynchronisedValidationListener (.xpm_torch): the hook's target
    if not _assigns(UpdateModelHook.__init__, "target_obj"):
        missing.append("xpm_torch UpdateModelHook.target_obj (as in xpm_torch 0.3.1)")
    # check_launches_without_function (.xpm_torch): Lightning's launchers
    try:
        from lightning.fabric.strategies.launchers.multiprocessing import (  # noqa: F401
            _MultiProcessingLauncher,
        )
        from lightning.fabric.strategies.launchers.xla import _XLALauncher  # noqa: F401
    except ImportError:
        missing.append("lightning _MultiProcessingLauncher, _XLALauncher (2.6)")
    return missing


def check_private_hooks():
    """Raises a RuntimeError naming the missing private attributes"""
    if missing := missing_private_hooks():
        raise RuntimeError(
            "The installed libraries lack attributes that splade relies on"
            " (see splade/workarounds/__init__.py): " + "; ".join(missing)
        )
