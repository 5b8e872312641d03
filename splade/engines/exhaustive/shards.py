"""Sharded encoding of a large collection (``indexation.shards``)

Encoding the documents is the costly part of indexing (the 8.8M MS MARCO
passages: about one to two hours on one GPU). With ``indexation.shards: N``,
N tasks (:class:`ShardIndexBuilder`) each encode a slice of the collection
into an index of its own (the exhaustive engine's format, with the
collection's document ids), each submitted to the indexation launcher: under
Slurm, N jobs that run at once on N GPUs or nodes. A CPU task
(:class:`MergeShards`) then concatenates their postings term by term into
the index of the whole collection, the same, file for file, as the index
that one task builds: the slices are whole batches of
``indexation.batch_size`` documents, so that each document is encoded in the
same batch as by one task.

Only the exhaustive index is sharded (the exhaustive engine's, and those
converted from it: PISA, BMP): impact-index, which the other engines search,
cannot merge indices.
"""

import logging
import shutil
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from datamaestro_ir.data import DocumentStore
from experimaestro import Meta, Param, PathGenerator, Task, field

from splade.engines.exhaustive.format import SparseIndex, npy_header, write_meta
from splade.engines.exhaustive.tasks import ExhaustiveIndex, ExhaustiveIndexBuilder

__all__ = [
    "MergeShards",
    "ShardIndexBuilder",
    "merge",
    "shard_builders",
    "shard_range",
]

logger = logging.getLogger(__name__)


def shard_range(total: int, shard: int, shards: int, batch: int) -> Tuple[int, int]:
    """Documents ``[start, end)`` of shard ``shard`` of ``shards``: whole
    batches of ``batch`` documents, as evenly shared as they can be"""
    batches = -(-total // batch)
    start = batches * shard // shards * batch
    end = batches * (shard + 1) // shards * batch
    return min(start, total), min(end, total)


class ShardIndexBuilder(ExhaustiveIndexBuilder):
    """Encodes the documents of one shard (:func:`shard_range`) into an
    exhaustive index whose document ids are the collection's

    xpmir's encoding pipeline (``AbstractSparseRetrieverIndexBuilder``)
    encodes from the document after the one that ``create_index_builder``
    returns (its hook to resume a build) to ``max_docs``.
    """

    # (its identifier when it was in splade/shards.py)
    __xpmid__ = "splade.shards.shardindexbuilder"

    shard: Param[int]
    """The shard (from 0)"""

    shards: Param[int]
    """Number of shards"""

    alignment: Param[int]
    """Shards are made of whole batches of these many documents (the
    encoding batch size)"""

    def execute(self):
        total = self.documents.documentcount
        if self.max_docs:
            total = min(total, self.max_docs)
        self.start, end = shard_range(total, self.shard, self.shards, self.alignment)
        logger.info(
            "Shard %d/%d: documents %d to %d", self.shard, self.shards, self.start, end
        )
        # xpmir encodes the documents up to max_docs
        self.max_docs = end
        if end > self.start:
            super().execute()
        else:  # an empty shard
            self.create_index_builder()
            self.build_index()

    def create_index_builder(self):
        super().create_index_builder()
        return self.start - 1 if self.start else None


class MergeShards(Task):
    """Merges the indices of the shards into the index of the collection
    (:func:`merge`)"""

    # (its identifier when it was in splade/shards.py)
    __xpmid__ = "splade.shards.mergeshards"

    shards: Param[List[ExhaustiveIndex]]
    """The indices of the shards, in order"""

    documents: Param[DocumentStore]
    """The documents"""

    index_path: Meta[Path] = field(default_factory=PathGenerator("index"))
    """Folder of the index"""

    memory_budget: Meta[int] = field(default=1 << 28, ignore_default=True)
    """Bytes of postings merged at once"""

    def task_outputs(self, dep):
        return dep(
            ExhaustiveIndex.C(index_path=self.index_path, documents=self.documents)
        )

    def execute(self):
        shutil.rmtree(self.index_path, ignore_errors=True)
        folders = [shard.index_path for shard in self.shards]
        index = merge(folders, self.index_path, self.memory_budget)
        logger.info("Merged %d shards: %s", len(folders), index)


def shard_builders(shards: int, **common) -> List[ShardIndexBuilder]:
    """The tasks that encode the ``shards`` slices of the documents (to
    submit), whose indices :class:`MergeShards` merges

    :param common: ``documents``, ``encoder``, ``batch_size``,
        ``max_docs``, ``fabric_config``
    """
    return [
        ShardIndexBuilder.C(
            shard=shard,
            shards=shards,
            alignment=common["batch_size"],
            ordered_index=False,
            **common,
        )
        for shard in range(shards)
    ]


# --- Merging (the format of splade.engines.exhaustive.format)


def _write_array(path: Path, dtype, length: int):
    """A ``.npy`` file of ``length`` values, open for writing them"""
    fp = path.open("wb")
    fp.write(npy_header(dtype, length))
    return fp


def merge(folders: Sequence[Path], folder: Path, memory_budget: int = 1 << 28):
    """Merges exhaustive indices of disjoint, increasing document ranges
    (shard ``i``'s documents before shard ``i + 1``'s) into one: the
    postings of a term are the shards' postings of the term, in order.
    Reads and writes ``memory_budget`` bytes of postings at a time (a term
    longer than that at once); returns the index (memory-mapped)"""
    shards = [SparseIndex.load(path, mmap=True) for path in folders]
    num_terms = max(shard.num_terms for shard in shards)
    num_docs = max(shard.num_docs for shard in shards)
    offsets = []
    for shard in shards:  # every shard with num_terms terms
        padding = np.full(num_terms - shard.num_terms, shard.offsets[-1])
        offsets.append(np.concatenate([shard.offsets, padding]))
    counts = np.stack([np.diff(o) for o in offsets])  # shards x terms
    merged = np.zeros(num_terms + 1, np.int64)
    np.cumsum(counts.sum(0), out=merged[1:])
    # where each shard's postings of a term start in the merged term
    before = np.cumsum(counts, axis=0) - counts
    total = int(merged[-1])

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "offsets.npy", merged)
    capacity = max(memory_budget // 8, 1)  # uint32 document + float32 weight
    with (
        _write_array(folder / "docids.npy", np.uint32, total) as fdocs,
        _write_array(folder / "weights.npy", np.float32, total) as fweights,
    ):
        start = 0
        while start < num_terms:
            stop = int(np.searchsorted(merged, merged[start] + capacity, "right")) - 1
            stop = min(max(stop, start + 1), num_terms)
            size = int(merged[stop] - merged[start])
            docs = np.empty(size, np.uint32)
            weights = np.empty(size, np.float32)
            for ix, shard in enumerate(shards):
                first, last = offsets[ix][start], offsets[ix][stop]
                if last == first:
                    continue
                # destination of each posting: its term's place in the
                # merged range, plus its rank in the shard's term
                base = merged[start:stop] - merged[start] + before[ix, start:stop]
                base -= offsets[ix][start:stop]
                where = np.repeat(base, counts[ix, start:stop]) + np.arange(first, last)
                docs[where] = shard.docids[first:last]
                weights[where] = shard.weights[first:last]
            docs.tofile(fdocs)
            weights.tofile(fweights)
            start = stop
    write_meta(folder, num_docs, num_terms, total)
    return SparseIndex.load(folder, mmap=True)
