"""Sharded encoding on the debug collection, zero-shot (slow): the
retrieval results of a sharded index against one task's index (the shards
and their merge: tests/unit/test_shards.py)"""

import json
import re
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import failure_report, run, user_environment

from splade.engines.exhaustive import SparseIndex

TIME = re.compile(r"(\d\d-\d\d-\d\d \d\d:\d\d:\d\d)")


def duration(err: Path) -> float:
    """Seconds between the first and the last time stamp of a job's log"""
    stamps = TIME.findall(err.read_text(errors="replace"))
    first, last = (
        datetime.strptime(s, "%y-%m-%d %H:%M:%S") for s in (stamps[0], stamps[-1])
    )
    return (last - first).total_seconds()


@pytest.fixture(scope="module")
def zero_shot(tmp_path_factory):
    """The debug recipe without training (the embedded model), indexed by one
    task, then by 2 shards, in one workspace"""
    home = tmp_path_factory.mktemp("shards")
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    logs = {}
    for shards in (1, 2):
        logs[shards] = home / f"shards-{shards}.log"
        command = [
            "experimaestro",
            "run-experiment",
            "splade/debug.yaml",
            "-c",
            "mode=zero-shot",
            "-c",
            f"indexation.shards={shards}",
        ]
        assert run(command, env, logs[shards]) == 0, failure_report(home, logs[shards])
    return home / "experiments/splade/jobs", logs


def run_of(jobs: Path, index_task: Path) -> str:
    for params in jobs.glob("splade.efficiency.evaluatewithefficiency/*/params.json"):
        if index_task.name in params.read_text():
            return "\n".join(
                sorted((params.parent / "run.txt").read_text().splitlines())
            )
    raise AssertionError(f"no evaluation of {index_task}")


@pytest.mark.slow
def test_a_sharded_index_gives_the_same_results(zero_shot):
    jobs, _ = zero_shot
    (whole,) = jobs.glob("splade.engines.exhaustiveindexbuilder/*")
    shards = sorted(jobs.glob("splade.shards.shardindexbuilder/*"))
    (merged,) = jobs.glob("splade.shards.mergeshards/*")
    assert len(shards) == 2
    for name in ("offsets.npy", "docids.npy", "weights.npy", "meta.json"):
        assert (merged / "index" / name).read_bytes() == (
            whole / "index" / name
        ).read_bytes()
    assert json.loads((merged / "index" / "meta.json").read_text())["num_docs"] == 2000
    assert SparseIndex.load(merged / "index").num_postings > 0
    assert run_of(jobs, merged) == run_of(jobs, whole)

    # Durations (on this machine's 2 cores, shards running at once)
    times = {
        "one task": duration(next(whole.glob("*.err"))),
        "shards": [duration(next(shard.glob("*.err"))) for shard in shards],
        "merge": duration(next(merged.glob("*.err"))),
    }
    print("index durations (s):", times)
