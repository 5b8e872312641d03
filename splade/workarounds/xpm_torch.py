"""Work-arounds for xpm_torch 0.3.1

xpm_torch resumes a killed ``Learner`` from its last checkpoint
(``TrainerContext.load_bestcheckpoint``, xpm_torch/trainers/context.py:323),
and experimaestro 2.7 keeps the job folder of a task that is not a
``ResumableTask`` (it only warns, experimaestro/scheduler/base.py:1441). Tests:
``tests/test_reliability.py``.
"""

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
