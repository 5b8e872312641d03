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
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import psutil
import pytest
from conftest import ROOT, SPLADE_INDEX_TASK, user_environment
from xpm_torch.trainers.context import TrainerContext

from splade.workarounds.xpm_torch import StaleCheckpointsCleaner

# Fewer epochs than debug.yaml (6), enough to kill after the 2nd one
COMMAND = [
    "experimaestro",
    "run-experiment",
    "splade/debug.yaml",
    "-c",
    "learner.optimization.max_epochs=4",
]
TIMEOUT = 900

LEARNER = "xpm_torch.learner.learner"
SPLADE_INDEX = SPLADE_INDEX_TASK
SPLADE_EVALUATION = "splade.efficiency.evaluatewithefficiency"
BM25_TASKS = [
    "xpmir.index.bow.bowsparseretrieverindexbuilder",
    "xpmir.datasets.adapters.retrieverbasedcollection",
]


class Workspace:
    """A new HOME with the splade workspace, where every Python process
    refuses network accesses"""

    def __init__(self, home: Path):
        self.home = home
        env = user_environment(home)
        self.env = env
        self.jobs = home / "experiments/splade/jobs"
        self.logs: List[Path] = []
        with (home / "workspace.log").open("wt") as fp:
            subprocess.run(
                [sys.executable, "-m", "splade.workspace"],
                cwd=ROOT,
                env=env,
                stdout=fp,
                stderr=subprocess.STDOUT,
                check=True,
            )

    #: the experiment each run starts
    command = COMMAND

    def start(self, name: str) -> subprocess.Popen:
        log = self.home / f"{name}.log"
        self.logs.append(log)
        with log.open("wt") as fp:
            return subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=fp,
                stderr=subprocess.STDOUT,
            )

    def run(self, name: str) -> int:
        process = self.start(name)
        try:
            return process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            raise

    def run_until(self, name: str, condition: Callable[[], bool]):
        """Runs the experiment and kills it (SIGKILL, with all its job
        processes) as soon as `condition` holds; returns whether it was killed
        (False: the experiment ended before)"""
        process = self.start(name)
        deadline = time.monotonic() + TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if condition():
                kill_tree(process)
                return True
            time.sleep(0.05)
        kill_tree(process)
        return False

    def job(self, task: str) -> Path:
        (path,) = self.jobs.glob(f"{task}/*")
        return path

    def done(self) -> Dict[Path, float]:
        """Done markers of the finished jobs, with their modification time"""
        return {p: p.stat().st_mtime_ns for p in self.jobs.glob("*/*/*.done")}

    def report(self) -> str:
        """The end of the run logs and of every job's stderr"""
        parts = []
        for path in self.logs + sorted(self.jobs.glob("*/*/*.err")):
            lines = path.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {path}\n" + "\n".join(lines))
        return "\n".join(parts)


def kill_tree(process: subprocess.Popen):
    """SIGKILL the experiment and its descendants (job processes run in their
    own session but remain its children)"""
    try:
        parent = psutil.Process(process.pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)
    process.wait()


def started(log: Path) -> int:
    """Number of job processes an experiment started"""
    return log.read_text(errors="replace").count("Process started")


def measures(results_csv: Path):
    """The results table without its run file paths (which name the
    workspace) and its latencies (which time this machine, not the run)"""
    import pandas as pd

    table = pd.read_csv(results_csv)
    return table.drop(columns=["run", *table.filter(like="latency").columns])


def results(log: Path) -> Path:
    """The results table written by the run whose output is in `log`"""
    text = log.read_text(errors="replace")
    marker = "Saved results in "
    assert marker in text, f"no results in {log}"
    return Path(text.split(marker)[1].split()[0])


def splade_evaluation(ws: Workspace) -> Path:
    """The job folder of the evaluation of the SPLADE index"""
    index = ws.job(SPLADE_INDEX).name
    for params in ws.jobs.glob(f"{SPLADE_EVALUATION}/*/params.json"):
        if index in params.read_text():
            return params.parent
    raise AssertionError("no evaluation of the SPLADE index")


def run_lines(path: Path) -> List[str]:
    """The lines of a run file (TREC format), sorted: queries are written in
    the order their retrieval ends"""
    return sorted(path.read_text().splitlines())


def splade_run(ws: Workspace) -> List[str]:
    """The run of the SPLADE evaluation"""
    return run_lines(splade_evaluation(ws) / "run.txt")


def checkpoint(ws: Workspace) -> int:
    """Epoch of the learner's last checkpoint (0: none yet)

    The learner saves the checkpoint of an epoch (model, optimizer and sampler
    states), removes the previous one, then copies the model to `last`: a
    kill while the checkpoint is saved makes it restart from the previous one
    (tested in test_a_kill_while_checkpointing_leaves_a_stale_checkpoint)
    """
    for info in ws.jobs.glob(f"{LEARNER}/*/checkpoints/last/info.json"):
        try:
            return json.loads(info.read_text())["epoch"]
        except (ValueError, KeyError):  # being written
            pass
    return 0


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
