"""Sharded encoding (``indexation.shards``, splade/shards.py): shards of
whole batches, the merge of their indices, the task graph, and (slow) the
retrieval results of a sharded index against one task's index"""

import json
import re
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import ROOT, failure_report, load, run, user_environment

from splade.engines.exhaustive import IndexBuilder, SparseIndex, from_csr
from splade.engines.exhaustive.shards import merge, shard_range

DEBUG = ROOT / "splade" / "debug.yaml"


@pytest.mark.parametrize("total,shards,batch", [(2000, 2, 256), (10, 3, 4), (5, 4, 4)])
def test_shards_are_whole_batches(total, shards, batch):
    ranges = [shard_range(total, shard, shards, batch) for shard in range(shards)]
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert end == start
    for start, end in ranges:
        assert start % batch == 0 and (end % batch == 0 or end == total)
    sizes = [end - start for start, end in ranges]
    assert max(sizes) - min(sizes) <= batch


def shard_index(matrix, start: int, end: int, folder: Path):
    """The index of documents [start, end) of a CSR matrix, with their ids"""
    builder = IndexBuilder(folder)
    builder.add_batch(
        start, matrix.indptr[start : end + 1], matrix.indices, matrix.data
    )
    return builder.finish()


@pytest.mark.parametrize("budget", [1 << 20, 64])
def test_merged_shards_are_the_index(tmp_path, budget):
    """The merged indices of 3 shards are, file for file, the index of the
    whole collection (also when the merge goes a few terms at a time)"""
    random = np.random.default_rng(0)
    matrix = sp.random(
        1000, 300, density=0.05, format="csr", random_state=random, dtype=np.float32
    )
    matrix.data += 0.1
    whole = from_csr(matrix, tmp_path / "whole")
    folders = []
    for shard, (start, end) in enumerate([(0, 384), (384, 768), (768, 1000)]):
        folders.append(tmp_path / f"shard-{shard}")
        shard_index(matrix, start, end, folders[-1])
    merged = merge(folders, tmp_path / "merged", memory_budget=budget)
    assert merged.num_docs == whole.num_docs == 1000
    for name in ("offsets.npy", "docids.npy", "weights.npy", "meta.json"):
        merged_bytes = (tmp_path / "merged" / name).read_bytes()
        assert merged_bytes == (tmp_path / "whole" / name).read_bytes(), name


def test_an_empty_shard_and_fewer_terms(tmp_path):
    matrix = sp.csr_matrix(np.array([[0, 1.5, 0, 0], [2.0, 0, 0, 0.5]], np.float32))
    whole = from_csr(matrix, tmp_path / "whole")
    shard_index(matrix, 0, 1, tmp_path / "a")  # terms 0-1 only
    IndexBuilder(tmp_path / "b").finish()  # nothing
    shard_index(matrix, 1, 2, tmp_path / "c")
    merged = merge([tmp_path / x for x in "abc"], tmp_path / "merged")
    for array in ("offsets", "docids", "weights"):
        assert np.array_equal(getattr(merged, array), getattr(whole, array))


def test_only_the_exhaustive_index_is_sharded():
    from splade.checks import check
    from splade.configuration import ConfigurationError

    with pytest.raises(ConfigurationError, match="indexation.shards: only the"):
        check(
            load(DEBUG, "indexation.shards=2", "retrieval.engine.name=maxscore"),
            downloads=False,
        )


def test_the_shards_are_tasks_merged_by_one(tmp_path):
    from dryrun import dry_run, of_type
    from xpmir.evaluation import Evaluate

    from splade.engines.exhaustive.shards import MergeShards, ShardIndexBuilder

    tasks = dry_run(load(DEBUG, "indexation.shards=2"), tmp_path)
    shards = of_type(tasks, ShardIndexBuilder)
    assert [(s.shard, s.shards, s.alignment) for s in shards] == [
        (0, 2, 256),
        (1, 2, 256),
    ]
    (merged,) = of_type(tasks, MergeShards)
    assert [index.__xpm__.task for index in merged.shards] == shards
    (splade,) = [
        e for e in of_type(tasks, Evaluate) if e.__xpm__.tags()["model"] == "splade"
    ]
    assert splade.retriever.index.__xpm__.task is merged


# --- The debug collection, zero-shot (slow)

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
