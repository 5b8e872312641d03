"""The debug recipe through the Slurm launcher (``launchers/slurm``), with
fake ``sbatch``, ``srun``, ``sacct``, ``squeue`` and ``scancel``
(``tests/support/fake_slurm``) that run the jobs on this machine, as Slurm
would: the job's script with the variables of its ``#SBATCH`` options, and
one process per task (``srun``) with its rank

The learner trains on 2 processes (``-c learner.devices=2``, or ``-c
learner.num_nodes=2``: one process on each of 2 "nodes", both this machine),
CPU, 4 epochs: its job has 2 Slurm tasks, which Lightning's Slurm
environment takes as the 2 ranks (no process is started by Lightning), and
experimaestro's job process of rank 1 is a follower. The runs
(tests/support/shared_runs.py, ``slurm_runs``) are also the uninterrupted
runs that tests/pipeline/test_ddp_run.py compares with.
"""

import pandas as pd
import pytest
from shared_runs import DDP_GROUP, SLURM_LAYOUTS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(DDP_GROUP)]


@pytest.fixture(scope="module", params=sorted(SLURM_LAYOUTS))
def slurm_run(request, slurm_runs):
    return slurm_runs(request.param)


def job(run, task: str):
    (path,) = run.jobs.glob(f"{task}/*")
    return path


def test_every_task_is_a_slurm_job(slurm_run):
    jobs = list(slurm_run.jobs.glob("*/*/*.done"))
    assert len(jobs) == 6
    state = slurm_run.state
    assert len(list((state / "jobs").glob("*.sh"))) == 6
    assert (
        sorted(p.read_text().strip() for p in (state / "jobs").glob("*.status"))
        == ["0"] * 6
    )


def test_the_learner_job_has_a_task_per_process(slurm_run):
    learner = job(slurm_run, "xpm_torch.learner.learner")
    script = (learner / "learner.sh").read_text()
    for line in (
        *(f"#SBATCH {option}" for option in slurm_run.sbatch),
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
    index = job(slurm_run, "splade.engines.exhaustiveindexbuilder")
    script = (index / "exhaustiveindexbuilder.sh").read_text()
    assert "#SBATCH --ntasks-per-node=1" in script


def test_splade_beats_bm25(slurm_run):
    text = slurm_run.log.read_text()
    results = text.split("Saved results in ")[1].split()[0]
    table = pd.read_csv(results).set_index("model")
    assert table.loc["splade", "nDCG@10"] > table.loc["bm25", "nDCG@10"] + 0.2
