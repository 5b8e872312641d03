"""Work-arounds for killed and concurrent runs (tests: tests/test_reliability.py)

xpm_torch 0.3.1 resumes a killed ``Learner`` from its last checkpoint
(``TrainerContext.load_bestcheckpoint``, xpm_torch/trainers/context.py:323),
and experimaestro 2.7 keeps the job folder of a task that is not a
``ResumableTask`` (it only warns, experimaestro/scheduler/base.py:1441).
"""

import logging
from shutil import rmtree

from xpm_torch.learner import LearnerListener, LearnerListenerStatus
from xpm_torch.trainers.context import TrainerContext, TrainState

logger = logging.getLogger(__name__)


class StaleCheckpointsCleaner(LearnerListener):
    """Removes the full checkpoints (model, optimizer and sampler states) of
    the epochs before the current one

    ``TrainerContext.save_checkpoint`` (xpm_torch 0.3.1,
    xpm_torch/trainers/context.py:360) saves the checkpoint of epoch k, then
    removes the one of epoch k-1: a kill between the two leaves both. After a
    restart, the learner loads epoch k and later removes only that one, so the
    checkpoint of epoch k-1 stays for good (one more full copy per such kill).
    Listeners are called after each checkpoint is saved (and with the state
    loaded at a restart): this one removes every other epoch checkpoint.
    """

    def __call__(self, state: TrainState) -> LearnerListenerStatus:
        # state.path is the saved (or loaded) checkpoint, None on the ranks
        # that do not save
        if state.path is not None:
            for path in state.path.parent.glob(f"{TrainerContext.PREFIX}*"):
                if path != state.path:
                    rmtree(path, ignore_errors=True)
        return LearnerListenerStatus.NO_DECISION


def keep_done_markers():
    """Makes this process's experimaestro scheduler keep the ``.done`` marker
    of a job that another process finished while this one waited for it

    experimaestro 2.7's ``Scheduler.aio_start`` (scheduler/base.py:1349-1464)
    takes the job lock, then removes the ``.done`` and ``.failed`` markers and
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
    from experimaestro.scheduler.base import Scheduler

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
