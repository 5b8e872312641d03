"""Training on several processes, with the processes (slow): a probe of the
collective operations (tests/support/ddp_probe.py), rank 0 killed, and one
optimisation step of the learner with 2 processes against 1 process
(tests/support/ddp_step.py); Lightning Fabric's ``ddp`` on CPU, ``gloo``.
The configuration and the work-arounds: tests/unit/test_ddp.py"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run


@pytest.fixture(scope="module")
def collectives(tmp_path_factory):
    """What each of 2 processes saw (tests/support/ddp_probe.py)"""
    out = tmp_path_factory.mktemp("collectives")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "support")]),
    }
    command = [sys.executable, "tests/support/ddp_probe.py", str(out), "collectives"]
    code = run(command, env, out / "log.txt", timeout=300)
    assert code == 0, (out / "log.txt").read_text()[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


@pytest.mark.slow
def test_upstream_broadcast_leaves_its_argument(collectives):
    """Lightning's broadcast returns rank 0's value and leaves its argument
    (xpm_torch's Learner drops the returned value); broadcast_decision gives
    rank 0's decision to every rank"""
    for seen in collectives:
        rank = seen["rank"]
        assert seen["broadcast"] == {"argument": [10 + rank], "returned": [10]}
        assert seen["decision"] == "STOP"


@pytest.mark.slow
def test_upstream_in_batch_negatives_fail_with_several_processes(collectives):
    for seen in collectives:
        assert seen["upstream_product"].startswith("RuntimeError"), seen


@pytest.mark.slow
def test_in_batch_negatives_of_every_process(collectives):
    for seen in collectives:
        assert seen["world_size"] == 2
        assert seen["gather"] == {
            "equal": True,
            "offset": 2 * seen["rank"],
            "gradient": True,
        }
        assert seen["product"] == {"shape": [2, 8], "equal": True, "local_first": True}


def orphan_survives(tmp_path: Path, die_with_parent: bool) -> bool:
    """Whether rank 1 still runs 10 s after rank 0 was killed"""
    import psutil

    tmp_path.mkdir(parents=True)
    args = [sys.executable, "tests/support/ddp_probe.py", str(tmp_path), "orphan"]
    if die_with_parent:
        args.append("die-with-parent")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (tmp_path / "log.txt").open("wt") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        pids = tmp_path / "pids.json"
        deadline = time.monotonic() + 120
        while not pids.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(0.5)
        rank0, rank1 = json.loads(pids.read_text())
        assert rank0 == process.pid
        process.kill()
        process.wait()
        time.sleep(10)
        try:
            child = psutil.Process(rank1)
            alive = child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        if alive:
            child.kill()
        return alive
    finally:
        process.kill()


@pytest.mark.slow
def test_upstream_ranks_outlive_rank_0(tmp_path):
    """Lightning does not end the other ranks when rank 0 is killed: a rank
    that does not notice (as in NCCL's collective operations, until their
    timeout) goes on; die_with_parent ends it with rank 0"""
    assert orphan_survives(tmp_path / "upstream", die_with_parent=False)
    assert not orphan_survives(tmp_path / "fixed", die_with_parent=True)


@pytest.fixture(scope="module")
def step_data(tmp_path_factory, collection):
    """Teacher pairs and triplets (texts) of the debug collection"""
    folder = tmp_path_factory.mktemp("step-data")
    documents = dict(collection.documents)
    queries = dict(collection.queries["train"])
    with (
        (folder / "pairs.tsv").open("wt") as pairs,
        (folder / "triplets.tsv").open("wt") as triplets,
    ):
        for pos_score, neg_score, qid, pos, neg in collection.teacher[:64]:
            texts = f"{queries[qid]}\t{documents[pos]}\t{documents[neg]}"
            pairs.write(f"{pos_score}\t{neg_score}\t{texts}\n")
            triplets.write(f"{texts}\n")
    return folder


def weights(job: Path):
    from safetensors.torch import load_file

    model = job / "checkpoints" / "last" / "model"
    return {
        f"{encoder}/{key}": value
        for encoder in ("encoder", "query_encoder")
        for key, value in load_file(model / encoder / "model.safetensors").items()
    }


def norm(tensors) -> float:
    return float(sum(t.double().pow(2).sum() for t in tensors) ** 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["margin_mse", "softmax_ce"])
def test_one_step_on_two_processes_is_one_step_on_one(
    loss, tmp_path, tiny_model, step_data
):
    """One optimisation step (SGD) of the learner with a global batch of 8
    on 2 processes (4 samples each) gives the parameters of one process with
    8 samples: the samplers give the same global batch, gradients are
    averaged, in-batch negatives and FLOPS cover the whole batch"""
    from safetensors.torch import load_file

    processes = {
        devices: subprocess.Popen(
            [
                sys.executable,
                "tests/support/ddp_step.py",
                str(tmp_path / f"devices-{devices}"),
                str(tiny_model),
                str(step_data),
                loss,
                str(devices),
                "8",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for devices in (1, 2)
    }
    jobs = {}
    for devices, process in processes.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]
        jobs[devices] = Path(output.strip().splitlines()[-1])
    assert jobs[1].name == jobs[2].name  # the same task identifier
    log = (jobs[2] / "learner.err").read_text()
    assert "DDP active (world size = 2): setting local batch size to 4" in log

    initial = load_file(tiny_model / "model.safetensors")
    one, two = weights(jobs[1]), weights(jobs[2])
    update = norm(one[key] - initial[key.split("/", 1)[1]] for key in one)
    difference = norm(two[key] - one[key] for key in one)
    assert update > 1e-3
    assert difference / update <= 1e-5, (difference, update)
    assert difference / norm(one.values()) <= 1e-5
