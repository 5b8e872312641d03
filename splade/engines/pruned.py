"""Static pruning with exact rescoring: the exhaustive engine's scan on
posting lists cut to their highest weights, then the candidates rescored
exactly from a forward index; approximate

The index (converted from the exhaustive one by :class:`PrunedConverter`)
keeps, for each term, its ``postings`` highest-weighted postings (all of
them for a shorter list), in document order, as the exhaustive engine's
format (:mod:`splade.engines.exhaustive.format`), and a forward index: each
document's terms and weights (CSR). A query

1. adds every kept posting of its terms (its ``query_terms``
   highest-weighted terms; all by default) into a float32 accumulator, as
   the exhaustive engine does (:func:`~splade.engines.exhaustive.kernels.accumulate`):
   a lower bound of each reached document's score;
2. takes the ``candidates`` documents of highest partial score (the
   exhaustive engine's top-k selection);
3. scores each of them exactly (the dot product with the whole query, from
   its forward vector), and returns the top-k of those exact scores.

Recall comes from two facts of learned sparse vectors: a posting list's
highest weights hold most of its mass, and the exact rescoring corrects
the ranking of any candidate (a document missing only low weights is
found). Every returned score is exact (float32 products, as the exhaustive
engine's); what can be missed is a document whose partial score left it
out of the candidates. The cost is that of at most ``postings`` postings
per query term, plus ``candidates`` forward vectors: it does not grow with
the collection once the lists are longer than ``postings``.

This is the pruning step of Seismic (Bruch, Nardini, Rulli, Venturini,
"Efficient Inverted Indexes for Approximate Retrieval over Learned Sparse
Representations", SIGIR 2024, https://arxiv.org/abs/2404.18812: each list
cut to its highest impacts, documents scored from a forward index) without
its blocks and summaries: every kept posting is read, in order, instead of
skipping blocks. ``python -m bench.approximate`` measures it against
Seismic and the exact engine (BENCHMARKS.md).
"""

import json
import logging
import shutil
from pathlib import Path
from typing import Annotated, Dict, List, Tuple

import numpy as np
from annotated_types import Ge, Gt
from experimaestro import Meta, Param, PathGenerator, Task, field
from experimaestro.experiments import configuration
from numba import njit
from xpmir.index.sparse import AbstractSparseRetrieverIndex, SparseRetriever
from xpmir.rankers import ScoredDocument

from splade.engines.base import Engine
from splade.engines.exhaustive import (
    ExhaustiveIndexBuilder,
    SparseIndex,
    term_major,
)
from splade.engines.exhaustive.format import write_meta
from splade.engines.exhaustive.kernels import accumulate, buffer_size, select_listed
from splade.workarounds.datamaestro_ir import scored

__all__ = [
    "Pruned",
    "PrunedConverter",
    "PrunedEngine",
    "PrunedIndex",
    "PrunedRetriever",
    "PrunedSearcher",
    "write_index",
]

logger = logging.getLogger(__name__)


@configuration
class Pruned:
    """Static pruning with exact rescoring (:mod:`splade.engines.pruned`):
    each posting list cut to its ``postings`` highest weights, the
    ``candidates`` documents of highest partial score rescored exactly"""

    postings: Annotated[int, Gt(0)] = 2000
    """Postings kept per term: each posting list is cut to its ``postings``
    highest weights (a shorter list is kept whole). Fewer: faster, lower
    recall. The cost of a query is at most this many postings per query
    term, whatever the number of documents"""

    candidates: Annotated[int, Gt(0)] = 100
    """Documents of highest partial score (kept postings only) that are
    rescored exactly; the top-k is taken among them (at least ``topk`` are
    rescored). More: higher recall, slower"""

    query_terms: Annotated[int, Ge(0)] = 0
    """Query terms traversed, the highest-weighted first (0: all of them);
    the rescoring always uses the whole query"""


# --- Index: pruned postings and forward vectors


@njit(cache=True)
def _pruned_lengths(offsets, cap):
    lengths = np.minimum(offsets[1:] - offsets[:-1], cap)
    out = np.zeros(offsets.shape[0], np.int64)
    out[1:] = np.cumsum(lengths)
    return out


@njit(cache=True)
def _prune(offsets, docids, weights, cap, new_offsets, out_docids, out_weights):
    """The ``cap`` highest weights of each list (ties: the smaller document
    id first), in document order"""
    for t in range(offsets.shape[0] - 1):
        a, b = offsets[t], offsets[t + 1]
        o = new_offsets[t]
        if b - a <= cap:
            out_docids[o : o + b - a] = docids[a:b]
            out_weights[o : o + b - a] = weights[a:b]
            continue
        # stable sort by decreasing weight (documents are increasing)
        order = np.argsort(-weights[a:b], kind="mergesort")[:cap]
        order.sort()
        for i in range(cap):
            out_docids[o + i] = docids[a + order[i]]
            out_weights[o + i] = weights[a + order[i]]


@njit(cache=True)
def _forward(offsets, docids, weights, indptr, out_terms, out_weights):
    """The documents' vectors (CSR, terms increasing in each document) from
    term-major postings"""
    cursor = indptr[:-1].copy()
    for t in range(offsets.shape[0] - 1):
        for p in range(offsets[t], offsets[t + 1]):
            d = docids[p]
            out_terms[cursor[d]] = t
            out_weights[cursor[d]] = weights[p]
            cursor[d] += 1


def _array(folder: Path, name: str, dtype, length: int):
    return np.lib.format.open_memmap(
        folder / f"{name}.npy", mode="w+", dtype=dtype, shape=(int(length),)
    )


def write_index(index: SparseIndex, folder, postings: int) -> Dict[str, int]:
    """Writes the pruned index of a term-major index (possibly memory-mapped)
    in ``folder``: ``inverted/`` (the kept postings, in the exhaustive
    engine's format), ``forward/`` (``indptr.npy``, ``terms.npy`` (uint16 up
    to 65,536 terms, else uint32), ``weights.npy``) and ``pruned.json``;
    returns the latter's content"""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "inverted").mkdir(parents=True)
    (folder / "forward").mkdir()
    offsets = np.asarray(index.offsets)
    docids, weights = np.asarray(index.docids), np.asarray(index.weights)

    new_offsets = _pruned_lengths(offsets, int(postings))
    kept = int(new_offsets[-1])
    np.save(folder / "inverted" / "offsets.npy", new_offsets)
    out_docids = _array(folder / "inverted", "docids", np.uint32, kept)
    out_weights = _array(folder / "inverted", "weights", np.float32, kept)
    _prune(
        offsets, docids, weights, int(postings), new_offsets, out_docids, out_weights
    )
    out_docids.flush()
    out_weights.flush()
    del out_docids, out_weights
    write_meta(folder / "inverted", index.num_docs, index.num_terms, kept)

    counts = np.bincount(docids, minlength=index.num_docs)
    indptr = np.zeros(index.num_docs + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    np.save(folder / "forward" / "indptr.npy", indptr)
    term_type = np.uint16 if index.num_terms <= 2**16 else np.uint32
    total = int(offsets[-1])
    out_terms = _array(folder / "forward", "terms", term_type, total)
    out_weights = _array(folder / "forward", "weights", np.float32, total)
    _forward(offsets, docids, weights, indptr, out_terms, out_weights)
    out_terms.flush()
    out_weights.flush()
    del out_terms, out_weights

    meta = {
        "postings": int(postings),
        "num_docs": int(index.num_docs),
        "num_terms": int(index.num_terms),
        "num_postings": total,
        "kept_postings": kept,
    }
    (folder / "pruned.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --- Search


@njit(cache=True)
def _search(
    offsets,
    docids,
    weights,
    f_indptr,
    f_terms,
    f_weights,
    q_terms,
    q_weights,
    traversed,
    k,
    candidates,
    acc,
    touched,
    buffer,
    dense_query,
    cand_docs,
    cand_scores,
    out_docs,
    out_scores,
):
    """One query: returns the number of results written (sorted by
    decreasing exact score, then increasing document id) in ``out_docs``
    and ``out_scores``"""
    num_terms = offsets.shape[0] - 1
    n = accumulate(
        offsets,
        docids,
        weights,
        q_terms[traversed],
        q_weights[traversed],
        acc,
        touched,
        True,
    )
    if n < 0:  # (the list filled up: every document reached)
        n = 0
        for d in range(acc.shape[0]):
            if acc[d] != 0:
                touched[n] = d
                n += 1
    size = select_listed(
        acc, touched, n, candidates, buffer, cand_docs, cand_scores, 32 * candidates
    )
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if t >= 0 and t < num_terms:
            dense_query[t] += q_weights[i]
    # exact scores
    for i in range(size):
        d = cand_docs[i]
        s = np.float32(0)
        for p in range(f_indptr[d], f_indptr[d + 1]):
            s += dense_query[f_terms[p]] * f_weights[p]
        cand_scores[i] = s
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if t >= 0 and t < num_terms:
            dense_query[t] = 0
    # sorted as the exhaustive engine's results: uint64 keys (the score's
    # bits complemented, then the document id), scores > 0 only
    bits = cand_scores.view(np.uint32)
    keys = np.empty(size, np.uint64)
    count = 0
    for i in range(size):
        if cand_scores[i] > 0:
            top = np.uint64(np.uint32(0x7FFFFFFF) - bits[i])
            keys[count] = (top << np.uint64(32)) | np.uint64(cand_docs[i])
            count += 1
    keys = np.sort(keys[:count])
    result = min(k, count)
    score_bits = out_scores.view(np.uint32)
    for i in range(result):
        out_docs[i] = np.int64(keys[i] & np.uint64(0xFFFFFFFF))
        score_bits[i] = np.uint32(0x7FFFFFFF) - np.uint32(keys[i] >> np.uint64(32))
    return result


class PrunedSearcher:
    """Searches a folder written by :func:`write_index` (one query at a time,
    one thread; not thread-safe: one accumulator)"""

    def __init__(self, folder, mmap: bool = False):
        folder = Path(folder)
        self.meta = json.loads((folder / "pruned.json").read_text())
        self.inverted = SparseIndex.load(folder / "inverted", mmap=mmap)
        mode = "r" if mmap else None
        self.forward = tuple(
            np.load(folder / "forward" / f"{name}.npy", mmap_mode=mode)
            for name in ("indptr", "terms", "weights")
        )
        num_docs = self.inverted.num_docs
        self._acc = np.zeros(num_docs, np.float32)
        self._touched = np.empty(num_docs + 1, np.uint32)
        self._dense_query = np.zeros(self.inverted.num_terms, np.float32)

    def _traversed(self, terms, weights, query_terms: int) -> np.ndarray:
        """Positions of the query terms that are traversed"""
        valid = np.flatnonzero(
            (weights != 0) & (terms >= 0) & (terms < self.inverted.num_terms)
        )
        if query_terms and len(valid) > query_terms:
            heaviest = np.argsort(-weights[valid], kind="stable")[:query_terms]
            valid = np.sort(valid[heaviest])
        return valid

    def search(
        self,
        term_ids,
        weights,
        k: int,
        candidates: int = 100,
        query_terms: int = 0,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The (at most) ``k`` best documents found, with their exact scores
        (> 0): document ids (int64) and scores (float32), by decreasing
        score then increasing document id"""
        terms = np.asarray(term_ids, np.int64).ravel()
        weights = np.asarray(weights, np.float32).ravel()
        if terms.shape != weights.shape:
            raise ValueError("term ids and weights must have the same length")
        k = int(min(max(k, 0), self.inverted.num_docs))
        candidates = int(min(max(candidates, k), self.inverted.num_docs))
        out_docs, out_scores = np.empty(k, np.int64), np.empty(k, np.float32)
        if k == 0:
            return out_docs, out_scores
        index = self.inverted
        size = _search(
            index.offsets,
            index.docids,
            index.weights,
            *self.forward,
            terms,
            weights,
            self._traversed(terms, weights, query_terms),
            k,
            candidates,
            self._acc,
            self._touched,
            np.empty(buffer_size(candidates), np.uint64),
            self._dense_query,
            np.empty(candidates, np.int64),
            np.empty(candidates, np.float32),
            out_docs,
            out_scores,
        )
        return out_docs[:size], out_scores[:size]

    def postings(self, term_ids, weights, query_terms: int = 0) -> int:
        """The number of kept postings that :meth:`search` reads"""
        terms = np.asarray(term_ids, np.int64).ravel()
        weights = np.asarray(weights, np.float32).ravel()
        traversed = terms[self._traversed(terms, weights, query_terms)]
        offsets = self.inverted.offsets
        return int((offsets[traversed + 1] - offsets[traversed]).sum())


# --- Tasks


class PrunedRetriever(SparseRetriever):
    """Retrieval with a pruned index (:class:`PrunedIndex`)"""

    candidates: Param[int] = field(default=100, ignore_default=True)
    """Documents of highest partial score rescored exactly"""

    query_terms: Param[int] = field(default=0, ignore_default=True)
    """Query terms traversed, the highest-weighted first (0: all)"""

    def get_retrieval_options(self) -> Dict[str, int]:
        return {"candidates": self.candidates, "query_terms": self.query_terms}


class PrunedIndex(AbstractSparseRetrieverIndex):
    """A pruned index written by :class:`PrunedConverter`"""

    Retriever = PrunedRetriever

    index_path: Meta[Path]
    """Folder of the pruned index"""

    def initialize(self, in_memory: bool):
        self.searcher = PrunedSearcher(self.index_path, mmap=not in_memory)

    def search(
        self,
        query: Dict[int, float],
        top_k: int,
        candidates: int = 100,
        query_terms: int = 0,
    ):
        """Document ids and exact scores of the top-k found"""
        terms = np.fromiter(query.keys(), np.int64, len(query))
        weights = np.fromiter(query.values(), np.float32, len(query))
        return self.searcher.search(terms, weights, top_k, candidates, query_terms)

    def retrieve(
        self, query: Dict[int, float], top_k: int, **options
    ) -> List[ScoredDocument]:
        return scored(self.documents, *self.search(query, top_k, **options))

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int, **options
    ) -> List[ScoredDocument]:
        return self.retrieve(query, top_k, **options)


class PrunedConverter(Task):
    """Writes the pruned index of a SPLADE index (the exhaustive engine's or
    impact-index's): each posting list cut to its ``postings`` highest
    weights, and the documents' vectors"""

    index: Param[AbstractSparseRetrieverIndex]
    """The SPLADE index"""

    postings: Param[int]
    """Postings kept per term"""

    pruned_path: Meta[Path] = field(default_factory=PathGenerator("pruned"))
    """Folder of the pruned index"""

    def task_outputs(self, dep):
        return dep(
            PrunedIndex.C(index_path=self.pruned_path, documents=self.index.documents)
        )

    def execute(self):
        folder = Path(self.pruned_path)
        scratch = folder.parent / f"{folder.name}-postings"
        try:
            meta = write_index(term_major(self.index, scratch), folder, self.postings)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        logger.info("Pruned index: %s", meta)


class PrunedEngine(Engine):
    """Static pruning with exact rescoring (:mod:`splade.engines.pruned`):
    the exhaustive scan on posting lists cut to their highest weights, the
    best candidates rescored exactly; approximate (returned scores are
    exact, a document can be missed)"""

    name = "pruned"
    section = "pruned"
    Settings = Pruned
    # (the pruned index is converted from the exhaustive one)
    builder = ExhaustiveIndexBuilder
    index_types = (PrunedIndex,)

    @classmethod
    def retriever(cls, settings: Pruned, index, *, launcher=None, **common):
        pruned_index = PrunedConverter.C(
            index=index, postings=settings.postings
        ).submit(launcher=launcher)
        return PrunedRetriever.C(
            index=pruned_index,
            candidates=settings.candidates,
            query_terms=settings.query_terms,
            **common,
        )

    @classmethod
    def search(cls, index: PrunedIndex, **options):
        return lambda query, k: index.search(query, k, **options)

    @classmethod
    def document_frequencies(cls, index: PrunedIndex):
        # what a query traverses: the pruned posting lists (the documents
        # found are then rescored from the forward index)
        inverted = index.searcher.inverted
        return np.diff(np.asarray(inverted.offsets)) / max(inverted.num_docs, 1)

    @classmethod
    def average_nonzeros(cls, index: PrunedIndex):
        # the documents themselves are whole (the forward index)
        meta = json.loads((Path(index.index_path) / "pruned.json").read_text())
        return meta["num_postings"] / max(meta["num_docs"], 1)
