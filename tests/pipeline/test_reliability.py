"""Reliability of `experimaestro run-experiment splade/debug.yaml` (issue 7)

- a run killed (SIGKILL, experiment and job processes) during training, then
  during the SPLADE index build, finishes when the same command is run again:
  training resumes from its last checkpoint, finished tasks are not run again,
  the rebuilt index gives the same results as an uninterrupted run;
- two runs of the same command on one workspace at the same time both finish,
  no task runs twice and both give the same results;
- the learner keeps a bounded number of checkpoints (the last one with its
  optimizer state, plus model-only copies: `last` and the best).

The tests marked `slow` run the debug pipeline in subprocesses (a few minutes
on 2 cores); `pytest -m "not slow"` skips them.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from workspace import (
    BM25_TASKS,
    LEARNER,
    SPLADE_INDEX,
    TIMEOUT,
    Workspace,
    checkpoint,
    kill_tree,
    measures,
    results,
    run_lines,
    splade_evaluation,
    splade_run,
    started,
)
from xpm_torch.trainers.context import TrainerContext

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reliability")]


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    """Two runs of the same command started together on one workspace"""
    ws = Workspace(tmp_path_factory.mktemp("concurrent"))
    first, second = ws.start("first"), ws.start("second")
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in (first, second)]
    finally:
        for process in (first, second):
            kill_tree(process)
    assert codes == [0, 0], ws.report()
    return ws


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run killed during training, its rerun killed during the SPLADE index
    build, and a last run that completes"""
    ws = Workspace(tmp_path_factory.mktemp("interrupted"))
    steps = {}

    # 1. Killed once the learner has saved the checkpoint of epoch 2
    assert ws.run_until("killed-training", lambda: checkpoint(ws) >= 2), (
        "the run ended before the second checkpoint\n" + ws.report()
    )
    steps["training"] = ws.done()
    steps["checkpoint"] = last = checkpoint(ws)
    # A kill between the save of a checkpoint and the removal of the previous
    # one leaves both (splade/workarounds/xpm_torch.py): add the previous one, as such a
    # kill would have left it
    learner = ws.job(LEARNER) / "checkpoints"
    stale = TrainerContext.get_checkpoint_path(learner, last - 1)
    if not stale.exists():
        shutil.copytree(TrainerContext.get_checkpoint_path(learner, last), stale)
        info = {"epoch": last - 1, "steps": (last - 1) * 50}
        (stale / "info.json").write_text(json.dumps(info))

    # 2. Killed once the index builder has started to encode the documents
    def indexing():
        logs = list(ws.jobs.glob(f"{SPLADE_INDEX}/*/*.err"))
        return bool(logs) and "Starting to index" in logs[0].read_text()

    assert ws.run_until("killed-indexing", indexing), (
        "the run ended before the index build\n" + ws.report()
    )
    steps["indexing"] = ws.done()

    # 3. Runs to the end
    assert ws.run("completed") == 0, ws.report()
    steps["completed"] = ws.done()

    # 4. The same index, built without interruption: the index and its
    # evaluation are moved aside, and built again from the same checkpoint
    aside = ws.home / "interrupted-build"
    for job in (splade_evaluation(ws), ws.job(SPLADE_INDEX)):
        (aside / job.parent.name).mkdir(parents=True, exist_ok=True)
        job.rename(aside / job.parent.name / job.name)
    assert ws.run("uninterrupted-build") == 0, ws.report()
    return ws, steps


@pytest.mark.slow
def test_killed_at_the_expected_stages(interrupted):
    ws, steps = interrupted
    tasks = lambda done: {path.parents[1].name for path in done}  # noqa: E731
    assert tasks(steps["training"]) >= set(BM25_TASKS)
    assert LEARNER not in tasks(steps["training"])
    assert LEARNER in tasks(steps["indexing"])
    assert SPLADE_INDEX not in tasks(steps["indexing"])
    assert SPLADE_INDEX in tasks(steps["completed"])


@pytest.mark.slow
def test_training_resumes_from_last_checkpoint(interrupted):
    ws, steps = interrupted
    log = (ws.job(LEARNER) / "learner.err").read_text(errors="replace")
    # The second learner process loaded the last checkpoint saved by the
    # first one, and trained the next epochs only
    assert "Loading from checkpoint at epoch" in log, log[-3000:]
    resumed_from = int(log.split("Loading from checkpoint at epoch")[-1].split()[0])
    assert resumed_from == steps["checkpoint"] >= 2
    assert "Train - epoch #1:" not in log.split("Loading from checkpoint")[-1]
    info = json.loads((ws.job(LEARNER) / "checkpoints/last/info.json").read_text())
    assert info == {"epoch": 4, "steps": 200}


@pytest.mark.slow
def test_finished_tasks_are_not_run_again(interrupted):
    ws, steps = interrupted
    for before, after in [("training", "indexing"), ("indexing", "completed")]:
        kept = {p: t for p, t in steps[after].items() if p in steps[before]}
        assert kept == steps[before], f"a task done before '{after}' ran again"
    logs = {log.stem: log for log in ws.logs}
    # the learner and the SPLADE index; then the index and its evaluation
    assert started(logs["killed-indexing"]) == 2
    assert started(logs["completed"]) == 2
    assert started(logs["uninterrupted-build"]) == 2


@pytest.mark.slow
def test_interrupted_index_build_gives_the_same_results(interrupted):
    """Same run (top 1,000 documents and scores of every test query) as an
    uninterrupted build of the same index"""
    ws, _ = interrupted
    (interrupted_run,) = (ws.home / "interrupted-build").glob("*/*/run.txt")
    assert run_lines(interrupted_run) == splade_run(ws)


@pytest.mark.slow
def test_interrupted_runs_give_the_results_of_an_uninterrupted_one(
    interrupted, concurrent
):
    ws, _ = interrupted
    assert splade_run(ws) == splade_run(concurrent)
    completed = results(ws.home / "completed.log")
    assert measures(completed).equals(measures(results(concurrent.logs[0])))


@pytest.mark.slow
def test_concurrent_runs_do_every_task_once(concurrent):
    ws = concurrent
    jobs = list(ws.jobs.glob("*/*/"))
    assert len(jobs) == 6 and len(ws.done()) == 6
    assert sum(started(log) for log in ws.logs) == 6
    for err in ws.jobs.glob("*/*/*.err"):
        assert err.read_text(errors="replace").count("Running task") == 1, err


@pytest.mark.slow
def test_concurrent_runs_give_the_same_results(concurrent):
    first, second = (results(log) for log in concurrent.logs)
    assert first != second
    assert first.read_text() == second.read_text()


@pytest.mark.slow
def test_no_network_access(concurrent, interrupted):
    for ws in (concurrent, interrupted[0]):
        log = ws.home / "network.log"
        assert not log.exists(), log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["concurrent", "interrupted"])
def test_checkpoints_are_bounded(name, request):
    """One full checkpoint (model, optimizer and sampler states) and model-only
    copies (last, best RR@10), whatever the number of epochs and restarts"""
    ws = request.getfixturevalue(name)
    ws = ws[0] if isinstance(ws, tuple) else ws
    learner = ws.job(LEARNER)
    checkpoints = learner / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch-00000004", "last"]
    assert [p.relative_to(learner) for p in learner.rglob("optimizer.pth")] == [
        Path("checkpoints/epoch-00000004/optimizer.pth")
    ]
    (best,) = learner.glob("out/listeners/*/best")
    assert sorted(p.name for p in best.iterdir()) == ["RR@10"]

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    model = size(checkpoints / "last/model")
    # the optimizer state (AdamW: two moments) is about twice the model
    assert size(checkpoints) + size(best) < 6 * model


TASK = '''
from pathlib import Path
from experimaestro import Param, Task


class Count(Task):
    """Appends a line to a file each time it runs"""

    runs: Param[str]

    def execute(self):
        with Path(self.runs).open("a") as fp:
            fp.write("run\\n")
'''

DRIVER = """
import logging
import sys
from pathlib import Path

logging.basicConfig(level=logging.INFO)
# "[starting] Locking job ..." is logged when the scheduler waits for the lock
logging.getLogger("xpm.scheduler").setLevel(logging.DEBUG)

sys.path.insert(0, str(Path(__file__).parent))
from experimaestro import experiment
from counttask import Count

workspace, mode = Path(sys.argv[1]), sys.argv[2]
task = Count.C(runs=str(workspace / "runs.txt"))
if mode == "path":
    identifier = task.__xpm__.identifier.all.hex()
    print(workspace / "jobs" / str(task.__xpmtype__.identifier) / identifier)
    sys.exit(0)
if mode == "patched":
    from splade.workarounds.experimaestro import keep_done_markers

    keep_done_markers()
with experiment(workspace, "concurrent", port=None):
    task.submit()
"""


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True])
def test_a_job_done_by_another_experiment_is_not_run_again(tmp_path, patched):
    """An experiment waits for the lock of a job that another experiment's
    job process holds (simulated here), which finishes it: experimaestro
    removes the done marker and runs the job again; keep_done_markers avoids
    it"""
    import filelock

    (tmp_path / "counttask.py").write_text(TASK)
    (tmp_path / "driver.py").write_text(DRIVER)
    workspace = tmp_path / "workspace"
    env = {**os.environ, "HOME": str(tmp_path)}
    driver = [sys.executable, str(tmp_path / "driver.py"), str(workspace)]
    job = Path(
        subprocess.run(
            driver + ["path"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    job.mkdir(parents=True)
    log = tmp_path / "experiment.log"
    with filelock.FileLock(job / "count.lock"):
        with log.open("wt") as fp:
            mode = "patched" if patched else "upstream"
            process = subprocess.Popen(
                driver + [mode], cwd=ROOT, env=env, stdout=fp, stderr=fp
            )
        # Once the scheduler waits for the lock, the other "job process"
        # finishes the job
        deadline = time.monotonic() + 120
        while "[starting] Locking job" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        (job / "count.done").touch()
    assert process.wait(timeout=120) == 0, log.read_text()
    runs = workspace / "runs.txt"
    assert runs.exists() != patched, log.read_text()
    assert (job / "count.done").is_file()
