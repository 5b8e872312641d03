"""Sharded encoding on the debug collection, zero-shot (slow): the
retrieval results of a sharded index against one task's index (the shards
and their merge: tests/unit/test_shards.py). Both runs are made in the
workspace of the debug run (tests/support/shared_runs.py): the one-task index
of the embedded model is the debug run's index of the untrained model."""

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from conftest import SPLADE_INDEX_TASK
from shared_runs import GROUP, experiment_jobs

from splade.engines.exhaustive import SparseIndex

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(GROUP)]

TIME = re.compile(r"(\d\d-\d\d-\d\d \d\d:\d\d:\d\d)")
EVALUATION = "splade.efficiency.evaluatewithefficiency"


def duration(err: Path) -> float:
    """Seconds between the first and the last time stamp of a job's log"""
    stamps = TIME.findall(err.read_text(errors="replace"))
    first, last = (
        datetime.strptime(s, "%y-%m-%d %H:%M:%S") for s in (stamps[0], stamps[-1])
    )
    return (last - first).total_seconds()


def run_of(jobs, index_task: Path) -> str:
    """The run (TREC lines, sorted) of the evaluation of an index"""
    for job in jobs:
        params = job / "params.json"
        if job.parent.name == EVALUATION and index_task.name in params.read_text():
            return "\n".join(sorted((job / "run.txt").read_text().splitlines()))
    raise AssertionError(f"no evaluation of {index_task}")


def test_a_sharded_index_gives_the_same_results(debug_workspace, zero_shot_runs):
    home = debug_workspace.home
    one = experiment_jobs(home, zero_shot_runs[1])
    two = experiment_jobs(home, zero_shot_runs[2])
    (whole,) = [job for job in one if job.parent.name == SPLADE_INDEX_TASK]
    shards = [
        job for job in two if job.parent.name == "splade.shards.shardindexbuilder"
    ]
    (merged,) = [job for job in two if job.parent.name == "splade.shards.mergeshards"]
    assert len(shards) == 2
    for name in ("offsets.npy", "docids.npy", "weights.npy", "meta.json"):
        assert (merged / "index" / name).read_bytes() == (
            whole / "index" / name
        ).read_bytes()
    assert json.loads((merged / "index" / "meta.json").read_text())["num_docs"] == 2000
    assert SparseIndex.load(merged / "index").num_postings > 0
    assert run_of(two, merged) == run_of(one, whole)

    # Durations (on this machine's 2 cores, shards running at once)
    times = {
        "one task": duration(next(whole.glob("*.err"))),
        "shards": [duration(next(shard.glob("*.err"))) for shard in shards],
        "merge": duration(next(merged.glob("*.err"))),
    }
    print("index durations (s):", times)
    assert not (home / "network.log").exists()
