"""experimaestro's experiment.wait() when a job failed, in an experiment of
its own (slow: a process; the other work-arounds:
tests/unit/test_workarounds.py)"""

import pytest

FAILING_TASK = """
from experimaestro import Task


class Fails(Task):
    def execute(self):
        raise RuntimeError("this task fails")
"""

FAILING_DRIVER = """
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from experimaestro import experiment
from experimaestro.scheduler.experiment import FailedExperiment
from failing import Fails

from splade.workarounds.experimaestro import raise_if_failed

with experiment(Path(sys.argv[1]), "failing", port=None) as xp:
    xp.workspace.python_path.append(Path(__file__).parent)
    Fails.C().submit()
    xp.wait()  # upstream: returns, although the job failed
    print("waited, failed:", xp.failed)
    try:
        raise_if_failed(xp)
    except FailedExperiment as e:
        print("raised:", e)
"""


@pytest.mark.slow
def test_upstream_wait_ignores_failed_jobs(tmp_path):
    """experimaestro's experiment.wait() returns when a job failed (the
    command exits with status 0); raise_if_failed raises FailedExperiment"""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "failing.py").write_text(FAILING_TASK)
    (tmp_path / "driver.py").write_text(FAILING_DRIVER)
    process = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "ws")],
        cwd=ROOT,
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "waited, failed: True" in process.stdout, process.stderr[-3000:]
    assert "raised: 1 job(s) failed (logs: " in process.stdout
    assert "fails.err" in process.stdout
