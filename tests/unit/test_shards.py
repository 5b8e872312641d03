"""Sharded encoding (``indexation.shards``, splade/shards.py): shards of
whole batches, the merge of their indices, the task graph (the retrieval
results of a sharded index: tests/pipeline/test_shards_run.py)"""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import ROOT, load

from splade.engines.exhaustive import IndexBuilder, from_csr
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
