"""`experimaestro run-experiment splade/debug.yaml` as a user runs it: in a
new HOME, after `python -m splade.workspace`, without network, watched in
the experimaestro web monitor (`--web`, with a `server:` section of fixed
port and token in settings.yaml); once the jobs are done (the monitor keeps
serving), the page is opened in a headless Chromium driven through the
DevTools protocol, and the server is stopped with the page's Stop button.

One run (tests/support/shared_runs.py, ``debug_run``) for all these tests,
and for the runs of the same workspace that reuse its tasks (SelfDistil,
BEIR, zero-shot and shards). The browser test needs the `chromium` binary
(Debian package `chromium`, which .ci/run installs).
"""

import http.client
import json
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from conftest import SPLADE_INDEX_TASK, failure_report, run
from shared_runs import GROUP, results_table
from websockets.sync.client import connect

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(GROUP)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# What the page shows, read from its DOM (experimaestro's web UI)
EXPERIMENTS = """[...document.querySelectorAll("table.experiments-table tbody tr")]
.map(row => ({
  status: row.cells[0].querySelector("[title]")?.title,
  id: row.cells[1].querySelector(".fw-semibold")?.innerText,
  jobs: row.cells[2].innerText.trim(),
}))"""
JOBS = """[...document.querySelectorAll("table.jobs-table tbody tr.job-row")]
.map(row => ({
  status: row.querySelector(".job-status-cell").innerText.trim(),
  task: row.querySelector(".task-id").innerText,
  path: row.querySelector(".job-id").title,
}))"""
# (other experiments of the workspace may be listed: the debug one is clicked)
CLICK_EXPERIMENT = """(() => {
  const row = [...document.querySelectorAll("table.experiments-table tbody tr")]
    .find(row => row.cells[1].querySelector(".fw-semibold")?.innerText
                 === "splade-debug");
  row.click();
  return true;
})()"""
CLICK_STOP = """(() => {
  const icon = document.querySelector("nav button i.fa-power-off");
  if (icon) icon.closest("button").click();
  return icon !== null;
})()"""
CONFIRM_STOP = """(() => {
  const button = [...document.querySelectorAll(".modal-footer button")]
    .find(b => b.innerText.trim() === "Stop Server");
  if (button) button.click();
  return button !== undefined;
})()"""


def http_get(port: int, path: str):
    """GET on localhost, without any proxy"""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


KEPT_EVENTS = ("Network.requestWillBeSent", "Network.webSocketCreated")


class DevTools:
    """A page of Chromium, through the DevTools protocol; keeps the events"""

    def __init__(self, websocket):
        self.websocket = websocket
        self.last_id = 0
        self.events = []

    def call(self, method: str, **params):
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        self.websocket.send(json.dumps(message))
        while True:
            answer = json.loads(self.websocket.recv(timeout=60))
            if answer.get("id") == self.last_id:
                assert "error" not in answer, answer
                return answer["result"]
            if answer.get("method") in KEPT_EVENTS:
                self.events.append(answer)

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, check, what: str, timeout=30, alive=None):
        """Evaluates the expression until check(value) holds; alive() may
        raise to stop waiting"""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if check(value):
                return value
            if alive is not None:
                alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not seen in {timeout} s ({value!r})")
            time.sleep(1)


@contextmanager
def chromium(folder: Path):
    """A headless Chromium with a new profile, showing about:blank"""
    profile = folder / "profile"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    with (folder / "chromium.log").open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Chromium writes the port it chose, then the browser's path
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while len(lines := _read_lines(port_file)) < 2:
            assert process.poll() is None, (folder / "chromium.log").read_text()
            assert time.monotonic() < deadline, "Chromium gave no DevTools port"
            time.sleep(0.1)
        port = int(lines[0])
        status, body = http_get(port, "/json/list")
        assert status == 200, body
        (page,) = [t for t in json.loads(body) if t["type"] == "page"]
        with connect(page["webSocketDebuggerUrl"], max_size=None, proxy=None) as ws:
            yield DevTools(ws)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_lines(path: Path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def test_monitor_shows_the_run_and_stops(debug_run, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    home, process, log, port = (
        debug_run.home,
        debug_run.process,
        debug_run.log,
        debug_run.port,
    )

    # The server listens where settings.yaml says (its log line comes just
    # before it listens), and refuses a wrong token
    url = f"http://127.0.0.1:{port}/auth?xpm-token={debug_run.token}"
    assert f"xpm.webui: Web server started on {url}" in log.read_text()
    assert http_get(port, "/stop?xpm-token=wrong")[0] == 401

    # The jobs ran; the monitor keeps serving once they are done
    job_dirs = set(debug_run.jobs)
    assert all(list(d.glob("*.done")) for d in job_dirs), job_dirs
    tasks = {d.parent.name for d in job_dirs}
    assert {
        "xpmir.index.bow.bowsparseretrieverindexbuilder",
        "xpm_torch.learner.learner",
        SPLADE_INDEX_TASK,
        "xpmir.evaluation.evaluate",
    } <= tasks

    with chromium(tmp_path) as page:
        page.call("Network.enable")
        page.call("Page.navigate", url=url)
        # The token is accepted: its cookie gives the monitor's page
        page.wait_for("location.pathname", lambda p: p == "/index.html", "page")

        # The experiment, with all its jobs finished and none failed (the
        # experiment itself is "running" as long as the monitor holds it open)
        rows = page.wait_for(EXPERIMENTS, len, "experiment")
        (row,) = [row for row in rows if row["id"] == "splade-debug"]
        assert row["jobs"] == f"{len(job_dirs)}/{len(job_dirs)}"
        assert row["status"] in ("running", "done")

        # Its jobs (shown when it is clicked): every job of the run, done
        assert page.evaluate(CLICK_EXPERIMENT)
        jobs = page.wait_for(JOBS, lambda jobs: len(jobs) == len(job_dirs), "jobs")
        assert {Path(job["path"]) for job in jobs} == job_dirs
        assert {job["task"] for job in jobs} == tasks
        assert [job["status"] for job in jobs] == ["done"] * len(jobs)

        # The server keeps serving after the run, until stopped from the page
        assert process.poll() is None
        page.wait_for(CLICK_STOP, bool, "Stop button")
        page.wait_for(CONFIRM_STOP, bool, "Stop Server confirmation")
        assert process.wait(timeout=60) == 0, failure_report(home, log)
        assert "Quit requested from web interface" in log.read_text()
        with pytest.raises(ConnectionRefusedError):
            http_get(port, "/")

        # The page loaded nothing from outside the machine
        page.call("Runtime.evaluate", expression="1")  # reads pending events
        urls = [
            event["params"].get("request", {}).get("url") or event["params"]["url"]
            for event in page.events
        ]
        assert any(u.startswith(f"ws://127.0.0.1:{port}/ws") for u in urls), urls
        outside = [
            u
            for u in urls
            if urlsplit(u).scheme != "data" and urlsplit(u).hostname != "127.0.0.1"
        ]
        assert not outside, urls


#: Lines of warnings in a run's output (experimaestro's WARN, Python's)
WARNING = re.compile(r"\bWARN(ING)?\b|Warning\b")


def test_the_run_prints_no_warning(debug_run):
    """Nothing to warn about in the run of a user who changed nothing: no
    deprecated YAML key, no task folder that a future experimaestro would
    remove (splade/workarounds/experimaestro.py: keep_job_directories), no
    "Ignoring listener" (quiet_ignored_generated_values)"""
    lines = debug_run.log.read_text(errors="replace").splitlines()
    assert [line for line in lines if WARNING.search(line)] == []


def results(debug_run) -> pd.DataFrame:
    return pd.read_csv(results_table(debug_run.home, "splade-debug"))


def test_results_table(debug_run):
    df = results(debug_run).set_index("model")
    assert set(df.index) == {"bm25", "splade", "splade-untrained"}
    assert (df["dataset"] == "debug").all()
    for measure in ["RR@10", "nDCG@10", "R@1000", "AP"]:
        assert df[measure].between(0, 1).all(), measure


def test_splade_learns(debug_run):
    """Trained SPLADE beats BM25 and the same model before training"""
    ndcg = results(debug_run).set_index("model")["nDCG@10"]
    assert ndcg["bm25"] <= 0.75, "BM25 should be clearly imperfect here"
    assert ndcg["splade"] > ndcg["bm25"] + 0.1
    assert ndcg["splade"] > ndcg["splade-untrained"] + 0.3


def test_debug_lexical_benchmark_is_the_runs_bm25(debug_run):
    """bench.debug_lexical's BM25 (scipy, whitespace words) gives the run's
    BM25 row (impact-index's bag-of-words index): the benchmark's
    sub-word figures are comparable with the run's"""
    from bench.debug_lexical import evaluate
    from splade.debug_data import generate

    row = results(debug_run).set_index("model").loc["bm25"]
    found = evaluate(generate(), lambda text: text.lower().split())
    assert found["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4)
    assert found["RR@10"] == pytest.approx(row["RR@10"], abs=1e-4)


def test_training_metrics_of_every_epoch(debug_run):
    """TensorBoard has the training loss of each of the 6 epochs (the last
    one included) and the validation measures"""
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    (learner,) = [
        j for j in debug_run.jobs if j.parent.name == "xpm_torch.learner.learner"
    ]
    events = EventAccumulator(str(learner / "runs"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/pairwise-delta-MSE")]
    assert steps == [50, 100, 150, 200, 250, 300]
    assert [e.step for e in events.Scalars("train/nonzeros_d")] == steps
    assert len(events.Scalars("bestval/RR@10/mean")) == 6


def test_no_network_access(debug_run):
    log = debug_run.home / "network.log"
    assert not log.exists(), log.read_text()


def test_job_processes_are_guarded(debug_run):
    """Every job process had the network guard installed (so that the test
    above means something): the process ids in the jobs' logs are among the
    guarded ones, and a guarded process cannot connect"""
    home, env = debug_run.home, debug_run.env
    guarded = {
        int(line.split()[0])
        for line in (home / "guarded.log").read_text().split("\n")
        if line
    }
    jobs = sorted(err for job in debug_run.jobs for err in job.glob("*.err"))
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
    """The same command (without the monitor) again: every task is reused"""
    debug_run.stop()
    home = debug_run.home
    before = {
        p: p.stat().st_mtime for job in debug_run.jobs for p in job.glob("*.done")
    }
    assert len(before) == 8
    log = home / "rerun.log"
    assert run(debug_run.command, debug_run.env, log) == 0, failure_report(home, log)
    after = {p: p.stat().st_mtime for job in debug_run.jobs for p in job.glob("*.done")}
    assert before == after, "a finished task was run again"
    assert "Process started" not in log.read_text()
    assert [line for line in log.read_text().splitlines() if WARNING.search(line)] == []
