"""The experimaestro web monitor as a user watches a run with it:
`experimaestro run-experiment --web splade/debug.yaml` in a new HOME whose
settings.yaml has a `server:` section (fixed port and token); once the jobs
are done (the monitor keeps serving), the page is opened in a headless
Chromium driven through the DevTools protocol, and the server is stopped with
the page's Stop button.

Needs the `chromium` binary (Debian package `chromium`); skipped without it.
"""

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import ROOT, SPLADE_INDEX_TASK, failure_report, user_environment
from websockets.sync.client import connect

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 1800  # seconds, for the whole pipeline (2 minutes alone)
FINISHED = "Experiment finished; web server still running"

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
CLICK_EXPERIMENT = """(() => {
  const row = document.querySelector("table.experiments-table tbody tr");
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory):
    """The debug run with the web monitor, started in the background; yields
    (home, process, log, port, token)"""
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")

    home = tmp_path_factory.mktemp("home")
    env = user_environment(home)
    setup = subprocess.run(
        [sys.executable, "-m", "splade.workspace"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr

    # The monitor's host, port and token come from settings.yaml
    port, token = free_port(), secrets.token_hex(8)
    settings = home / ".config/experimaestro/settings.yaml"
    content = yaml.safe_load(settings.read_text())
    content["server"] = {"host": "127.0.0.1", "port": port, "token": token}
    settings.write_text(yaml.safe_dump(content, sort_keys=False))

    log = home / "run.log"
    with log.open("wt") as fp:
        process = subprocess.Popen(
            ["experimaestro", "run-experiment", "--web", "splade/debug.yaml"],
            cwd=ROOT,
            env=env,
            stdout=fp,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield home, process, log, port, token
    finally:
        if process.poll() is None:
            # Test failed: stop the run (and its jobs) as Ctrl+C does
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_monitor_shows_the_run_and_stops(monitored_run, tmp_path):
    home, process, log, port, token = monitored_run

    def alive():
        if process.poll() is not None:
            raise AssertionError(
                f"the run ended (code {process.returncode})\n"
                + failure_report(home, log)
            )

    # The server listens where settings.yaml says, once the experiment starts
    # (its log line comes just before it listens)
    url = f"http://127.0.0.1:{port}/auth?xpm-token={token}"
    deadline = time.monotonic() + TIMEOUT
    while f"xpm.webui: Web server started on {url}" not in log.read_text():
        alive()
        assert time.monotonic() < deadline, failure_report(home, log)
        time.sleep(0.5)
    while True:
        try:
            assert http_get(port, "/stop?xpm-token=wrong")[0] == 401
            break
        except ConnectionRefusedError:
            alive()
            assert time.monotonic() < deadline, failure_report(home, log)
            time.sleep(0.2)

    # The jobs run; the monitor keeps serving once they are done
    while FINISHED not in log.read_text():
        alive()
        assert time.monotonic() < deadline, failure_report(home, log)
        time.sleep(1)
    job_dirs = set((home / "experiments/splade/jobs").glob("*/*"))
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
        (row,) = page.wait_for(EXPERIMENTS, len, "experiment")
        assert row["id"] == "splade-debug"
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

    network_log = home / "network.log"
    assert not network_log.exists(), network_log.read_text()
