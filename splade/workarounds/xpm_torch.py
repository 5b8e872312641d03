"""Work-arounds for xpm_torch 0.3.1

xpm_torch resumes a killed ``Learner`` from its last checkpoint
(``TrainerContext.load_bestcheckpoint``, xpm_torch/trainers/context.py:323),
and experimaestro 2.7 keeps the job folder of a task that is not a
``ResumableTask`` (it only warns, experimaestro/scheduler/base.py:1441). Tests:
``tests/test_reliability.py``.
"""

from contextlib import contextmanager
from shutil import rmtree

from xpm_torch.learner import LearnerListener, LearnerListenerStatus
from xpm_torch.trainers.context import TrainerContext, TrainState


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

    # The identifier of the class when it was in splade/reliability.py
    __xpmid__ = "splade.reliability.stalecheckpointscleaner"

    def __call__(self, state: TrainState) -> LearnerListenerStatus:
        # state.path is the saved (or loaded) checkpoint, None on the ranks
        # that do not save
        if state.path is not None:
            for path in state.path.parent.glob(f"{TrainerContext.PREFIX}*"):
                if path != state.path:
                    rmtree(path, ignore_errors=True)
        return LearnerListenerStatus.NO_DECISION


class LastEpochMetrics(LearnerListener):
    """Logs the training metrics of the last epoch (TensorBoard)

    xpm_torch 0.3.1's ``Learner.iter_train`` (xpm_torch/learner.py:518-533)
    reports the training metrics of an epoch after yielding its state, that
    is, when the learner asks for the next epoch; after the last epoch
    (``max_epochs``, learner.py:424-433) it stops asking: the metrics of the
    last epoch are never logged (a 2-epoch run logged those of the first
    epoch only). This listener records the metrics of the current epoch
    (the ones ``TrainerContext.step`` merges the steps' metrics into), and
    logs them when it is called after the last epoch. Listed last, it logs
    after the validation.
    """

    def initialize(self, learner, context):
        super().initialize(learner, context)
        self.metrics = None
        step = context.step

        @contextmanager
        def recording(metrics):
            self.metrics = metrics
            with step(metrics) as recorded:
                yield recorded

        context.step = recording

    def __call__(self, state: TrainState) -> LearnerListenerStatus:
        if state.epoch >= self.learner.max_epochs and self.metrics is not None:
            self.metrics.report(state.step, self.context.metrics_logger, "train")
            self.metrics = None
        return LearnerListenerStatus.NO_DECISION
