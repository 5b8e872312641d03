"""Exact, exhaustive sparse retrieval (term-at-a-time)

Learned sparse queries (SPLADE) have many terms with flat weights: dynamic
pruning (MaxScore, WAND) skips little, and scoring *every* posting of the
query terms into a dense accumulator is faster. This module holds such an
engine; it depends only on numpy and numba (scipy and impact-index are
imported lazily, by the converters that need them).

On-disk format (a folder, version 1)
------------------------------------

- ``offsets.npy``: int64, ``num_terms + 1`` entries; the postings of term
  ``t`` are ``offsets[t]:offsets[t + 1]``;
- ``docids.npy``: uint32, ``num_postings`` entries (document ids in
  ``[0, num_docs)``), increasing within a term (ties, i.e. a term repeated
  in a document, keep their insertion order);
- ``weights.npy``: float32, ``num_postings`` entries;
- ``meta.json``: ``{"format": "splade-exhaustive", "version": 1,
  "num_docs": ..., "num_terms": ..., "num_postings": ...}``, written last (a
  folder without it is an unfinished build).

Postings with a zero weight are dropped when building.

Entry points
------------

- :class:`IndexBuilder` (memory-bounded, spills sorted runs to disk),
  :func:`build_index` (from an iterator of documents),
  :func:`from_csr` (from a scipy CSR matrix, one row per document),
  :func:`from_impact_index` (from an impact-index index, as built by xpmir's
  ``SparseRetrieverIndexBuilder``);
- :meth:`SparseIndex.load`, :meth:`SparseIndex.searcher`;
- :meth:`Searcher.search` (one query) and :meth:`Searcher.search_batch`
  (many queries, optionally on several threads).

Scores
------

The score of a document is the sum, over the query terms in the given
order, of ``float32(query weight) * float32(document weight)``, multiplied
and accumulated in float32. It equals the float64 dot product up to float32
rounding (a relative error of about ``1e-7`` times the number of query
terms). Results are sorted by decreasing score, ties broken by the smaller
document id, and only documents with a score > 0 are returned (so at most
``k``, possibly fewer).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numba
import numpy as np
from numba import njit, prange

__all__ = [
    "FORMAT",
    "VERSION",
    "IndexBuilder",
    "SparseIndex",
    "Searcher",
    "build_index",
    "from_csr",
    "from_impact_index",
]

FORMAT = "splade-exhaustive"
VERSION = 1
MiB = 2**20
DEFAULT_BUDGET = 256 * MiB

# Bytes of builder memory per buffered posting: term (4), document (4) and
# weight (4), plus the sort: a permutation (8) and the sorted documents and
# weights (8)
BYTES_PER_POSTING = 28
MIN_CAPACITY = 256

MAX_UINT32 = 2**32 - 1


# --- Small helpers


def _npy_header(dtype, length: int) -> bytes:
    """The header of a 1-D ``.npy`` file (written before streamed data)"""
    import io

    buffer = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": (int(length),),
    }
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _write_meta(folder: Path, num_docs: int, num_terms: int, num_postings: int):
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "num_docs": int(num_docs),
        "num_terms": int(num_terms),
        "num_postings": int(num_postings),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


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
            fdocs.write(_npy_header(np.uint32, total))
            fweights.write(_npy_header(np.float32, total))
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
        _write_meta(folder, num_docs, num_terms, total)
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


# --- impact-index conversion

# impact-index 1.7.1 "forward" index (what IndexBuilder.build writes; layout
# found by reading the files, checked against impact-index's own iterators
# in the tests): ``postings.dat`` holds pages of 12-byte big-endian records
# (u64 docid, f32 value), each term's pages in posting order;
# ``information.bin`` holds a little-endian header (b"XDIF", u32 version = 1,
# u32 number of terms, u32 2), then for each term: u32 number of pages, f32
# max value, u64 max docid, u32 number of postings, and its pages (u64 byte
# position in postings.dat, u32 number of postings, f32 max value, u64 max
# docid). Decoded with numba when ``manifest.json`` says format_version 3 /
# index_kind forward, else read through ``Index.postings`` (the library has
# no bulk API: one Python object per posting).


@njit(cache=True)
def _little_endian(raw, position, size):
    value = np.uint64(0)
    for i in range(size):
        value |= np.uint64(raw[position + i]) << np.uint64(8 * i)
    return value


@njit(cache=True)
def _big_endian(raw, position, size):
    value = np.uint64(0)
    for i in range(size):
        value = (value << np.uint64(8)) | np.uint64(raw[position + i])
    return value


@njit(cache=True)
def _parse_information(raw, num_terms):
    """(ok, postings per term, largest docid per term, first page of each
    term (+ end), record position of each page, postings of each page)"""
    n = raw.shape[0]
    empty = np.zeros(0, np.int64)
    # first pass: the number of pages
    position, pages = 16, 0
    for _ in range(num_terms):
        if position + 20 > n:
            return False, empty, empty, empty, empty, empty
        count = np.int64(_little_endian(raw, position, 4))
        pages += count
        position += 20 + 24 * count
    if position != n:
        return False, empty, empty, empty, empty, empty
    lengths = np.zeros(num_terms, np.int64)
    max_docs = np.zeros(num_terms, np.int64)
    page_starts = np.zeros(num_terms + 1, np.int64)
    page_positions = np.zeros(pages, np.int64)
    page_lengths = np.zeros(pages, np.int64)
    position, p = 16, 0
    for t in range(num_terms):
        count = np.int64(_little_endian(raw, position, 4))
        max_docs[t] = np.int64(_little_endian(raw, position + 8, 8))
        lengths[t] = np.int64(_little_endian(raw, position + 16, 4))
        position += 20
        total = 0
        for _ in range(count):
            byte_position = np.int64(_little_endian(raw, position, 8))
            if byte_position % 12 != 0:
                return False, empty, empty, empty, empty, empty
            page_positions[p] = byte_position // 12
            page_lengths[p] = np.int64(_little_endian(raw, position + 8, 4))
            total += page_lengths[p]
            p += 1
            position += 24
        if total != lengths[t]:
            return False, empty, empty, empty, empty, empty
        page_starts[t + 1] = p
    return True, lengths, max_docs, page_starts, page_positions, page_lengths


@njit(cache=True)
def _gather_pages(records, page_positions, page_lengths, out_docs, out_values):
    """Decodes the pages' (big-endian u64 docid, f32 value) records into
    the outputs; returns False if a docid needs more than 32 bits"""
    value_bits = out_values.view(np.uint32)
    o = 0
    for p in range(page_positions.shape[0]):
        base = page_positions[p] * 12
        for r in range(page_lengths[p]):
            position = base + 12 * r
            doc = _big_endian(records, position, 8)
            if doc > np.uint64(0xFFFFFFFF):
                return False
            out_docs[o] = doc
            value_bits[o] = np.uint32(_big_endian(records, position + 8, 4))
            o += 1
    return True


@njit(cache=True)
def _unsorted_terms(docs, bounds):
    """Terms (indices into ``bounds``) whose docids decrease somewhere"""
    found = []
    for t in range(bounds.shape[0] - 1):
        for i in range(bounds[t] + 1, bounds[t + 1]):
            if docs[i] < docs[i - 1]:
                found.append(t)
                break
    return np.array(found, np.int64)


@dataclass
class _ImpactTerms:
    """Pages of each term of an impact-index forward index"""

    lengths: np.ndarray  # postings per term
    max_docs: np.ndarray  # largest docid per term
    page_starts: np.ndarray  # per term, first page (into the page arrays)
    page_positions: np.ndarray  # per page, first record
    page_lengths: np.ndarray


def _read_impact_information(path: Path) -> _ImpactTerms | None:
    """Parses ``information.bin``, or None when the layout is not the one
    known (``from_impact_index`` then uses the library's iterators)"""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        raw = (path / "information.bin").read_bytes()
        postings_size = (path / "postings.dat").stat().st_size
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != 3 or manifest.get("index_kind") != "forward":
        return None
    if len(raw) < 16:
        return None
    magic, version, num_terms, fourth = struct.unpack_from("<4sIII", raw, 0)
    if magic != b"XDIF" or version != 1 or fourth != 2:
        return None
    ok, *arrays = _parse_information(np.frombuffer(raw, np.uint8), num_terms)
    if not ok:
        return None
    information = _ImpactTerms(*arrays)
    ends = information.page_positions + information.page_lengths
    if ends.shape[0] and ends.max() * 12 > postings_size:
        return None
    return information


def _check_sorted(docs):
    """Stable order by document (impact-index keeps insertion order)"""
    if docs.shape[0] > 1 and (docs[1:] < docs[:-1]).any():
        return np.argsort(docs, kind="stable")
    return None


def from_impact_index(
    index_path,
    folder,
    memory_budget: int = DEFAULT_BUDGET,
    num_docs: int | None = None,
    method: str = "auto",
) -> "SparseIndex":
    """Converts an impact-index (1.7.x) index into an index folder

    The source is term-major, so the conversion streams: groups of terms of
    at most ``memory_budget / 28`` postings (one term at least) are decoded
    into two buffers (8 bytes per posting) and appended to the output.
    impact-index's builder requires increasing document ids, so its postings
    come sorted (checked: a term whose are not is sorted).

    :param method: ``"numpy"`` decodes ``information.bin`` and
        ``postings.dat`` directly (impact-index 1.7.1's forward layout,
        described above; memory-mapped, decoded with numba);
        ``"iterator"`` goes through ``impact_index.Index.postings(term)``
        (one Python object per posting); ``"auto"`` (the default) decodes
        directly when the layout is recognised, else iterates. Measured
        (``bench/exhaustive.py --convert``, CPU seconds per million
        postings): numpy 0.014 (12 M postings) to 0.023 (120 M: 2.7 s CPU,
        5.6 s wall with the disk), iterator 0.26 to 0.30.
    :param num_docs: default: the largest document id + 1
    """
    index_path, folder = Path(index_path), Path(folder)
    information = None
    if method in ("auto", "numpy"):
        information = _read_impact_information(index_path)
        if information is None and method == "numpy":
            raise ValueError(f"{index_path}: not an impact-index 1.7 forward index")
    elif method != "iterator":
        raise ValueError(f"unknown method {method!r}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    capacity = max(MIN_CAPACITY, int(memory_budget) // BYTES_PER_POSTING)

    if information is not None:
        lengths = information.lengths
        max_doc = int(information.max_docs[lengths > 0].max(initial=-1))
        num_terms = lengths.shape[0]

        def groups() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            if not lengths.sum():
                return
            path = index_path / "postings.dat"
            records = np.asarray(np.memmap(path, np.uint8, mode="r"))
            cumulative = np.concatenate([[0], np.cumsum(lengths)])
            docs = np.empty(min(capacity, cumulative[-1]), np.uint32)
            values = np.empty(docs.shape[0], np.float32)
            start = 0
            while start < num_terms:
                limit = cumulative[start] + capacity
                stop = int(np.searchsorted(cumulative, limit, side="right")) - 1
                stop = min(max(stop, start + 1), num_terms)
                size = int(cumulative[stop] - cumulative[start])
                if size > docs.shape[0]:  # a single term longer than a buffer
                    docs = np.empty(size, np.uint32)
                    values = np.empty(size, np.float32)
                p0, p1 = information.page_starts[start], information.page_starts[stop]
                if not _gather_pages(
                    records,
                    information.page_positions[p0:p1],
                    information.page_lengths[p0:p1],
                    docs,
                    values,
                ):
                    raise ValueError("a document id does not fit in 32 bits")
                # (sorted by impact-index's builder; checked all the same)
                bounds = cumulative[start : stop + 1] - cumulative[start]
                for t in _unsorted_terms(docs[:size], bounds):
                    a, b = bounds[t], bounds[t + 1]
                    order = np.argsort(docs[a:b], kind="stable")
                    docs[a:b], values[a:b] = docs[a:b][order], values[a:b][order]
                yield docs[:size], values[:size]
                start = stop

    else:
        import impact_index

        source = impact_index.Index.load(str(index_path), False)
        num_terms = source.num_postings()  # (the number of terms)
        lengths = np.array(
            [source.postings(t).length() for t in range(num_terms)], np.int64
        )
        max_doc = max(
            (source.postings(t).max_doc_id() for t in range(num_terms) if lengths[t]),
            default=-1,
        )
        record = np.dtype([("doc", np.uint64), ("value", np.float32)])

        def groups() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            chunks, size = [], 0
            for t in range(num_terms):
                if lengths[t] == 0:
                    continue
                postings = np.fromiter(
                    ((p.docid, p.value) for p in source.postings(t)),
                    record,
                    lengths[t],
                )
                order = _check_sorted(postings["doc"])
                if order is not None:
                    postings = postings[order]
                chunks.append(postings)
                size += postings.shape[0]
                if size >= capacity:
                    chunk = np.concatenate(chunks)
                    yield chunk["doc"], chunk["value"]
                    chunks, size = [], 0
            if chunks:
                chunk = np.concatenate(chunks)
                yield chunk["doc"], chunk["value"]

    if max_doc > MAX_UINT32:
        raise ValueError(f"document id {max_doc} does not fit in 32 bits")
    if num_docs is None:
        num_docs = max_doc + 1
    elif max_doc >= num_docs:
        raise ValueError(f"document id {max_doc} >= num_docs={num_docs}")
    offsets = np.zeros(num_terms + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    np.save(folder / "offsets.npy", offsets)
    written = 0
    with (
        (folder / "docids.npy").open("wb") as fdocs,
        (folder / "weights.npy").open("wb") as fweights,
    ):
        fdocs.write(_npy_header(np.uint32, total))
        fweights.write(_npy_header(np.float32, total))
        for docs, values in groups():
            docs.astype(np.uint32).tofile(fdocs)
            values.astype(np.float32, copy=False).tofile(fweights)
            written += docs.shape[0]
    if written != total:
        raise RuntimeError(f"{written} postings read, {total} expected")
    _write_meta(folder, num_docs, num_terms, total)
    return SparseIndex.load(folder, mmap=True)


# --- Index


class SparseIndex:
    """A term-major index: ``offsets`` (int64), ``docids`` (uint32),
    ``weights`` (float32); see the module's documentation"""

    def __init__(self, offsets, docids, weights, num_docs: int, folder=None):
        self.offsets = offsets
        self.docids = docids
        self.weights = weights
        self.num_docs = int(num_docs)
        self.num_terms = offsets.shape[0] - 1
        self.num_postings = int(offsets[-1])
        self.folder = Path(folder) if folder is not None else None

    @classmethod
    def load(cls, folder, mmap: bool = False) -> "SparseIndex":
        """Loads an index folder, fully in memory or (``mmap=True``) mapped
        read-only"""
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{folder}: not a {FORMAT} index, version {VERSION}")
        mode = "r" if mmap else None
        offsets = np.load(folder / "offsets.npy", mmap_mode=mode)
        docids = np.load(folder / "docids.npy", mmap_mode=mode)
        weights = np.load(folder / "weights.npy", mmap_mode=mode)
        checks = (
            offsets.dtype == np.int64
            and docids.dtype == np.uint32
            and weights.dtype == np.float32
            and offsets.shape == (meta["num_terms"] + 1,)
            and docids.shape == weights.shape == (meta["num_postings"],)
            and offsets[-1] == meta["num_postings"]
        )
        if not checks:
            raise ValueError(f"{folder}: arrays inconsistent with meta.json")
        # plain read-only ndarrays (views of the mapping when mmap): one type
        # for numba's kernels whatever the loading
        arrays = [np.asarray(a) for a in (offsets, docids, weights)]
        for array in arrays:
            array.flags.writeable = False
        return cls(*arrays, meta["num_docs"], folder)

    def searcher(self, **kwargs) -> "Searcher":
        return Searcher(self, **kwargs)

    def __repr__(self):
        return (
            f"SparseIndex({self.num_docs} documents, {self.num_terms} terms,"
            f" {self.num_postings} postings)"
        )


# --- Search kernels (numba)


@njit(cache=True)
def _accumulate(offsets, docids, weights, q_terms, q_weights, acc, touched, track):
    """Adds every posting of the query terms into ``acc``; with ``track``,
    lists the documents whose score was 0 before (``touched``, of
    ``num_docs + 1`` entries) and returns their number, or -1 when the list
    is full (possible only when a score comes back to exactly 0: negative
    weights; or when every document is reached)"""
    num_terms = offsets.shape[0] - 1
    n = 0
    last = touched.shape[0] - 1
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        w = q_weights[i]
        if t < 0 or t >= num_terms or w == 0:
            continue
        start, stop = offsets[t], offsets[t + 1]
        if track:
            # branch-free (whether a document was reached before is
            # unpredictable): always write, advance when it was not
            for p in range(start, stop):
                d = docids[p]
                old = acc[d]
                touched[n] = d
                n = min(n + (old == 0), last)
                acc[d] = old + w * weights[p]
        else:
            for p in range(start, stop):
                d = docids[p]
                acc[d] += w * weights[p]
    return -1 if n == last else n


@njit(cache=True)
def _postings_count(offsets, q_terms, q_weights):
    num_terms = offsets.shape[0] - 1
    total = 0
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if t >= 0 and t < num_terms and q_weights[i] != 0:
            total += offsets[t + 1] - offsets[t]
    return total


# Candidates of the key-buffer top-k: a positive float32 score has an
# integer bit pattern that grows with it, hence the uint64 key
# ``(0x7FFFFFFF - bits(score)) << 32 | doc``: smaller is better, by decreasing
# score then increasing document id (keys are unique).
_KEY_SHIFT = np.uint64(32)
_DOC_MASK = np.uint64(0xFFFFFFFF)
_TOP_BITS = np.uint32(0x7FFFFFFF)
# Keys below this one have a score > 0: a zero score has the top half
# 0x7FFFFFFF, a negative one (sign bit set) wraps around above it. (NaN
# weights are not supported.) Starting from this threshold, the candidate
# test is a single comparison: two tests, one of them whether the score is
# 0, made the branch unpredictable (4x slower with half the documents at 0)
_POSITIVE = np.uint64(0x7FFFFFFF) << np.uint64(32)


# (numba's np.partition and np.sort take seconds to compile: small ones here)


@njit(cache=True, inline="always")
def _partition(keys, lo, hi):
    """Hoare partition of ``keys[lo:hi + 1]`` around a median of three:
    returns (j, i), j < i, with keys[lo:j + 1] <= pivot <= keys[i:hi + 1]
    (and keys between them equal to the pivot)"""
    a, b, c = keys[lo], keys[(lo + hi) >> 1], keys[hi]
    if a > b:
        a, b = b, a
    pivot = max(a, min(b, c))
    i, j = lo, hi
    while i <= j:
        while keys[i] < pivot:
            i += 1
        while keys[j] > pivot:
            j -= 1
        if i <= j:
            keys[i], keys[j] = keys[j], keys[i]
            i += 1
            j -= 1
    return j, i


@njit(cache=True)
def _smallest(keys, k):
    """Moves the ``k`` smallest keys to ``keys[:k]`` (unordered; quickselect)"""
    lo, hi = 0, keys.shape[0] - 1
    while lo < hi:
        j, i = _partition(keys, lo, hi)
        if k - 1 <= j:
            hi = j
        elif k - 1 >= i:
            lo = i
        else:
            return


@njit(cache=True)
def _sort_keys(keys):
    """In-place quicksort (insertion sort below 16 keys)"""
    stack = np.empty(128, np.int64)
    stack[0], stack[1] = 0, keys.shape[0] - 1
    top = 2
    while top > 0:
        top -= 2
        lo, hi = stack[top], stack[top + 1]
        while hi - lo > 16:
            j, i = _partition(keys, lo, hi)
            # the larger part waits on the stack (depth O(log n))
            if j - lo < hi - i:
                stack[top], stack[top + 1] = i, hi
                hi = j
            else:
                stack[top], stack[top + 1] = lo, j
                lo = i
            top += 2
        for x in range(lo + 1, hi + 1):
            value = keys[x]
            y = x - 1
            while y >= lo and keys[y] > value:
                keys[y + 1] = keys[y]
                y -= 1
            keys[y + 1] = value


@njit(cache=True)
def _compact(buffer, size, k):
    """Keeps the ``k`` smallest keys of ``buffer[:size]`` (unordered) in
    ``buffer[:k]``; returns the largest of them (the new threshold)"""
    _smallest(buffer[:size], k)
    return buffer[:k].max()


@njit(cache=True)
def _finish(buffer, size, k, out_docs, out_scores):
    """Sorts the candidates, writes the first k; returns their number"""
    count = min(size, k)
    if size > k:
        _smallest(buffer[:size], k)
    keys = buffer[:count]
    _sort_keys(keys)
    score_bits = out_scores.view(np.uint32)
    for i in range(count):
        key = keys[i]
        out_docs[i] = np.int64(key & _DOC_MASK)
        score_bits[i] = _TOP_BITS - np.uint32(key >> _KEY_SHIFT)
    return count


# The candidate test of the top-k: while the threshold is loose (the first
# documents), about half the documents pass, unpredictably: a branch-free
# append is faster; then few pass, and a branch (rarely taken) is cheaper.
# ``warmup`` documents are read the first way (see _WARMUP).


@njit(cache=True)
def _select_listed(acc, touched, n, k, buffer, out_docs, out_scores, warmup):
    """Top-k of the listed documents (score > 0), resetting their
    accumulators (a document listed twice is seen once: its second reading
    is 0)"""
    bits = acc.view(np.uint32)
    capacity = buffer.shape[0]
    size = 0
    threshold = _POSITIVE
    switch = min(n, warmup)
    for i in range(switch):
        d = touched[i]
        b = bits[d]
        acc[d] = 0
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        buffer[size] = key
        size += key < threshold
        if size == capacity:
            threshold = _compact(buffer, size, k)
            size = k
    for i in range(switch, n):
        d = touched[i]
        b = bits[d]
        acc[d] = 0
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        if key < threshold:
            buffer[size] = key
            size += 1
            if size == capacity:
                threshold = _compact(buffer, size, k)
                size = k
    return _finish(buffer, size, k, out_docs, out_scores)


@njit(cache=True)
def _select_scan(acc, k, buffer, out_docs, out_scores, warmup):
    """Top-k of every document (score > 0), then resets the accumulator"""
    bits = acc.view(np.uint32)
    capacity = buffer.shape[0]
    size = 0
    threshold = _POSITIVE
    n = acc.shape[0]
    switch = min(n, warmup)
    for d in range(switch):
        b = bits[d]
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        buffer[size] = key
        size += key < threshold
        if size == capacity:
            threshold = _compact(buffer, size, k)
            size = k
    for d in range(switch, n):
        b = bits[d]
        key = (np.uint64(_TOP_BITS - b) << _KEY_SHIFT) | np.uint64(d)
        if key < threshold:
            buffer[size] = key
            size += 1
            if size == capacity:
                threshold = _compact(buffer, size, k)
                size = k
    acc[:] = 0
    return _finish(buffer, size, k, out_docs, out_scores)


_WARMUP = 32


def _buffer_size(k: int) -> int:
    """Candidates buffered before a compaction"""
    return 2 * k + 1024


@njit(cache=True)
def _search_one(
    offsets,
    docids,
    weights,
    q_terms,
    q_weights,
    k,
    acc,
    touched,
    buffer,
    dense_ratio,
    out_docs,
    out_scores,
):
    """One query: returns the number of results, written (sorted) in
    ``out_docs`` and ``out_scores``"""
    if k <= 0:
        return 0
    postings = _postings_count(offsets, q_terms, q_weights)
    if postings == 0:
        return 0
    dense = postings >= dense_ratio * acc.shape[0]
    n = _accumulate(
        offsets, docids, weights, q_terms, q_weights, acc, touched, not dense
    )
    warmup = _WARMUP * k
    if dense or n < 0:
        return _select_scan(acc, k, buffer, out_docs, out_scores, warmup)
    return _select_listed(acc, touched, n, k, buffer, out_docs, out_scores, warmup)


@njit(cache=True, parallel=True)
def _search_batch(
    offsets,
    docids,
    weights,
    q_indptr,
    q_terms,
    q_weights,
    k,
    num_docs,
    workers,
    dense_ratio,
    buffer_size,
    out_docs,
    out_scores,
    out_counts,
):
    """Queries ``q`` of the CSR arrays, interleaved over ``workers`` (each
    with its own accumulator)"""
    num_queries = q_indptr.shape[0] - 1
    for w in prange(workers):
        acc = np.zeros(num_docs, np.float32)
        touched = np.empty(num_docs + 1, np.uint32)
        buffer = np.empty(buffer_size, np.uint64)
        for q in range(w, num_queries, workers):
            a, b = q_indptr[q], q_indptr[q + 1]
            out_counts[q] = _search_one(
                offsets,
                docids,
                weights,
                q_terms[a:b],
                q_weights[a:b],
                k,
                acc,
                touched,
                buffer,
                dense_ratio,
                out_docs[q],
                out_scores[q],
            )


# --- Searcher


class Searcher:
    """Exhaustive term-at-a-time search of a :class:`SparseIndex`

    Every posting of every query term is added (float32 products, see the
    module's documentation) into a float32 accumulator over all documents,
    allocated once and reused: after a query only the entries it touched
    are reset. Two strategies, chosen per query from its number of postings
    ``P`` (known before scoring):

    - ``P < dense_ratio * num_docs``: the documents whose accumulator was 0
      are listed when first reached; the top-k then reads (and resets) only
      those;
    - otherwise (most documents are reached anyway): no list; the top-k
      scans the whole accumulator, then resets it (a memset). The default
      ``dense_ratio`` (0.5) sits between the measured crossovers: 0.7 at
      100,000 documents, 0.4 at 1,000,000 (where the accumulator outgrows
      the L2 cache and the list's random reads cost more).

    Both loops are branch-free where the outcome is unpredictable: the list
    is always written and its length advanced by ``old == 0``.

    The top-k keeps candidates as uint64 keys (the float32 score's bits,
    complemented, then the document id: smaller is better, so ties go to
    the smaller id) in a buffer of ``2k + 1024``; a candidate must be below
    a threshold key, at first the one that means "score > 0" (one
    comparison), then the k-th best key so far, which a quickselect renews
    when the buffer fills; the first ``32 k`` documents are appended
    branch-free (many of them pass, unpredictably), the others behind a
    branch (rarely taken). Measured (``bench/exhaustive.py --design``,
    queries reaching every document, CPU ms/query for the selection alone,
    k=10 / k=1000), at 100,000 documents: this 0.10 / 0.21 (touched list or
    full scan alike), a binary heap 0.09-0.12 / 0.54-0.57,
    ``np.argpartition`` on the touched documents' scores 1.7 / 1.8 (the
    accumulation itself: 0.28, 0.67 with a list); at 1,000,000 documents:
    this 0.84-0.87 / 1.06-1.07, a heap 0.86-1.14 / 1.55-1.76,
    ``np.argpartition`` 17 / 18 (the accumulation: 2.9, 6.9 with a list).

    A searcher is not thread-safe (one accumulator): use one per thread, or
    :meth:`search_batch`. Memory: 8 bytes per document (accumulator and
    list), plus the index.
    """

    def __init__(self, index: SparseIndex, dense_ratio: float = 0.5):
        self.index = index
        self.dense_ratio = float(dense_ratio)
        self._acc = np.zeros(index.num_docs, np.float32)
        self._touched = np.empty(index.num_docs + 1, np.uint32)
        self._buffer = np.empty(0, np.uint64)

    def _query(self, term_ids, weights):
        term_ids = np.asarray(term_ids, np.int64).ravel()
        weights = np.asarray(weights, np.float32).ravel()
        if term_ids.shape != weights.shape:
            raise ValueError("term ids and weights must have the same length")
        return term_ids, weights

    def search(self, term_ids, weights, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The (at most) ``k`` best documents with a score > 0: document ids
        (int64) and scores (float32), by decreasing score then increasing
        document id. Query terms outside the index's vocabulary are
        ignored; a term given twice counts twice."""
        term_ids, weights = self._query(term_ids, weights)
        k = int(min(max(k, 0), self.index.num_docs))
        if self._buffer.shape[0] < _buffer_size(k):
            self._buffer = np.empty(_buffer_size(k), np.uint64)
        out_docs = np.empty(k, np.int64)
        out_scores = np.empty(k, np.float32)
        index = self.index
        size = _search_one(
            index.offsets,
            index.docids,
            index.weights,
            term_ids,
            weights,
            k,
            self._acc,
            self._touched,
            self._buffer,
            self.dense_ratio,
            out_docs,
            out_scores,
        )
        return out_docs[:size], out_scores[:size]

    def search_batch(
        self, queries, k: int, threads: int = 1
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Searches many queries: ``queries`` is a scipy sparse matrix (one
        row per query), a ``(indptr, term_ids, weights)`` triple of CSR
        arrays, or a sequence of ``(term_ids, weights)``. With ``threads`` >
        1, queries are spread over that many numba threads (at most
        ``numba.config.NUMBA_NUM_THREADS``), each with its own accumulator
        (``8 * num_docs`` bytes each). Returns one ``search`` result per
        query."""
        indptr, term_ids, weights = _as_csr(queries)
        num_queries = indptr.shape[0] - 1
        k = int(min(max(k, 0), self.index.num_docs))
        out_docs = np.empty((num_queries, k), np.int64)
        out_scores = np.empty((num_queries, k), np.float32)
        out_counts = np.zeros(num_queries, np.int64)
        if num_queries == 0:
            return []
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
        workers = min(threads, num_queries)
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            index = self.index
            _search_batch(
                index.offsets,
                index.docids,
                index.weights,
                indptr,
                term_ids,
                weights,
                k,
                index.num_docs,
                workers,
                self.dense_ratio,
                _buffer_size(k),
                out_docs,
                out_scores,
                out_counts,
            )
        finally:
            numba.set_num_threads(previous)
        return [
            (out_docs[q, : out_counts[q]].copy(), out_scores[q, : out_counts[q]].copy())
            for q in range(num_queries)
        ]


def _as_csr(queries):
    """(indptr int64, term ids int64, weights float32) of a batch"""
    if hasattr(queries, "tocsr"):
        matrix = queries.tocsr()
        return (
            matrix.indptr.astype(np.int64),
            matrix.indices.astype(np.int64),
            matrix.data.astype(np.float32),
        )
    if isinstance(queries, tuple) and len(queries) == 3:
        indptr, term_ids, weights = queries
        return (
            np.asarray(indptr, np.int64),
            np.asarray(term_ids, np.int64),
            np.asarray(weights, np.float32),
        )
    terms = [np.asarray(t, np.int64).ravel() for t, _ in queries]
    weights = [np.asarray(w, np.float32).ravel() for _, w in queries]
    indptr = np.zeros(len(terms) + 1, np.int64)
    np.cumsum([len(t) for t in terms], out=indptr[1:])
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (
        indptr,
        np.concatenate(terms) if terms else empty_i,
        np.concatenate(weights) if weights else empty_f,
    )
