"""The BMP engine's index writer and searcher, which work around BMP's
integer arithmetic: the ``bmp`` package 0.2.8
(https://github.com/pisa-engine/BMP, the authors') and impact-index 1.7.1's
port (``impact_index.BmpSearcher``, built from the fork
https://github.com/bpiwowar/BMP) share the search code, and read the same
index files

Upstream behaviour (``tests/unit/test_bmp.py`` asserts each):

- **Scores wrap past 65,535.** ``block_score`` (``src/index/forward_index.rs``)
  sums ``query weight * document weight`` in a ``u16`` per document (Rust's
  release builds wrap silently): a document sharing many high weights with
  a long query gets a small score and drops out of the top-k. Query weights
  are ``ceil(32 q / max q)`` (``MAX_TERM_WEIGHT``, ``src/query/mod.rs``;
  ``Searcher.search``, ``python/src/lib.rs``), so a document whose stored
  weights sum to more than 65,535 / 32 = 2,047 can wrap. impact-index's
  conversion (``Index.to_bmp_streaming``) stores ``floor(256 w / max w)``,
  whatever the document lengths: on SciFact encoded by splade-bert-tiny, 44
  of 300 queries have an exact top-10 document whose score wraps. The block
  upper bounds (``src/query/live_block.rs``)
  saturate instead, so that pruning stays safe.
- **Document weights wrap past 255.** The forward index and the block
  maxima store ``score as u8`` (``fwd2bfwd``, ``src/index/forward_index.rs``;
  ``IndexBuilder::build``, ``src/index/inverted_index.rs``):
  ``bmp.pyterrier.BmpIndexer``'s default (``int(100 w)``) wraps every SPLADE
  weight above 2.55.
- **The last candidate block is never scored.** ``b_search_verbose``
  (``src/search.rs``) scores the current block only when a next one
  exists: an index of one block returns nothing, and a top-k document in
  the block of lowest upper bound is missed.
- **A query of no indexed term raises** ``pyo3_runtime.PanicException``
  (``Option::unwrap()`` on ``None``, ``src/search.rs:131``).
- **k - 1 results.** The heap starts at a threshold estimated from the
  10th/100th/1000th largest weight of each query term (``kth``,
  ``src/index/posting_list.rs``) and only keeps scores *above* it, so that
  the k-th document is lost when its score equals that estimate.

What this module does:

- :func:`write_index` stores ``round(s w)`` with the largest scale ``s``
  such that no stored weight exceeds 255 and no score can exceed the
  counter (:func:`safe_scale`: ``levels`` times the largest sum of a
  document's stored weights at most 65,535), places documents in a given
  order (BMP needs similar documents in the same blocks), and appends a
  *sentinel* block (documents holding sentinel terms only);
- :class:`Searcher` makes BMP use ``round(levels q / max q)`` as query
  weights (``levels`` = 16 by default, :func:`rounded_query`: a term absent
  from the index sets BMP's ``max q``), which with rounded document weights
  gives a better recall than upstream's 32 levels and truncation (the
  quantization errors no longer add up in one direction); it adds to each
  query the sentinel terms whose weights make the sentinel block's upper
  bound exactly one more than the heap's starting threshold, so that it is
  the last candidate block (the one left unscored) whenever there is one;
  it asks for k + 1 documents and keeps k, and returns nothing for a query
  of no indexed term.

With them, BMP at ``alpha = beta = 1`` returns the exact top-k of the
quantized scores, with either searcher (``tests/unit/test_bmp.py``).
"""

import json
import math
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = [
    "DEFAULT_QUERY_LEVELS",
    "MAX_IMPACT",
    "MAX_QUERY_WEIGHT",
    "MAX_SCORE",
    "Searcher",
    "bmp_query_weights",
    "document_stats",
    "kth_column",
    "quantize",
    "query_weights",
    "rounded_query",
    "safe_scale",
    "write_index",
]

#: Largest quantized query weight (``MAX_TERM_WEIGHT``)
MAX_QUERY_WEIGHT = 32
#: Largest score of the ``u16`` accumulator
MAX_SCORE = 2**16 - 1
#: Largest stored document weight (``u8``)
MAX_IMPACT = 255
#: Default number of query weight levels (recall@10 against exact search
#: on SciFact encoded by splade-bert-tiny, at alpha = 1: 0.961 with 32,
#: 0.972 with 20, 0.975 with 16, 0.968 with 12, 0.953 with 8)
DEFAULT_QUERY_LEVELS = 16
#: A query term that no index has: its weight sets BMP's ``max q``
DUMMY = "query-levels"
#: Sentinel terms: document weights 1, 2, 4, ..., 128 (any sum up to 255)
SENTINEL_WEIGHTS = (1, 2, 4, 8, 16, 32, 64, 128)


def safe_scale(
    max_weight: float, sums, counts, query_levels: int = MAX_QUERY_WEIGHT
) -> float:
    """The largest scale ``s`` such that, with document weights stored as
    ``round(s * w)``, no stored weight exceeds 255 and no score (at most
    ``query_levels`` times the sum of a document's stored weights, itself
    at most ``s * sum w + n / 2`` for a document of ``n`` terms) exceeds
    65,535

    :param sums: sum of the weights of each document
    :param counts: number of terms of each document
    """
    sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
    budget = MAX_SCORE // query_levels
    present = sums > 0
    if (counts[present] / 2 >= budget).any():
        raise ValueError("documents too long for BMP's 16-bit scores")
    limits = [(MAX_IMPACT - 0.5) / max_weight]
    if present.any():
        limits.append(np.min((budget - counts[present] / 2) / sums[present]))
    # (a margin for the float32 rounding of s w; write_index checks)
    return float(min(limits)) * (1 - 1e-6)


def document_stats(index):
    """Sum of the weights, and number of terms, of each document of a
    term-major index"""
    sums = np.zeros(index.num_docs, np.float64)
    counts = np.zeros(index.num_docs, np.int64)
    step = 1 << 24
    for start in range(0, index.num_postings, step):
        docids = np.asarray(index.docids[start : start + step])
        weights = np.asarray(index.weights[start : start + step], np.float64)
        sums += np.bincount(docids, weights=weights, minlength=index.num_docs)
        counts += np.bincount(docids, minlength=index.num_docs)
    return sums, counts


def quantize(weights, scale: float) -> np.ndarray:
    """``round(scale * w)`` (halves up), computed in float32"""
    scaled = np.asarray(weights, np.float32) * np.float32(scale)
    return np.floor(scaled + np.float32(0.5)).astype(np.uint32)


def write_index(
    index,
    path,
    block_size: int = 32,
    compress_range: bool = False,
    scale: Optional[float] = None,
    allow_overflow: bool = False,
    order: Optional[np.ndarray] = None,
    query_levels: int = DEFAULT_QUERY_LEVELS,
) -> Dict:
    """Writes the BMP index of a term-major index
    (:class:`splade.engines.exhaustive.SparseIndex`) with the ``bmp`` package's
    ``InvertedIndexer``: document weights stored as ``int(scale * w)``
    (``scale``: :func:`safe_scale` by default; postings stored as 0 are
    dropped), term ``t`` named ``str(t)``, then the sentinel block; a
    ``scale`` with which a score can overflow is refused unless
    ``allow_overflow`` (to show the upstream behaviour). ``order`` (the
    document ids, in their order in the index; default: increasing) places
    similar documents in the same blocks (BMP's pruning needs it); the
    documents keep their ids as names, so that results need no mapping.
    Writes
    ``<path>.json`` (scale, sentinel terms and block, the 10th, 100th and
    1000th largest stored weight of each term) and returns it."""
    import bmp

    path = Path(path)
    num_docs, num_terms = index.num_docs, index.num_terms
    if not len(SENTINEL_WEIGHTS) <= block_size <= 256:
        raise ValueError("BMP blocks hold 8 (the sentinel block) to 256 documents")
    sums, counts = document_stats(index)
    max_weight = float(np.max(index.weights)) if index.num_postings else 1.0
    if not 1 <= query_levels <= MAX_QUERY_WEIGHT:
        raise ValueError(f"query_levels must be in [1, {MAX_QUERY_WEIGHT}]")
    if scale is None:
        scale = safe_scale(max_weight, sums, counts, query_levels)
    offsets = np.asarray(index.offsets)
    impacts = quantize(index.weights, scale)
    kept = impacts > 0
    docids = np.asarray(index.docids)[kept]
    impacts = impacts[kept]
    names = np.arange(num_docs)
    if order is not None:  # position of each document in the index
        names = np.asarray(order, np.int64)
        if not np.array_equal(np.sort(names), np.arange(num_docs)):
            raise ValueError("order is not a permutation of the documents")
        position = np.empty(num_docs, np.int64)
        position[names] = np.arange(num_docs)
        docids = position[docids]
    terms = np.repeat(np.arange(num_terms, dtype=np.uint32), np.diff(offsets))[kept]
    starts = np.concatenate([[0], np.cumsum(np.bincount(terms, minlength=num_terms))])
    # BMP numbers the terms in the order they are added, and its forward
    # index stores these numbers on 16 bits: only the terms that have
    # postings are added (named by their id), numbered 0, 1, ... (LLM
    # vocabularies have up to 151,936 entries, and far fewer are used)
    used = np.flatnonzero(np.diff(starts) > 0)
    if len(used) + len(SENTINEL_WEIGHTS) > 2**16:
        raise ValueError(
            f"BMP's forward index stores term numbers on 16 bits: {len(used)}"
            f" terms have postings, at most {2**16 - len(SENTINEL_WEIGHTS)}"
        )
    numbers = np.zeros(num_terms, np.uint32)
    numbers[used] = np.arange(len(used), dtype=np.uint32)

    # documents padded to whole blocks, then the sentinel block
    sentinel_block = math.ceil(num_docs / block_size)
    first_sentinel = sentinel_block * block_size
    # (their names and kth rows follow the vocabulary; their numbers, the
    # used terms)
    sentinel_terms = list(range(num_terms, num_terms + len(SENTINEL_WEIGHTS)))
    sentinel_numbers = list(range(len(used), len(used) + len(SENTINEL_WEIGHTS)))

    indexer = bmp.InvertedIndexer(str(path), block_size, compress_range)
    by_doc = np.argsort(docids, kind="stable")
    doc_starts = np.searchsorted(docids[by_doc], np.arange(num_docs + 1))
    by_doc_terms, by_doc_impacts = numbers[terms[by_doc]], impacts[by_doc]
    for doc in range(first_sentinel):
        if doc < num_docs:
            a, b = doc_starts[doc], doc_starts[doc + 1]
            vector = list(
                zip(
                    by_doc_terms[a:b].tolist(),
                    by_doc_impacts[a:b].tolist(),
                    strict=True,
                )
            )
            indexer.add_document(str(names[doc]), vector)
        else:
            indexer.add_document(f"padding{doc}", [])
    del by_doc, by_doc_terms, by_doc_impacts
    stored = np.bincount(docids, weights=impacts, minlength=num_docs)
    if impacts.max(initial=0) > MAX_IMPACT:
        raise ValueError(f"scale {scale}: stored weights above {MAX_IMPACT}")
    overflow = int((stored * query_levels > MAX_SCORE).sum())
    if overflow and not allow_overflow:
        raise ValueError(f"scale {scale}: {overflow} documents can overflow")
    # one sentinel term per document of the sentinel block
    for number, (term, weight) in enumerate(
        zip(sentinel_numbers, SENTINEL_WEIGHTS, strict=True)
    ):
        indexer.add_document(f"sentinel{number}", [(term, weight)])
    kth = np.zeros((num_terms + len(SENTINEL_WEIGHTS), 3), np.uint32)
    if order is not None:  # postings by position
        by_term = np.lexsort((docids, terms))
        terms = terms[by_term]
        docids, impacts = docids[by_term], impacts[by_term]
    for term in used.tolist():
        a, b = starts[term], starts[term + 1]
        postings = list(zip(docids[a:b].tolist(), impacts[a:b].tolist(), strict=True))
        indexer.add_term(str(term), postings)
        if b > a:
            ranked = np.sort(impacts[a:b])[::-1]
            for column, rank in enumerate((10, 100, 1000)):
                if len(ranked) >= rank:
                    kth[term, column] = ranked[rank - 1]
    for number, (term, weight) in enumerate(
        zip(sentinel_terms, SENTINEL_WEIGHTS, strict=True)
    ):
        indexer.add_term(str(term), [(first_sentinel + number, weight)])
    indexer.finish()
    meta = {
        "scale": scale,
        "query_levels": query_levels,
        "block_size": block_size,
        "num_docs": num_docs,
        "sentinel_terms": sentinel_terms,
        "sentinel_block": sentinel_block,
        "max_document_sum": float(sums.max(initial=0)),
        "max_stored_sum": int(stored.max(initial=0)),
        "overflowing_documents": overflow,
        "max_weight": max_weight,
        "used_terms": int(len(used)),
    }
    (path.parent / f"{path.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    np.save(path.parent / f"{path.name}.kth.npy", kth)
    return meta


def kth_column(k: int) -> int:
    """The column of ``kth`` that BMP's searcher reads for a top-k (``kth``,
    ``src/index/posting_list.rs``; 3: none, a threshold of 0)"""
    return int(k > 10) + int(k > 100) + int(k > 1000)


def query_weights(weights: np.ndarray, maximum=None) -> np.ndarray:
    """BMP's quantized query weights, ``ceil(32 q / max q)`` in float32
    (``max q``: ``maximum`` if given, the largest weight of the query as
    BMP receives it, including terms that the index does not have)"""
    weights = np.asarray(weights, np.float32)
    maximum = weights.max() if maximum is None else maximum
    scale = np.float32(MAX_QUERY_WEIGHT) / np.float32(maximum)
    return np.ceil(weights * scale).astype(np.int64)


def rounded_query(weights, levels: int = DEFAULT_QUERY_LEVELS):
    """``(max q, weights)`` to give BMP's searcher so that it uses
    ``round(levels q / max(q))`` as query weights (terms rounded to 0 are
    dropped: those whose given weight is not positive)

    BMP uses ``ceil(32 q / max q)``, max q being the largest weight it
    receives: with a term absent from the index (:data:`DUMMY`) of weight
    ``32 max(q) / levels``, and ``q - max q / (2 levels)`` instead of ``q``,
    that is ``round(levels q / max(q))``.
    """
    weights = np.asarray(weights, np.float32)
    # (a margin, so that no weight is above levels)
    maximum = np.float32(weights.max() * MAX_QUERY_WEIGHT / levels * (1 + 1e-6))
    shifted = weights - np.float32(0.5) * maximum / np.float32(MAX_QUERY_WEIGHT)
    return maximum, shifted.astype(np.float32)


def bmp_query_weights(weights, levels: int = DEFAULT_QUERY_LEVELS) -> np.ndarray:
    """The integer query weights that BMP uses for a query given to
    :meth:`Searcher.search` (0 for the dropped terms)"""
    maximum, shifted = rounded_query(weights, levels)
    quantized = query_weights(shifted, maximum)
    return np.where(shifted > 0, quantized, 0)


class Searcher:
    """BMP search with the work-arounds of this module

    :param implementation: ``"bmp"`` (the ``bmp`` package's ``Searcher``) or
        ``"impact-index"`` (``impact_index.BmpSearcher``), both reading the
        index written by :func:`write_index`
    """

    def __init__(self, path, implementation: str = "bmp"):
        path = Path(path)
        self.meta = json.loads((path.parent / f"{path.name}.json").read_text())
        self.kth = np.load(path.parent / f"{path.name}.kth.npy")
        self.num_terms = len(self.kth) - len(SENTINEL_WEIGHTS)
        if implementation == "bmp":
            import bmp

            self.searcher = bmp.Searcher(str(path))
        elif implementation == "impact-index":
            import impact_index

            self.searcher = impact_index.BmpSearcher(str(path))
        else:
            raise ValueError(f"unknown BMP implementation {implementation!r}")

    def sentinel(self, terms, quantized, k) -> Dict[int, int]:
        """Sentinel terms and the quantized weights that make the sentinel
        block's upper bound the starting threshold + 1 (empty if that
        cannot be: a threshold above 32 x 255 - 1)"""
        column = kth_column(k)
        threshold = 0
        if column < 3:
            threshold = int((self.kth[terms, column] * quantized).max(initial=0))
        target = threshold + 1
        result = {}
        # weights 1..32 on sentinel terms of document weights 1, 2, 4, ...:
        # the largest first
        for term, weight in sorted(
            zip(self.meta["sentinel_terms"], SENTINEL_WEIGHTS, strict=True),
            key=lambda pair: -pair[1],
        ):
            count = min(target // weight, MAX_QUERY_WEIGHT)
            if count:
                result[term] = count
                target -= count * weight
        return result if target == 0 else {}

    def search(
        self, query: Dict[int, float], k: int, alpha: float = 1.0, beta: float = 1.0
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Document ids and quantized scores (divided by the document scale
        and by ``32 / max q``) of the top-k"""
        terms = np.fromiter(query.keys(), np.int64, len(query))
        weights = np.fromiter(query.values(), np.float32, len(query))
        keep = (weights > 0) & (terms >= 0) & (terms < self.num_terms)
        terms, weights = terms[keep], weights[keep]
        if len(terms) == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        asked = k + 1
        levels = self.meta.get("query_levels", MAX_QUERY_WEIGHT)
        maximum, weights = rounded_query(weights, levels)
        keep = weights > 0
        terms, weights = terms[keep], weights[keep]
        toks = {
            str(t): float(w)
            for t, w in zip(terms.tolist(), weights.tolist(), strict=True)
        }
        toks[DUMMY] = float(maximum)
        if beta >= 1:  # (with fewer terms kept, the sentinel would count)
            quantized = query_weights(weights, maximum)
            sentinel = self.sentinel(terms, quantized, asked)
            for term, count in sentinel.items():
                # ceil(32 w / max q) = count, with a margin for rounding
                toks[str(term)] = float((count - 0.5) * maximum / MAX_QUERY_WEIGHT)
        try:
            docnos, scores = self.searcher.search(toks, asked, alpha, beta)
        except BaseException as error:  # pyo3_runtime.PanicException
            if type(error).__name__ != "PanicException":
                raise
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        # (the sentinel documents, never scored, are never returned)
        docids = np.fromiter(map(int, docnos[:k]), np.int64, min(k, len(docnos)))
        factor = np.float32(self.meta["scale"] * MAX_QUERY_WEIGHT / maximum)
        return docids, np.asarray(scores[: len(docids)], np.float32) / factor
