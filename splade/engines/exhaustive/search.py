"""Exhaustive term-at-a-time search (:class:`Searcher`)

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

import numba
import numpy as np

from splade.engines.exhaustive.kernels import (
    BRANCH_FREE,
    SELECTIONS,
    buffer_size,
    postings_count,
    search_batch,
    search_one,
)

__all__ = ["Searcher"]

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

    def __init__(
        self,
        index,
        dense_ratio: float = 0.5,
        branch_free: int = BRANCH_FREE,
        selection: str = "keys",
    ):
        """
        :param dense_ratio: a query reading fewer than ``dense_ratio *
            num_docs`` postings lists the documents it reaches (0: never,
            ``inf``: always)
        :param branch_free: documents per result appended branch-free to
            the key buffer before the top-k switches to a branch (32; a very
            large number: always branch-free)
        :param selection: the top-k selection, ``"keys"`` (the key buffer)
            or ``"heap"`` (a binary heap of the k best: the alternative
            measured against it)
        """
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}: {list(SELECTIONS)}")
        self.index = index
        self.dense_ratio = float(dense_ratio)
        self.branch_free = int(branch_free)
        self.selection = selection
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
        if self._buffer.shape[0] < buffer_size(k):
            self._buffer = np.empty(buffer_size(k), np.uint64)
        out_docs = np.empty(k, np.int64)
        out_scores = np.empty(k, np.float32)
        index = self.index
        size = search_one(
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
            self.branch_free,
            SELECTIONS[self.selection],
        )
        return out_docs[:size], out_scores[:size]

    def postings(self, term_ids, weights) -> int:
        """The number of postings that :meth:`search` reads for a query"""
        term_ids, weights = self._query(term_ids, weights)
        return int(postings_count(self.index.offsets, term_ids, weights))

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
            search_batch(
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
                buffer_size(k),
                out_docs,
                out_scores,
                out_counts,
                self.branch_free,
                SELECTIONS[self.selection],
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
