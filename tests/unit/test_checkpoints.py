"""A kill while the learner saves a checkpoint (xpm_torch), and
StaleCheckpointsCleaner (splade/workarounds/xpm_torch.py), without running
the learner (the killed and resumed runs: tests/pipeline/test_reliability.py)"""

from pathlib import Path

from xpm_torch.trainers.context import TrainerContext

from splade.workarounds.xpm_torch import StaleCheckpointsCleaner


class Stub:
    """Model, trainer and optimizer of a TrainerContext, with an empty state"""

    def save_model(self, path: Path):
        (path / "weights").write_text("")

    def load_model(self, path: Path):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_a_kill_while_checkpointing_leaves_a_stale_checkpoint(tmp_path):
    """xpm_torch removes the previous checkpoint after saving the new one:
    after a kill between the two and a restart, the older one is never
    removed; StaleCheckpointsCleaner (a learner listener) removes it"""

    def context():
        stub = Stub()
        path = tmp_path / "checkpoints"
        return TrainerContext(tmp_path, path, 4, 10, stub, stub, stub, fabric=None)

    # Epochs 1 and 2 saved, killed before epoch 1 is removed
    killed = context()
    for _ in range(2):
        killed.nextepoch()
        path = TrainerContext.get_checkpoint_path(killed.path, killed.epoch)
        killed.state.save(path)

    def checkpoints():
        return sorted(path.name for path in (tmp_path / "checkpoints").iterdir())

    # The restarted learner loads epoch 2, saves epoch 3 and removes epoch 2
    restarted = context()
    assert restarted.load_bestcheckpoint(4) and restarted.epoch == 2
    loaded = restarted.state
    restarted.nextepoch()
    restarted.save_checkpoint()
    assert checkpoints() == ["epoch-00000001", "epoch-00000003"]

    cleaner = StaleCheckpointsCleaner.C(id="cleaner").instance()
    cleaner(restarted.state)
    assert checkpoints() == ["epoch-00000003"]

    # Called with the state loaded at a restart, it keeps that one
    (tmp_path / "checkpoints/epoch-00000001").mkdir()
    loaded.path = restarted.state.path
    cleaner(loaded)
    assert checkpoints() == ["epoch-00000003"]
