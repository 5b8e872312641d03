"""Block-max pruning (Mallia, Suel, Tonellotto, "Faster Learned Sparse
Retrieval with Block-Max Pruning", SIGIR 2024,
https://arxiv.org/abs/2405.01117) with the authors' ``bmp`` package

The package writes BMP's index itself (:mod:`.index`), so that BMP's 16-bit
score counter cannot overflow, and works around the searcher's other faults:
BMP with ``alpha = beta = 1`` is then exact on *quantized* scores (query
weights on a few levels, 8-bit document weights); its ranking differs from
the float ranking, so it is offered as an approximate engine.
"""

import logging
import shutil
from pathlib import Path
from typing import Annotated, Dict, List

import numpy as np
from annotated_types import Interval
from experimaestro import Meta, Param, PathGenerator, Task, field
from experimaestro.experiments import configuration
from xpmir.index.sparse import AbstractSparseRetrieverIndex, BMPSparseRetriever
from xpmir.rankers import ScoredDocument

from splade.engines.base import Engine
from splade.engines.exhaustive import ExhaustiveIndexBuilder, term_major
from splade.workarounds.datamaestro_ir import scored

__all__ = [
    "BMP",
    "BMPEngine",
    "SafeBMPConverter",
    "SafeBMPIndex",
    "bisection_order",
    "convert_to_bmp",
]

logger = logging.getLogger(__name__)


@configuration
class BMP:
    """Block-max pruning (Mallia et al., SIGIR 2024), with the ``bmp``
    package: the index is converted to a block forward index of 8-bit
    document weights, ``round(s w)`` with the largest ``s`` such that no
    score overflows BMP's 16-bit counter (query weights are
    ``round(query_levels q / max q)``); see :mod:`splade.engines.bmp.index`"""

    block_size: Annotated[int, Interval(ge=8, le=256)] = 32
    """Number of consecutive documents per block (BMP's authors use 16 to
    32; 8 to 256 with this package's conversion)"""

    compress_range: bool = False
    """Compress the block upper bounds (smaller index, slower search)"""

    query_levels: Annotated[int, Interval(ge=1, le=32)] = 16
    """Query weights are ``round(query_levels q / max q)``; the document
    weights get the precision that BMP's 16-bit scores leave (16 levels:
    the best recall@10 on SciFact, 0.975 against 0.961 with 32)"""

    reorder: bool = False
    """Order the documents by recursive graph bisection before making the
    blocks (impact-index's ``reorder``): blocks of similar documents prune
    better (BENCHMARKS.md), at the cost of the bisection (minutes per
    100,000 documents)"""

    alpha: Annotated[float, Interval(gt=0, le=1)] = 1.0
    """Block pruning threshold factor (1: no approximation beyond the
    quantization of the weights; 0.9 is faster)"""

    beta: Annotated[float, Interval(gt=0, le=1)] = 1.0
    """Fraction of the query terms kept, highest weights first (1: all of
    them)"""


class SafeBMPIndex(AbstractSparseRetrieverIndex):
    """A BMP index written by :class:`SafeBMPConverter`: no score can
    overflow BMP's 16-bit counter, and the searcher's other faults are
    worked around (:mod:`splade.engines.bmp.index`)"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.safebmpindex"

    Retriever = BMPSparseRetriever

    index_path: Meta[Path]
    """The BMP index file (``<name>.json`` and ``<name>.kth.npy`` beside
    it)"""

    def initialize(self, in_memory: bool):
        from splade.engines.bmp.index import Searcher

        self.searcher = Searcher(self.index_path)

    def search(self, query: Dict[int, float], top_k: int, alpha=1.0, beta=1.0):
        """Document ids and scores (quantized, rescaled) of the top-k"""
        return self.searcher.search(query, top_k, alpha, beta)

    def retrieve(
        self, query: Dict[int, float], top_k: int, alpha=1.0, beta=1.0
    ) -> List[ScoredDocument]:
        return scored(self.documents, *self.search(query, top_k, alpha, beta))

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int, **options
    ) -> List[ScoredDocument]:
        return self.retrieve(query, top_k, **options)


class SafeBMPConverter(Task):
    """Writes the BMP index of a SPLADE index (the exhaustive engine's or
    impact-index's) with weights quantized so that no score can overflow
    (:func:`splade.engines.bmp.index.write_index`)"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.safebmpconverter"

    index: Param[AbstractSparseRetrieverIndex]
    """The SPLADE index (the exhaustive engine's ``ExhaustiveIndex`` or
    impact-index's ``SparseRetrieverIndex``)"""

    block_size: Param[int]
    """Consecutive documents per block"""

    compress_range: Param[bool] = field(default=False, ignore_default=True)
    """Compress the block upper bounds"""

    reorder: Param[bool] = field(default=False, ignore_default=True)
    """Order the documents by recursive graph bisection first (so that
    blocks hold similar documents)"""

    query_levels: Param[int] = field(default=16, ignore_default=True)
    """Query weights are round(query_levels q / max q); document weights get
    the precision that the 16-bit scores leave"""

    bmp_path: Meta[Path] = field(default_factory=PathGenerator("bmp"))
    """Folder of the BMP index (``index.bmp`` and its metadata)"""

    def task_outputs(self, dep):
        return dep(
            SafeBMPIndex.C(
                index_path=self.bmp_path / "index.bmp", documents=self.index.documents
            )
        )

    def execute(self):
        meta = convert_to_bmp(
            self.index,
            self.bmp_path,
            self.block_size,
            self.compress_range,
            self.reorder,
            self.query_levels,
        )
        logger.info("BMP index: %s", meta)


def convert_to_bmp(
    index,
    folder: Path,
    block_size: int,
    compress_range=False,
    reorder=False,
    query_levels: int = 16,
):
    """What :class:`SafeBMPConverter` does: ``folder/index.bmp``"""
    from splade.engines.bmp.index import write_index

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / "postings"
    try:
        postings = term_major(index, scratch)
        order = None
        if reorder:
            order = bisection_order(postings, folder / "bisection", block_size)
        return write_index(
            postings,
            folder / "index.bmp",
            block_size,
            compress_range,
            order=order,
            query_levels=query_levels,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(folder / "bisection", ignore_errors=True)


def bisection_order(postings, scratch: Path, leaf_size: int) -> np.ndarray:
    """Documents ordered by recursive graph bisection (impact-index's
    ``Index.reorder``, on a temporary impact-index index of the postings):
    the document id at each position"""
    import impact_index

    scratch = Path(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    docids = np.asarray(postings.docids)
    terms = np.repeat(
        np.arange(postings.num_terms, dtype=np.uint64), np.diff(postings.offsets)
    )
    by_doc = np.argsort(docids, kind="stable")
    starts = np.searchsorted(docids[by_doc], np.arange(postings.num_docs + 1))
    terms, weights = terms[by_doc], np.asarray(postings.weights)[by_doc]
    del by_doc
    options = impact_index.BuilderOptions()
    builder = impact_index.IndexBuilder(str(scratch / "raw"), options)
    for doc in range(postings.num_docs):
        a, b = starts[doc], starts[doc + 1]
        builder.add(doc, terms[a:b], weights[a:b])
    del terms, weights
    raw = builder.build(False)
    reordered = raw.reorder(
        str(scratch / "reordered"), nbits=16, in_memory=False, leaf_size=leaf_size
    )
    return np.asarray(reordered.reorder_map(), np.int64)


class BMPEngine(Engine):
    """Block-max pruning (Mallia et al., SIGIR 2024,
    https://arxiv.org/abs/2405.01117): approximate (quantized weights)"""

    name = "bmp"
    section = "bmp"
    Settings = BMP
    # (BMP's index is converted from the exhaustive one)
    builder = ExhaustiveIndexBuilder
    index_types = (SafeBMPIndex,)

    @classmethod
    def retriever(cls, settings: BMP, index, *, launcher=None, **common):
        bmp_index = SafeBMPConverter.C(
            index=index,
            block_size=settings.block_size,
            compress_range=settings.compress_range,
            reorder=settings.reorder,
            query_levels=settings.query_levels,
        ).submit(launcher=launcher)
        return BMPSparseRetriever.C(
            index=bmp_index, alpha=settings.alpha, beta=settings.beta, **common
        )

    @classmethod
    def search(cls, index: SafeBMPIndex, **options):
        return lambda query, k: index.search(query, k, **options)
