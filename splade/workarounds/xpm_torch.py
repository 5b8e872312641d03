"""Work-arounds for xpm_torch 0.3.1

xpm_torch resumes a killed ``Learner`` from its last checkpoint
(``TrainerContext.load_bestcheckpoint``, xpm_torch/trainers/context.py:323),
and experimaestro 2.7 keeps the job folder of a task that is not a
``ResumableTask`` (it only warns, experimaestro/scheduler/base.py:1441). Tests:
``tests/unit/test_checkpoints.py``, ``tests/pipeline/test_reliability.py``.

With several training processes (``learner.devices``, ``learner.num_nodes``),
xpm_torch's ``Learner`` launches Fabric without a function, does not share
rank 0's early-stopping decision, and checkpoints rank 0's data loader only:
:func:`check_launches_without_function`, :func:`broadcast_decision`,
:class:`InterleavedShards`. Tests: ``tests/unit/test_ddp.py``,
``tests/pipeline/test_ddp_processes.py``.
"""

from abc import abstractmethod
from contextlib import contextmanager
from pathlib import Path
from shutil import rmtree
from typing import Any, Callable, Dict, Iterator, Tuple

from xpm_torch.datasets import ShardedIterableDataset
from xpm_torch.learner import (
    LearnerListener,
    LearnerListenerStatus,
    UpdateModelHook,
)
from xpm_torch.trainers.context import TrainerContext, TrainState
from xpmir.letor.validation import ValidationListener


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


# --- Several training processes (Lightning Fabric's DDP)


def check_launches_without_function(fabric):
    """Raises a ValueError if the Fabric's strategy starts its processes
    from a function (``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``, XLA)

    xpm_torch 0.3.1's ``Learner.execute`` (xpm_torch/learner.py:271-272)
    calls ``fabric.launch()`` without a function: Lightning (2.6,
    lightning/fabric/fabric.py:1005-1009) then raises a ``TypeError`` for
    these strategies, once the task has started. Only the strategies that
    launch the processes as scripts (``ddp``: the task's script is started
    again for each rank, which experimaestro runs as a follower) or find
    them already started (Slurm's tasks) can be used.
    """
    from lightning.fabric.strategies.launchers.multiprocessing import (
        _MultiProcessingLauncher,
    )
    from lightning.fabric.strategies.launchers.xla import _XLALauncher

    if isinstance(fabric.strategy.launcher, (_MultiProcessingLauncher, _XLALauncher)):
        raise ValueError(
            f"strategy {type(fabric.strategy).__name__} cannot be used: xpm_torch's"
            " Learner calls fabric.launch() without a function; use 'ddp'"
        )


def broadcast_decision(fabric, status: LearnerListenerStatus) -> LearnerListenerStatus:
    """Rank 0's decision, on every rank (a collective: every rank calls it)

    xpm_torch 0.3.1's ``Learner.execute`` (xpm_torch/learner.py:416-420)
    calls ``fabric.broadcast(decision_val, src=0)`` and drops its result;
    Lightning's ``DDPStrategy.broadcast`` (lightning/fabric/strategies/
    ddp.py:176-182) returns rank 0's value and leaves its argument as it
    is: every rank keeps its own decision.
    """
    if fabric is None or fabric.world_size == 1:
        return status
    import torch

    value = torch.tensor([status.value], device=fabric.device)
    return LearnerListenerStatus(int(fabric.broadcast(value, src=0).item()))


class InterleavedShards(ShardedIterableDataset):
    """A stream of items of which shard ``s`` of ``N`` takes items ``s,
    s + N, s + 2N, ...``; its state is the number of items of the stream
    consumed (whole rounds of ``N`` items), the same for every shard

    xpm_torch 0.3.1's ``Learner`` saves the checkpoint of rank 0 only
    (xpm_torch/learner.py:402-407), with the state of rank 0's data loader,
    which every rank loads when training resumes. Upstream datasets keep
    states that only fit their own shard: ``LineFileDataset`` (the teacher
    TSV files) splits the file in byte ranges (another rank resumed with
    rank 0's position starts its range again), and the triplets of
    ``TripletBasedSampler`` and the samples of the model-based samplers have
    no state (they start again from the beginning). Shards of this class
    take the same rounds: rank 0's state is every rank's (each worker's
    state too, as every rank's data loader has its workers take the same
    turns). The global batch of ``N`` processes, each taking one item of a
    round in turn, is the batch of one process (with the same number of
    data loader workers).
    """

    def __init__(self):
        super().__init__()
        self._state = self.start()
        self._resume = None

    def start(self) -> Dict[str, Any]:
        """The state at the beginning of the stream"""
        return {"next": 0}

    @abstractmethod
    def raw(self, state: Dict[str, Any]) -> Iterator[Tuple[Dict[str, Any], Any]]:
        """Items from ``state`` on, cheaply, as ``(state after the item,
        raw item)``"""

    def make(self, raw: Any) -> Any:
        """The item from its raw form (only for the items of the shard)"""
        return raw

    def iter_shard(self, shard_id: int, num_shards: int) -> Iterator:
        resume, self._resume = self._resume, None
        if resume is not None:
            yielded = yield from self._rounds(resume, shard_id, num_shards)
            if yielded:
                return
        yield from self._rounds(self.start(), shard_id, num_shards)

    def _rounds(self, state, shard_id: int, num_shards: int):
        yielded = False
        round_ = []
        for after, raw in self.raw(state):
            round_.append(raw)
            if len(round_) == num_shards:
                self._state, yielded = after, True
                yield self.make(round_[shard_id])
                round_ = []
        if shard_id < len(round_):  # the last round, incomplete
            self._state, yielded = after, True
            yield self.make(round_[shard_id])
        return yielded

    def state_dict(self) -> Dict[str, Any]:
        return dict(self._state)

    def load_state_dict(self, state: Dict[str, Any]):
        if "next" in state:
            self._resume = dict(state)


class InterleavedLines(InterleavedShards):
    """The lines of a text file, shard ``s`` of ``N`` taking lines ``s, s +
    N, ...`` (see :class:`InterleavedShards`)

    Replaces xpm_torch 0.3.1's ``LineFileDataset``, whose shards are byte
    ranges: besides the state of rank 0 (see :class:`InterleavedShards`), a
    line that begins exactly at the start of a range is read by no shard
    (``iter_from`` skips the first line of a range, taking it for the end of
    the previous shard's last line: xpm_torch/datasets.py:160-163): with 4
    lines of 9 bytes and 4 shards, only the first line is read. Each shard
    reads the whole file (and parses its own lines only).
    """

    def __init__(self, path: Path, parse_fn: Callable[[str], Any]):
        self.path = Path(path)
        self.parse_fn = parse_fn
        super().__init__()

    def start(self):
        return {"next": 0, "position": 0}

    def raw(self, state):
        index, position = state["next"], state["position"]
        with self.path.open("rb") as fp:
            fp.seek(position)
            for line in fp:
                index, position = index + 1, position + len(line)
                yield {"next": index, "position": position}, line

    def make(self, raw: bytes):
        return self.parse_fn(raw.decode("utf-8").rstrip("\n"))


class SynchronisedValidationListener(ValidationListener):
    """xpmir's ``ValidationListener``, which validates on rank 0 and gives
    its decision to stop early to every rank

    Upstream, with several processes:

    - only rank 0 updates the best validation results (``top``,
      xpmir/letor/validation.py:211-216) that ``should_stop`` reads: with
      ``early_stop`` > 0, rank 0 decides to stop while the other ranks go on,
      and as the learner does not share rank 0's decision
      (:func:`broadcast_decision`), they wait for rank 0 in their next
      collective operation for ever;
    - the listener's ``UpdateModelHook`` (validation.py:96-101) gives the
      retriever the model wrapped by Fabric for DDP, whose methods other
      than ``forward`` Lightning refuses to run ("You are calling the method
      `...encode_queries()` from outside the model",
      lightning/fabric/wrappers.py:201-226): the first validation fails.

    Here the retriever keeps the model itself (the same parameters, on the
    same device; with one process, Fabric's wrapper runs these methods on it
    too), rank 0 validates alone, and every rank gets its decision. With one
    process, this is xpmir's listener.
    """

    __xpmid__ = "splade.workarounds.synchronisedvalidationlistener"

    def initialize(self, learner, context):
        super().initialize(learner, context)
        fabric = getattr(context, "fabric", None)
        if fabric is not None and fabric.world_size > 1:
            for hooks in context.hooksmap.values():
                hooks[:] = [
                    hook
                    for hook in hooks
                    if not (
                        isinstance(hook, UpdateModelHook)
                        and hook.target_obj is self.retriever
                    )
                ]

    def __call__(self, state):
        fabric = getattr(self.context, "fabric", None)
        if fabric is None or fabric.world_size == 1:
            return super().__call__(state)
        # (rank 0's model is the other ranks' model)
        status = LearnerListenerStatus.NO_DECISION
        if fabric.is_global_zero:
            status = super().__call__(state)
        return broadcast_decision(fabric, status)
