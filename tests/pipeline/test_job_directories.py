"""experimaestro 2.7 and the folders of jobs that start again
(splade/workarounds/experimaestro.py, keep_job_directories): upstream, every
task that is not a ResumableTask gets "In a future version, directory will
be cleaned up" when it starts, and a ResumableTask that failed max_retries
times is never started again by a later run; with the work-around, neither
(slow: experiments in processes of their own, two runs each)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

TASKS = """
from pathlib import Path

from experimaestro import Param, ResumableTask, Task


class Ok(Task):
    x: Param[int]

    def execute(self):
        pass


def fail(marker):
    with Path(marker).open("a") as fp:
        fp.write("attempt\\n")
    raise RuntimeError("this task fails")


class Fails(Task):
    marker: Param[str]

    def execute(self):
        fail(self.marker)


class FailsResumable(ResumableTask):
    marker: Param[str]

    def execute(self):
        fail(self.marker)
"""

DRIVER = """
import logging
import sys
from pathlib import Path

logging.basicConfig(level=logging.INFO)
sys.path.insert(0, str(Path(__file__).parent))
from experimaestro import experiment
from jobtasks import Fails, FailsResumable, Ok

workspace, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "patched":
    from splade.workarounds.experimaestro import keep_job_directories

    keep_job_directories()
    failing = Fails
else:
    # what the package's tasks would have to be for their folders to be kept
    failing = FailsResumable
with experiment(workspace, "jobs", port=None) as xp:
    xp.workspace.python_path.append(Path(__file__).parent)
    Ok.C(x=1).submit()
    task = failing.C(marker=str(workspace / "attempts.txt"))
    task.submit(max_retries=1)
    xp.wait()
    print("status:", task.__xpm__.job.status_path)
"""

CLEAN_UP = "In a future version, directory will be cleaned up"


@pytest.mark.slow
@pytest.mark.parametrize("patched", [False, True])
def test_failed_resumable_jobs_and_the_announced_clean_up(tmp_path, patched):
    (tmp_path / "jobtasks.py").write_text(TASKS)
    (tmp_path / "driver.py").write_text(DRIVER)
    workspace = tmp_path / "workspace"
    env = {**os.environ, "HOME": str(tmp_path)}
    mode = "patched" if patched else "upstream"
    outputs = []
    for _ in range(2):
        process = subprocess.run(
            [sys.executable, str(tmp_path / "driver.py"), str(workspace), mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        outputs.append(process.stdout + process.stderr)
        assert "status: " in process.stdout, outputs[-1][-3000:]
    attempts = (workspace / "attempts.txt").read_text().count("attempt")
    status = Path(outputs[-1].split("status: ")[1].split()[0])
    if patched:
        # no warning; the second run starts the failed job again, which
        # experimaestro keeps as resumable (its folder will be kept)
        assert not any(CLEAN_UP in output for output in outputs), outputs[0]
        assert attempts == 2
        assert json.loads(status.read_text())["resumable"] is True
    else:
        # the warning, for the task that is not resumable (its folder
        # existed when it started: made at its submission)
        assert f"{CLEAN_UP} for non-resumable tasks (jobtasks.ok)" in outputs[0]
        # the resumable task that failed once (max_retries=1) is not
        # started again
        assert "not restarting" in outputs[1], outputs[1][-3000:]
        assert attempts == 1
