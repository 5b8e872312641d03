"""Builds the task graph of a recipe without running anything, and returns
the submitted tasks (configuration objects) for inspection"""

from pathlib import Path
from typing import List
from unittest.mock import patch

from experimaestro import experiment
from experimaestro.core.objects.config import ConfigInformation
from experimaestro.scheduler.workspace import RunMode


def dry_run(cfg, workdir: Path) -> List:
    import splade.experiment as module

    submitted = []
    submit = ConfigInformation.submit

    def record(self, *args, **kwargs):
        submitted.append(self.pyobject)
        return submit(self, *args, **kwargs)

    with patch.object(ConfigInformation, "submit", record):
        with experiment(
            workdir,
            cfg.id,
            run_mode=RunMode.DRY_RUN,
            register_signals=False,
            no_environmental_impact=True,
        ) as xp:
            helper = module.run
            helper.xp = xp
            helper.callable(helper, cfg)
    return submitted


def of_type(tasks, cls):
    return [task for task in tasks if isinstance(task, cls)]


def dataset_id(data) -> str:
    """datamaestro id of a dataset, without its repository suffix"""
    return data.id.split("@")[0]
