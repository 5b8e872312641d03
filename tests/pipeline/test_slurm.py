"""The debug recipe through the Slurm launcher (``launchers/slurm``), with
fake ``sbatch``, ``srun``, ``sacct``, ``squeue`` and ``scancel``
(``tests/support/fake_slurm``) that run the jobs on this machine, as Slurm would: the
job's script with the variables of its ``#SBATCH`` options, and one process
per task (``srun``) with its rank

The learner trains on 2 processes (``-c learner.devices=2``, or ``-c
learner.num_nodes=2``: one process on each of 2 "nodes", both this machine),
CPU: its job has 2 Slurm tasks, which Lightning's Slurm environment takes
as the 2 ranks (no process is started by Lightning), and experimaestro's job
process of rank 1 is a follower.
"""

import shutil
import sys

import pandas as pd
import pytest
from conftest import ROOT, failure_report, run, user_environment

LAUNCHERS = '''
"""launchers/slurm/launchers.py, with the fake Slurm commands"""

import importlib.util

from experimaestro.launchers.slurm import SlurmLauncher

spec = importlib.util.spec_from_file_location("example", "{example}")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


def find_launcher(requirements, tags=frozenset()):
    launcher = example.find_launcher(requirements, tags)
    if launcher is None:
        return None
    return SlurmLauncher(options=launcher.options, binpath="{bin}", interval=0.5)
'''


#: 2 processes on one node, or one on each of 2 "nodes" (the fake srun
#: gives the tasks their node numbers; all run on this machine)
LAYOUTS = {
    "devices": ("learner.devices=2", "--nodes=1", "--ntasks-per-node=2"),
    "nodes": ("learner.num_nodes=2", "--nodes=2", "--ntasks-per-node=1"),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def slurm_run(request, tmp_path_factory):
    override, *sbatch = LAYOUTS[request.param]
    folder = tmp_path_factory.mktemp("slurm")
    home = folder / "home"
    home.mkdir()
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    slurm = folder / "slurm"
    shutil.copytree(ROOT / "tests" / "support" / "fake_slurm", slurm / "bin")
    (slurm / "state").mkdir()
    config = folder / "config"
    config.mkdir()
    (config / "launchers.py").write_text(
        LAUNCHERS.format(
            example=ROOT / "launchers" / "slurm" / "launchers.py", bin=slurm / "bin"
        )
    )
    log = home / "run.log"
    command = [
        "experimaestro",
        "run-experiment",
        "--xpm-config-dir",
        str(config),
        "splade/debug.yaml",
        "-c",
        override,
    ]
    code = run(command, env, log, timeout=1200)
    assert code == 0, failure_report(home, log)
    return home, slurm / "state", log, sbatch


def job(home, task: str):
    (path,) = (home / "experiments/splade/jobs").glob(f"{task}/*")
    return path


@pytest.mark.slow
def test_every_task_is_a_slurm_job(slurm_run):
    home, state, _, _ = slurm_run
    jobs = list((home / "experiments/splade/jobs").glob("*/*/*.done"))
    assert len(jobs) == 6
    assert len(list((state / "jobs").glob("*.sh"))) == 6
    assert (
        sorted(p.read_text().strip() for p in (state / "jobs").glob("*.status"))
        == ["0"] * 6
    )


@pytest.mark.slow
def test_the_learner_job_has_a_task_per_process(slurm_run):
    home, _, _, sbatch = slurm_run
    learner = job(home, "xpm_torch.learner.learner")
    script = (learner / "learner.sh").read_text()
    for line in (
        *(f"#SBATCH {option}" for option in sbatch),
        "#SBATCH --partition=cpu",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --time=60",
        "srun ./learner.py",
    ):
        assert line in script, script
    log = (learner / "learner.err").read_text()
    # rank 1 is Slurm's task 1 (a follower for experimaestro), not a process
    # started by Lightning
    assert "Non-zero rank (1): marking as slave process" in log
    assert "DDP active (world size = 2)" in log
    assert "Fabric: 2 process(es)" in log
    assert "LOCAL_RANK" not in log
    # the other tasks: one Slurm task each
    index = job(home, "splade.engines.exhaustiveindexbuilder")
    script = (index / "exhaustiveindexbuilder.sh").read_text()
    assert "#SBATCH --ntasks-per-node=1" in script


@pytest.mark.slow
def test_splade_beats_bm25(slurm_run):
    _, _, log, _ = slurm_run
    text = log.read_text()
    results = text.split("Saved results in ")[1].split()[0]
    table = pd.read_csv(results).set_index("model")
    assert table.loc["splade", "nDCG@10"] > table.loc["bm25", "nDCG@10"] + 0.2
