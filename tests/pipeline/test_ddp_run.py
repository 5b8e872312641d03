"""The debug recipe trained by 2 processes (``-c learner.devices=2``, CPU,
4 epochs): both train, a ``kill -9`` of rank 1 ends the job with an error
(no hang), and the rerun resumes from the last checkpoint and ends with
SPLADE ahead of BM25, with the results of an uninterrupted run (slow: the
pipeline runs in subprocesses, as in ``tests/pipeline/test_reliability.py``)"""

import signal
import time

import pandas as pd
import psutil
import pytest
from shared_runs import DDP_EPOCHS, DDP_GROUP
from workspace import (
    LEARNER,
    TIMEOUT,
    Workspace,
    checkpoint,
    kill_tree,
    results,
)

COMMAND = [
    "experimaestro",
    "run-experiment",
    "splade/debug.yaml",
    *("-c", DDP_EPOCHS),
    *("-c", "learner.devices=2"),
]


pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(DDP_GROUP)]


class DDPWorkspace(Workspace):
    command = COMMAND


def learner_processes(ws: Workspace):
    """The processes running the learner's job script, by rank"""
    ranks = {}
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if f"{LEARNER}/" in cmdline and str(ws.home) in cmdline:
                rank = int(process.environ().get("LOCAL_RANK", "0"))
                ranks[rank] = process
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return ranks


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    ws = DDPWorkspace(tmp_path_factory.mktemp("ddp"))

    # 1. rank 1 is killed once the checkpoint of epoch 2 is saved
    process = ws.start("killed-rank")
    killed = None
    try:
        deadline = time.monotonic() + TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            ranks = learner_processes(ws)
            if checkpoint(ws) >= 2 and 1 in ranks:
                killed = ranks[1].pid
                ranks[1].send_signal(signal.SIGKILL)
                break
            time.sleep(0.1)
        assert killed, "rank 1 was not found\n" + ws.report()
        start = time.monotonic()
        # the job fails, and the experiment ends with an error
        code = process.wait(timeout=300)
        ended_in = time.monotonic() - start
    finally:
        kill_tree(process)
    left = learner_processes(ws)
    last = checkpoint(ws)

    # 2. the same command again
    assert ws.run("resumed") == 0, ws.report()
    return ws, code, ended_in, left, last


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_with_an_error(killed_and_resumed):
    ws, code, ended_in, left, _ = killed_and_resumed
    assert code == 1, ws.report()
    assert ended_in < 120  # (Lightning's observer checks every 5 s)
    assert left == {}  # no learner process left behind
    assert "job(s) failed" in ws.logs[0].read_text()


@pytest.mark.slow
def test_both_processes_train(killed_and_resumed):
    ws, *_ = killed_and_resumed
    log = (ws.job(LEARNER) / "learner.err").read_text(errors="replace")
    assert "Non-zero rank (1): marking as slave process" in log
    assert "DDP active (world size = 2): setting local batch size to 16" in log
    # (the log of the rerun: experimaestro starts it anew)
    assert log.count("Fabric: 2 process(es)") == 2


@pytest.mark.slow
def test_the_rerun_resumes_from_the_last_checkpoint(killed_and_resumed):
    ws, _, _, _, last = killed_and_resumed
    log = (ws.job(LEARNER) / "learner.err").read_text(errors="replace")
    resumed = log.split("Loading from checkpoint at epoch")
    assert len(resumed) >= 3, log[-3000:]  # both ranks load it
    assert int(resumed[-1].split()[0]) == last >= 2
    assert (ws.job(LEARNER) / "learner.done").exists()


@pytest.mark.slow
def test_splade_beats_bm25(killed_and_resumed):
    ws, *_ = killed_and_resumed
    table = pd.read_csv(results(ws.logs[-1])).set_index("model")
    assert table.loc["splade", "nDCG@10"] > table.loc["bm25", "nDCG@10"] + 0.2


def splade_run(jobs):
    """The run of the SPLADE evaluation (TREC lines, sorted)"""
    (run,) = jobs.glob("splade.efficiency.evaluatewithefficiency/*/run.txt")
    return sorted(run.read_text().splitlines())


def test_the_resumed_run_is_the_uninterrupted_one(killed_and_resumed, slurm_runs):
    """Every rank resumes its data where it was (rank 0's checkpoint holds
    the state of the data loaders of all ranks: they take the samples in
    turns), with the optimizer's and the model's states: the same run (top
    1,000 documents and scores of every test query) as an uninterrupted
    training by 2 processes, the one that the Slurm launcher starts
    (tests/pipeline/test_slurm.py: the same configuration, whose 2 ranks
    Slurm's srun starts instead of Lightning)"""
    ws, *_ = killed_and_resumed
    assert splade_run(ws.jobs) == splade_run(slurm_runs("devices").jobs)
