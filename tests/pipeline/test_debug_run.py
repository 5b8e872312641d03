"""`experimaestro run-experiment splade/debug.yaml` as a user runs it: in a
new HOME, after `python -m splade.workspace`, without network"""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import failure_report, run, user_environment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    command = ["experimaestro", "run-experiment", "splade/debug.yaml"]
    log = home / "run.log"
    code = run(command + ["-c", "retrieval.evaluate_untrained=true"], env, log)
    assert code == 0, failure_report(home, log)
    return home, env, command


def results(home: Path) -> pd.DataFrame:
    (path,) = (home / "experiments/splade/experiments/splade-debug/current").glob(
        "results/results.csv"
    )
    return pd.read_csv(path)


def test_results_table(debug_run):
    home, _, _ = debug_run
    df = results(home).set_index("model")
    assert set(df.index) == {"bm25", "splade", "splade-untrained"}
    assert (df["dataset"] == "debug").all()
    for measure in ["RR@10", "nDCG@10", "R@1000", "AP"]:
        assert df[measure].between(0, 1).all(), measure


def test_splade_learns(debug_run):
    """Trained SPLADE beats BM25 and the same model before training"""
    home, _, _ = debug_run
    ndcg = results(home).set_index("model")["nDCG@10"]
    assert ndcg["bm25"] <= 0.75, "BM25 should be clearly imperfect here"
    assert ndcg["splade"] > ndcg["bm25"] + 0.1
    assert ndcg["splade"] > ndcg["splade-untrained"] + 0.3


def test_training_metrics_of_every_epoch(debug_run):
    """TensorBoard has the training loss of each of the 6 epochs (the last
    one included) and the validation measures"""
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    home, _, _ = debug_run
    (runs,) = (home / "experiments/splade/jobs").glob(
        "xpm_torch.learner.learner/*/runs"
    )
    events = EventAccumulator(str(runs))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/pairwise-delta-MSE")]
    assert steps == [50, 100, 150, 200, 250, 300]
    assert [e.step for e in events.Scalars("train/nonzeros_d")] == steps
    assert len(events.Scalars("bestval/RR@10/mean")) == 6


def test_no_network_access(debug_run):
    home, _, _ = debug_run
    log = home / "network.log"
    assert not log.exists(), log.read_text()


def test_job_processes_are_guarded(debug_run):
    """Every job process had the network guard installed (so that the test
    above means something): the process ids in the jobs' logs are among the
    guarded ones, and a guarded process cannot connect"""
    home, env, _ = debug_run
    guarded = {
        int(line.split()[0])
        for line in (home / "guarded.log").read_text().split("\n")
        if line
    }
    jobs = sorted((home / "experiments/splade/jobs").glob("*/*/*.err"))
    # BM25 index and evaluation, validation collection, learner, and the
    # index and evaluation of the trained and untrained models
    assert len(jobs) == 8
    for err in jobs:
        pids = set(map(int, re.findall(r"^INFO:(\d+):", err.read_text(), re.M)))
        assert pids and pids <= guarded, err
    attempt = "import socket; socket.create_connection(('example.com', 80))"
    process = subprocess.run(
        [sys.executable, "-c", attempt], env=env, capture_output=True, text=True
    )
    assert "Network access attempted during tests" in process.stderr
    assert "example.com" in (home / "network.log").read_text()
    (home / "network.log").unlink()


def test_rerun_reuses_every_task(debug_run):
    home, env, command = debug_run
    jobs = home / "experiments/splade/jobs"
    before = {p: p.stat().st_mtime for p in jobs.glob("*/*/*.done")}
    log = home / "rerun.log"
    assert run(command + ["-c", "retrieval.evaluate_untrained=true"], env, log) == 0
    after = {p: p.stat().st_mtime for p in jobs.glob("*/*/*.done")}
    assert before == after, "a finished task was run again"
    assert "Process started" not in log.read_text()
