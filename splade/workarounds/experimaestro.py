"""Work-arounds for experimaestro 2.7

- :func:`keep_done_markers`: a job that another experiment finished while
  this one waited for its lock is run again;
- :func:`command_line`: ``experimaestro run-experiment`` ignores the keys of
  the YAML files and ``-c`` options that are not configuration fields (a typo
  such as ``lamda_d`` leaves the default value in place without a word); the
  raw configuration is read from the command's frame to find them.

Tests of the upstream behaviour: ``tests/unit/test_workarounds.py``,
``tests/pipeline/test_experiment_failures.py`` and
``tests/pipeline/test_reliability.py``.
"""

import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from experimaestro.scheduler.base import Scheduler

logger = logging.getLogger(__name__)


def keep_done_markers():
    """Makes this process's experimaestro scheduler keep the ``.done`` marker
    of a job that another process finished while this one waited for it

    experimaestro 2.7's ``Scheduler.aio_start`` (scheduler/base.py:1349-1464)
    takes the job lock, then removes the ``.done`` and ``.failed`` markers
    (``Scheduler._cleanup_job_marker_files``, scheduler/base.py:821) and
    starts the job without checking again whether it is done. When two
    experiments (e.g. ``debug.yaml`` and ``debug_sweep.yaml``, which share the
    BM25 tasks) submit the same job at the same moment, the second one waits
    for the lock held by the first one's job process, then removes its
    ``.done`` marker and runs the job again. With the marker kept, the job
    process started by the second one finds it and exits without running the
    task (experimaestro/run.py:659).

    Runs of the same experiment do not need this: the experiment lock makes
    the second one wait for the end of the first one.
    """
    cleanup = Scheduler._cleanup_job_marker_files
    if getattr(cleanup, "keeps_done_markers", False):
        return

    def cleanup_unless_done(self, job):
        if job.donepath.is_file():
            logger.info("Job %s was done meanwhile: keeping its marker", job)
            return
        cleanup(self, job)

    cleanup_unless_done.keeps_done_markers = True
    Scheduler._cleanup_job_marker_files = cleanup_unless_done


#: Function of experimaestro's command line that holds the raw configuration
CLI_FUNCTION = "experiments_cli"
CLI_LOCALS = ("configuration", "yaml_file", "extra_conf")


def command_line() -> Optional[Dict[str, Any]]:
    """The merged configuration (YAML files and ``-c`` values, before
    validation), YAML file and ``-c`` values of the running
    ``experimaestro run-experiment`` command; None when the experiment is
    run otherwise (e.g. by the tests)

    Read from the locals of ``experiments_cli`` (experimaestro 2.7,
    experimaestro/experiments/cli.py:238-309): experimaestro gives the
    experiment the validated configuration only, where unknown keys are gone.
    """
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == CLI_FUNCTION and "configuration" in frame.f_locals:
            local = frame.f_locals
            return {
                "configuration": local["configuration"],
                "yaml_file": Path(local["yaml_file"]),
                "overrides": list(local.get("extra_conf") or []),
            }
        frame = frame.f_back
    if "run-experiment" in sys.argv:
        raise RuntimeError(
            f"splade reads the raw configuration from experimaestro's"
            f" {CLI_FUNCTION}() (experimaestro 2.7): not found in this"
            " experimaestro version; see splade/workarounds/experimaestro.py"
        )
    return None


def raise_if_failed(xp):
    """Raises ``FailedExperiment`` when a job of the experiment failed, once
    every job has ended

    experimaestro 2.7's ``experiment.wait()`` logs "Experiment Failed: N
    failed jobs" (scheduler/experiment.py:837) and returns:
    ``experimaestro run-experiment`` then exits with status 0, so that a
    script or CI cannot tell a failed run from a finished one. With this, the
    command reports the failed jobs and exits with status 1.
    """
    from experimaestro.scheduler.experiment import FailedExperiment

    xp.wait()
    if xp.failed:
        logs = "; ".join(str(job.stderr) for job in xp.failedJobs.values())
        raise FailedExperiment(f"{len(xp.failedJobs)} job(s) failed (logs: {logs})")
