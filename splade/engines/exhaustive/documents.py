"""The exhaustive index document by document: :func:`document_blocks`
transposes the term-major postings, in bounded memory (for the formats and
engines that take documents one at a time: JSON lines exports, Milvus)"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np

__all__ = ["document_blocks"]


def _blocks_in_memory(index, docs_per_block: int):
    import scipy.sparse as sp

    offsets = np.asarray(index.offsets)
    matrix = sp.csc_matrix(
        (np.asarray(index.weights), np.asarray(index.docids), offsets),
        shape=(index.num_docs, index.num_terms),
    ).tocsr()
    matrix.sort_indices()
    for first in range(0, index.num_docs, docs_per_block):
        yield first, matrix[first : first + docs_per_block]


def _blocks_on_disk(index, num_blocks: int, docs_per_block: int, chunk: int, scratch):
    """Postings distributed into one file per block of documents (one pass
    over the term-major postings), then each block sorted in memory"""
    import scipy.sparse as sp

    folder = Path(tempfile.mkdtemp(prefix="splade-export-", dir=scratch))
    try:
        files = [
            [(folder / f"{b}.{kind}").open("wb") for kind in ("t", "d", "w")]
            for b in range(num_blocks)
        ]
        offsets = np.asarray(index.offsets)
        for start in range(0, index.num_postings, chunk):
            stop = min(start + chunk, index.num_postings)
            positions = np.arange(start, stop, dtype=np.int64)
            terms = (np.searchsorted(offsets, positions, side="right") - 1).astype(
                np.uint32
            )
            docids = np.asarray(index.docids[start:stop])
            weights = np.asarray(index.weights[start:stop])
            blocks = docids // docs_per_block
            order = np.argsort(blocks, kind="stable")
            bounds = np.searchsorted(blocks[order], np.arange(num_blocks + 1))
            for b in range(num_blocks):
                part = order[bounds[b] : bounds[b + 1]]
                if part.size:
                    for fp, values in zip(
                        files[b],
                        (terms[part], docids[part], weights[part]),
                        strict=True,
                    ):
                        values.tofile(fp)
        for handles in files:
            for fp in handles:
                fp.close()
        for b in range(num_blocks):
            first = b * docs_per_block
            size = min(docs_per_block, index.num_docs - first)
            if size <= 0:
                break
            terms = np.fromfile(folder / f"{b}.t", np.uint32)
            docids = np.fromfile(folder / f"{b}.d", np.uint32) - first
            weights = np.fromfile(folder / f"{b}.w", np.float32)
            for kind in ("t", "d", "w"):
                (folder / f"{b}.{kind}").unlink()
            block = sp.csr_matrix(
                (weights, (docids, terms)), shape=(size, index.num_terms)
            )
            block.sort_indices()
            yield first, block
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def document_blocks(
    index,
    docs_per_block: int = 100_000,
    memory_budget: int = 1 << 30,
    scratch=None,
) -> Iterator[Tuple[int, object]]:
    """The index document by document: ``(first document, CSR matrix of the
    documents first..first + n - 1)`` (terms sorted within a document)

    The index is transposed in memory when its postings (about 24 bytes
    each while transposing) fit in ``memory_budget``; otherwise they are
    first distributed into one temporary file per block of documents (in
    ``scratch``, default the system's temporary folder), each block then
    transposed on its own.
    """
    if index.num_postings * 24 <= memory_budget:
        yield from _blocks_in_memory(index, docs_per_block)
        return
    per_block = max(1, memory_budget // 24)
    num_blocks = max(1, math.ceil(index.num_postings / per_block))
    # (a whole number of the caller's blocks per block on disk)
    size = math.ceil(math.ceil(index.num_docs / num_blocks) / docs_per_block)
    size *= docs_per_block
    num_blocks = math.ceil(index.num_docs / size)
    for first, block in _blocks_on_disk(
        index, num_blocks, size, max(1, per_block // 2), scratch
    ):
        for start in range(0, block.shape[0], docs_per_block):
            yield first + start, block[start : start + docs_per_block]
