"""Work-arounds for experimaestro 2.7

- :func:`keep_done_markers`: a job that another experiment finished while
  this one waited for its lock is run again;
- :func:`widen_type_variables`: two models of different configuration
  classes (e.g. a BERT and an MNTP-adapted decoder) cannot be evaluated on
  the same test collection;
- :func:`command_line`: ``experimaestro run-experiment`` ignores the keys of
  the YAML files and ``-c`` options that are not configuration fields (a typo
  such as ``lamda_d`` leaves the default value in place without a word); the
  raw configuration is read from the command's frame to find them;
- :func:`keep_job_directories`: the folder of a job that starts again (a
  killed learner's checkpoints) is to be removed by a future experimaestro
  unless the task is a ``ResumableTask``, which a later run never starts again
  once it failed 3 times;
- :func:`quiet_ignored_generated_values`: a field declared
  ``ignore_generated=True`` logs ``WARN root: Ignoring <field>`` each time it
  does what it declares (xpm_torch's validation listener, ``listener``).

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
from experimaestro.scheduler.jobs import Job

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


def widen_type_variables():
    """Makes experimaestro bind a type variable to the closest common base
    of two sibling classes instead of refusing the second one

    experimaestro 2.7's ``ConfigInformation.set`` (core/objects/config.py:446)
    fuses the type-variable bindings of a parameter's value with those of
    the configuration it is set in, in both directions, and
    ``ConfigInformation.check_typevar`` (config.py:483) raises a TypeError
    when the two classes are siblings. The bindings are per type variable,
    not per generic instance: xpmir's ``HFModel[ConfigT]`` over an
    ``HFConfigID`` (a hub model) and over an ``MNTPModel`` (a task's output)
    are then refused in one tree, and a configuration shared by two trees
    (a test collection, evaluated for both models) carries the first
    binding into the second. Siblings under the type variable's bound are
    bound to their closest common base (still under the bound); anything
    else is refused as before.
    """
    from experimaestro.core.objects.config import ConfigInformation

    check = ConfigInformation.check_typevar
    if getattr(check, "widens", False):
        return

    def check_or_widen(self, typevar, v):
        try:
            return check(self, typevar, v)
        except TypeError:
            bound = typevar.__bound__
            current = self.concrete_typevars.get(typevar)
            common = next(
                (
                    base
                    for base in v.__mro__
                    if current is not None
                    and issubclass(current, base)
                    and bound is not None
                    and issubclass(base, bound)
                ),
                None,
            )
            if common is None:
                raise
            self.concrete_typevars[typevar] = common

    check_or_widen.widens = True
    check_or_widen.__wrapped__ = check
    ConfigInformation.check_typevar = check_or_widen


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


def keep_job_directories():
    """Makes experimaestro treat every job of this process as resumable: its
    folder is kept when it starts again, and a new run of the command starts
    a job that failed again, as for any task

    experimaestro 2.7 warns, when a job starts and its folder exists, "In a
    future version, directory will be cleaned up for non-resumable tasks
    (...)" (``Scheduler.aio_start``, scheduler/base.py:1441-1455), unless its
    task is a ``ResumableTask`` (``Job.resumable``, scheduler/jobs.py:196).
    The folder exists before the first start too (experimaestro makes it when
    the job is submitted), so that every run warns, once per task type: the
    package's tasks, xpmir's (BM25 index, evaluation) and xpm_torch's
    learner, which resumes from the checkpoints in its folder after a kill.
    The clean-up would make a killed training start again from scratch, and
    remove what a killed index build or evaluation left to look at.

    A ``ResumableTask`` has a retry count, kept in its ``status.json``
    (``Job.retry_count``, scheduler/interfaces.py:1263) and increased by each
    failure (scheduler/base.py:1613): once it reaches ``max_retries`` (3), no
    later run starts the job again (scheduler/base.py:1108-1119, "not
    restarting", at the INFO level; the run then ends with the failed job).
    The count is reset when a run first loads the job from its folder, so that
    running the command again starts the failed job again (as for the tasks
    that are not resumable); within a run, ``max_retries`` still bounds the
    restarts after a time-out (scheduler/base.py:1620-1638).
    """
    load_from_disk = Job.load_from_disk
    if getattr(load_from_disk, "keeps_job_directories", False):
        return

    def load_as_resumable(self):
        load_from_disk(self)
        # status.json has the flag of the run that wrote it
        self.resumable = True
        if not getattr(self, "_splade_loaded", False):
            self._splade_loaded = True
            self.retry_count = 0

    load_as_resumable.keeps_job_directories = True
    Job.load_from_disk = load_as_resumable


class IgnoredGeneratedValues(logging.Filter):
    """Drops experimaestro's "Ignoring <field>" warning (see
    :func:`quiet_ignored_generated_values`)"""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg == "Ignoring %s"
            and Path(record.pathname).parts[-4:]
            == ("experimaestro", "core", "objects", "config.py")
        )


def quiet_ignored_generated_values():
    """Silences the warning that experimaestro 2.7 logs when a field declared
    ``field(ignore_generated=True)`` holds a configuration with generated
    values (``ConfigInformation.seal``, core/objects/config.py:652-658 and
    682-688: ``logging.warning("Ignoring %s", k)`` on the root logger, in the
    branch where the field *is* declared so, i.e. each time the declaration
    does what it says)

    Every run printed ``WARN root: Ignoring listener``: the best checkpoint of
    the validation (``ValidationListener.init_task``, xpmir/letor/
    validation.py:123-137) is loaded with ``ValidationSettings(listener=...)``
    (xpmir/letor/validation.py:34), whose ``listener`` is declared so: the
    listener's ``bestpath`` and ``info`` are paths generated in the learner's
    folder, which must not change the identifier of the checkpoint. Only this
    message, from that module, is dropped.
    """
    root = logging.getLogger()
    if not any(isinstance(f, IgnoredGeneratedValues) for f in root.filters):
        root.addFilter(IgnoredGeneratedValues())
