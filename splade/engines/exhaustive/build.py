"""Building the exhaustive engine's index (:mod:`.format`) in bounded memory:
:class:`IndexBuilder` (documents in any order, sorted runs spilled to disk
and merged), :func:`build_index` (from an iterator of documents) and
:func:`from_csr` (from a scipy CSR matrix, one row per document)
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from numba import njit

from splade.engines.exhaustive.format import (
    MAX_UINT32,
    SparseIndex,
    npy_header,
    write_meta,
)

__all__ = ["IndexBuilder", "build_index", "from_csr", "DEFAULT_BUDGET"]

MiB = 2**20
DEFAULT_BUDGET = 256 * MiB

# Bytes of builder memory per buffered posting: term (4), document (4) and
# weight (4), plus the sort: a permutation (8) and the sorted documents and
# weights (8)
BYTES_PER_POSTING = 28
MIN_CAPACITY = 256


# --- Builder


@njit(cache=True)
def _append(
    indptr,
    terms,
    weights,
    first_doc,
    position,
    stop,
    out_terms,
    out_docs,
    out_weights,
    size,
):
    """Copies the postings ``position:stop`` of CSR arrays (the document of
    posting ``p`` is ``first_doc + r`` where ``indptr[r] <= p < indptr[r +
    1]``) to ``out_*[size:]``, skipping zero weights, until the output is
    full. Returns (position, size) where it stopped."""
    capacity = out_terms.shape[0]
    row = np.searchsorted(indptr, position, side="right") - 1
    while position < stop and size < capacity:
        while indptr[row + 1] <= position:
            row += 1
        weight = np.float32(weights[position])
        if weight != 0:
            out_terms[size] = terms[position]
            out_docs[size] = first_doc + row
            out_weights[size] = weight
            size += 1
        position += 1
    return position, size


@njit(cache=True)
def _counting_sort(terms, num_terms, order):
    """Writes in ``order`` the stable permutation sorting ``terms`` (in
    ``[0, num_terms)``)"""
    counts = np.zeros(num_terms + 1, np.int64)
    for i in range(terms.shape[0]):
        counts[terms[i] + 1] += 1
    for t in range(num_terms):
        counts[t + 1] += counts[t]
    for i in range(terms.shape[0]):
        t = terms[i]
        order[counts[t]] = i
        counts[t] += 1


@njit(cache=True)
def _histogram(terms, num_terms):
    """Postings per term (np.bincount would copy ``terms`` to int64)"""
    counts = np.zeros(num_terms, np.int64)
    for i in range(terms.shape[0]):
        counts[terms[i]] += 1
    return counts


@njit(cache=True)
def _fill_terms(out, counts):
    """``out[:counts.sum()]``: term ``t`` repeated ``counts[t]`` times"""
    position = 0
    for t in range(counts.shape[0]):
        for _ in range(counts[t]):
            out[position] = t
            position += 1


class _Run:
    """A run spilled to disk (sorted by term then document): raw docids and
    weights files, per-term offsets in memory"""

    def __init__(self, folder: Path, number: int, counts, docs, weights):
        self.docs_path = folder / f"run-{number:05d}.docids"
        self.weights_path = folder / f"run-{number:05d}.weights"
        docs.tofile(self.docs_path)
        weights.tofile(self.weights_path)
        self.offsets = np.zeros(counts.shape[0] + 1, np.int64)
        np.cumsum(counts, out=self.offsets[1:])

    def position(self, term: int) -> int:
        """Position of the first posting of ``term`` (terms past the run's
        last term start at its end)"""
        return int(self.offsets[min(term, self.offsets.shape[0] - 1)])

    def counts(self, start: int, stop: int):
        """Postings per term, for terms ``start:stop``"""
        counts = np.zeros(stop - start, np.int64)
        known = np.diff(self.offsets[start : stop + 1])
        counts[: known.shape[0]] = known
        return counts

    def read(self, start: int, docs, weights):
        """Reads postings ``start:start + len(docs)`` into the arrays"""
        for path, out in ((self.docs_path, docs), (self.weights_path, weights)):
            with path.open("rb") as f:
                f.seek(4 * start)
                if f.readinto(out) != out.nbytes:
                    raise OSError(f"{path}: truncated run")

    def remove(self):
        self.docs_path.unlink(missing_ok=True)
        self.weights_path.unlink(missing_ok=True)


class IndexBuilder:
    """Builds an index folder from documents given in any order, in bounded
    memory.

    Postings are copied (numba, no temporaries) into preallocated work arrays
    of ``memory_budget / 28`` postings: terms, documents and weights (12
    bytes), a sorting permutation (8) and the sorted documents and weights
    (8). A full buffer is sorted by (term, document) and spilled to disk as
    a *run*. :meth:`finish` merges the runs term range by term range (a
    range holds at most a buffer's worth of postings, read into the same
    work arrays), writing ``docids.npy`` and ``weights.npy`` sequentially
    with plain file writes.

    Peak memory: ``memory_budget`` bytes (the work arrays), plus per-run
    term offsets (``8 * num_terms`` bytes per run), plus the caller's
    batches; when documents do not arrive in non-decreasing id order, the
    stable sort needs about 16 more bytes per buffered posting; when a
    single term has more postings than a buffer holds, its range grows to
    hold them (a term is never split). The output is never held in memory
    (the page cache holds what was written, as for any file). Temporary
    disk space: the size of the index (the runs), removed at the end.
    Measured (``bench/exhaustive.py``, 1,000,000 documents, 120 M postings,
    256 MiB budget, 13 runs): 8 s, peak RSS 467 MiB, of which about 100 MiB
    is Python, numpy and numba themselves and some 40 MiB the benchmark's
    batches of 20,000 documents.

    With documents added in non-decreasing id order (the usual case) sorting
    is a linear counting sort; otherwise a stable sort by (term, document).
    Either way the output does not depend on the budget: postings sorted by
    (term, document), ties (a term repeated in a document) in insertion
    order.

    :param folder: the index folder (created; ``meta.json`` is written last)
    :param num_terms: the vocabulary size (default: largest term id + 1)
    :param num_docs: the number of documents (default: largest id + 1)
    :param memory_budget: bytes of work arrays (default 256 MiB)
    :param tmp_folder: where runs go (default: ``folder / "_runs"``)
    """

    def __init__(
        self,
        folder,
        num_terms: int | None = None,
        num_docs: int | None = None,
        memory_budget: int = DEFAULT_BUDGET,
        tmp_folder=None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").unlink(missing_ok=True)
        self.tmp_folder = (
            Path(tmp_folder) if tmp_folder is not None else self.folder / "_runs"
        )
        self.num_terms = num_terms
        self.num_docs = num_docs
        self.memory_budget = int(memory_budget)
        self.capacity = max(MIN_CAPACITY, self.memory_budget // BYTES_PER_POSTING)
        # (np.empty: pages are committed when first written)
        self._terms = np.empty(self.capacity, np.uint32)
        self._docs = np.empty(self.capacity, np.uint32)
        self._weights = np.empty(self.capacity, np.float32)
        self._order = np.empty(self.capacity, np.int64)
        self._sorted = np.empty(self.capacity, np.uint64)  # docs + weights
        self._size = 0
        self._runs: list[_Run] = []
        self._max_term = -1
        self._max_doc = -1
        self._last_doc = -1
        self._docs_in_order = True
        self._finished = False

    @property
    def runs(self) -> int:
        """Number of runs spilled so far"""
        return len(self._runs)

    def add(self, docid: int, term_ids, weights):
        """Adds a document (``term_ids`` and ``weights`` of the same length)"""
        term_ids = np.asarray(term_ids)
        indptr = np.array([0, term_ids.shape[0]], np.int64)
        self._add(int(docid), indptr, term_ids, np.asarray(weights))

    def add_batch(self, first_docid: int, indptr, term_ids, weights):
        """Adds documents ``first_docid, first_docid + 1, ...`` given as CSR
        arrays: the terms of document ``first_docid + i`` are
        ``term_ids[indptr[i]:indptr[i + 1]]`` (``indptr[0]`` may be > 0)"""
        self._add(
            int(first_docid),
            np.asarray(indptr, np.int64),
            np.asarray(term_ids),
            np.asarray(weights),
        )

    def _add(self, first_doc: int, indptr, terms, weights):
        if self._finished:
            raise RuntimeError("the index has been built")
        count = indptr.shape[0] - 1
        if count <= 0:
            return
        start, stop = int(indptr[0]), int(indptr[-1])
        if terms.ndim != 1 or weights.ndim != 1 or terms.shape != weights.shape:
            raise ValueError("term ids and weights must be 1-D, of the same length")
        if stop > terms.shape[0] or (count > 1 and (np.diff(indptr) < 0).any()):
            raise ValueError("indptr does not fit the term ids")
        if not np.issubdtype(terms.dtype, np.integer):
            raise ValueError("term ids must be integers")
        last_doc = first_doc + count - 1
        if first_doc < 0 or last_doc > MAX_UINT32:
            raise ValueError(f"document ids must be in [0, 2^32): {first_doc}")
        if self.num_docs is not None and last_doc >= self.num_docs:
            raise ValueError(f"document id {last_doc} >= num_docs={self.num_docs}")
        if stop > start:
            low, high = int(terms[start:stop].min()), int(terms[start:stop].max())
            if low < 0 or high > MAX_UINT32:
                raise ValueError("term ids must be in [0, 2^32)")
            if self.num_terms is not None and high >= self.num_terms:
                raise ValueError(f"term id {high} >= num_terms={self.num_terms}")
            self._max_term = max(self._max_term, high)
        if first_doc < self._last_doc:
            self._docs_in_order = False
        self._last_doc = max(self._last_doc, last_doc)
        self._max_doc = max(self._max_doc, last_doc)
        position = start
        while position < stop:
            if self._size == self.capacity:
                self._spill()
            position, self._size = _append(
                indptr,
                terms,
                weights,
                first_doc,
                position,
                stop,
                self._terms,
                self._docs,
                self._weights,
                self._size,
            )

    def _sort(self, n: int, num_terms: int):
        """Sorts the first ``n`` postings of the work arrays by (term,
        document): returns views of the sorted docids and weights"""
        terms, docs = self._terms[:n], self._docs[:n]
        order = self._order[:n]
        if self._docs_in_order:
            _counting_sort(terms, num_terms, order)
        else:
            keys = (terms.astype(np.uint64) << np.uint64(32)) | docs
            order[:] = np.argsort(keys, kind="stable")
            del keys
        sorted_docs = self._sorted.view(np.uint32)[:n]
        sorted_weights = self._sorted.view(np.float32)[n : 2 * n]
        # (mode="clip": the default "raise" buffers the output)
        np.take(docs, order, out=sorted_docs, mode="clip")
        np.take(self._weights[:n], order, out=sorted_weights, mode="clip")
        return sorted_docs, sorted_weights

    def _spill(self):
        n = self._size
        if n == 0:
            return
        self.tmp_folder.mkdir(parents=True, exist_ok=True)
        num_terms = self._max_term + 1
        counts = _histogram(self._terms[:n], num_terms)
        docs, weights = self._sort(n, num_terms)
        self._runs.append(_Run(self.tmp_folder, len(self._runs), counts, docs, weights))
        self._size = 0

    def finish(self) -> "SparseIndex":
        """Writes the index; returns it (memory-mapped: see
        :meth:`SparseIndex.load` to load it in memory)"""
        if self._finished:
            raise RuntimeError("the index has already been built")
        self._finished = True
        num_terms = self.num_terms if self.num_terms is not None else self._max_term + 1
        num_docs = self.num_docs if self.num_docs is not None else self._max_doc + 1
        folder = self.folder
        if self._runs:
            self._spill()
            counts = sum(run.counts(0, num_terms) for run in self._runs)
        else:
            counts = _histogram(self._terms[: self._size], num_terms)
        offsets = np.zeros(num_terms + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        np.save(folder / "offsets.npy", offsets)
        with (
            (folder / "docids.npy").open("wb") as fdocs,
            (folder / "weights.npy").open("wb") as fweights,
        ):
            fdocs.write(npy_header(np.uint32, total))
            fweights.write(npy_header(np.float32, total))
            if self._runs:
                self._merge(offsets, fdocs, fweights)
            elif total:
                docs, weights = self._sort(total, num_terms)
                docs.tofile(fdocs)
                weights.tofile(fweights)
        self._terms = self._docs = self._weights = None
        self._order = self._sorted = None
        for run in self._runs:
            run.remove()
        if self.tmp_folder.exists() and not any(self.tmp_folder.iterdir()):
            self.tmp_folder.rmdir()
        write_meta(folder, num_docs, num_terms, total)
        return SparseIndex.load(folder, mmap=True)

    def _merge(self, offsets, fdocs, fweights):
        """Writes the postings term range by term range: each range reads the
        runs' slices (each sorted) into the work arrays, then sorts them
        stably by (term, document)"""
        num_terms = offsets.shape[0] - 1
        start = 0
        while start < num_terms:
            # the largest range [start, stop) within capacity (at least a term)
            limit = offsets[start] + self.capacity
            stop = int(np.searchsorted(offsets, limit, side="right")) - 1
            stop = min(max(stop, start + 1), num_terms)
            size = int(offsets[stop] - offsets[start])
            if size > self.capacity:  # a single term longer than a buffer
                self.capacity = size
                self._terms = np.empty(size, np.uint32)
                self._docs = np.empty(size, np.uint32)
                self._weights = np.empty(size, np.float32)
                self._order = np.empty(size, np.int64)
                self._sorted = np.empty(size, np.uint64)
            position = 0
            for run in self._runs:
                a, b = run.position(start), run.position(stop)
                if b == a:
                    continue
                n = b - a
                run.read(
                    a,
                    self._docs[position : position + n],
                    self._weights[position : position + n],
                )
                _fill_terms(
                    self._terms[position : position + n], run.counts(start, stop)
                )
                position += n
            assert position == size
            if size:
                docs, weights = self._sort(size, stop - start)
                docs.tofile(fdocs)
                weights.tofile(fweights)
            start = stop

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for run in self._runs:
                run.remove()
        elif not self._finished:
            self.finish()


def build_index(
    folder,
    documents: Iterable[tuple[int, Sequence[int], Sequence[float]]],
    num_terms: int | None = None,
    num_docs: int | None = None,
    memory_budget: int = DEFAULT_BUDGET,
) -> "SparseIndex":
    """Builds an index from ``(docid, term_ids, weights)`` triples (see
    :class:`IndexBuilder` for the memory used)"""
    builder = IndexBuilder(folder, num_terms, num_docs, memory_budget)
    for docid, term_ids, weights in documents:
        builder.add(docid, term_ids, weights)
    return builder.finish()


def from_csr(
    matrix,
    folder,
    memory_budget: int = DEFAULT_BUDGET,
    batch_rows: int = 65536,
) -> "SparseIndex":
    """Builds an index from a scipy sparse matrix (one row per document, one
    column per term), fed to :class:`IndexBuilder` by batches of rows"""
    import scipy.sparse as sp

    matrix = sp.csr_matrix(matrix)
    num_docs, num_terms = matrix.shape
    builder = IndexBuilder(folder, num_terms, num_docs, memory_budget)
    for first in range(0, num_docs, batch_rows):
        last = min(first + batch_rows, num_docs)
        builder.add_batch(
            first, matrix.indptr[first : last + 1], matrix.indices, matrix.data
        )
    return builder.finish()
