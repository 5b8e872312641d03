"""A workspace of the debug recipe in a new HOME, and what its runs left
(the pipeline tests of reliability, DDP and reuse share it)"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import psutil
from conftest import ROOT, SPLADE_INDEX_TASK, user_environment

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
