"""impact-index's exact engines (xpmir's ``SparseRetriever``): MaxScore and
WAND, on the raw index or on a compressed copy

impact-index's ``Index.compress(..., nbits=0)`` (its default) stores impacts
as *integers* (each float is rounded to the nearest integer): it is lossless
for BM25 term frequencies, but SPLADE weights (mostly between 0 and 3)
collapse to {0, 1, 2, 3}, hence a recall@10 of about 0.6 against exact
search. ``compression.nbits`` only accepts 8 or 16 (quantized floats: each
weight is off by at most about 1/256 or 1/65536 of the largest one).
"""

from pathlib import Path
from typing import Annotated, Dict, List, Literal

import numpy as np
from annotated_types import Gt
from experimaestro import Meta, Param, PathGenerator, Task, field
from experimaestro.experiments import configuration
from xpmir.index.sparse import (
    AbstractSparseRetrieverIndex,
    SparseRetriever,
    SparseRetrieverIndex,
    SparseRetrieverIndexBuilder,
)
from xpmir.rankers import ScoredDocument

from splade.engines.base import Engine
from splade.workarounds.datamaestro_ir import scored

__all__ = [
    "Compression",
    "CompressSparseIndex",
    "MaxScoreEngine",
    "WANDEngine",
    "WANDIndex",
]


@configuration
class Compression:
    """Compressed impact-index index (SIMD bit-packing, block-max metadata),
    for the exact engines ``maxscore`` and ``wand``"""

    enabled: bool = False
    """Search a compressed copy of the index instead of the raw index"""

    block_size: Annotated[int, Gt(0)] = 128
    """Number of postings per block (block-max pruning granularity)"""

    nbits: Literal[8, 16] = 16
    """Bits of the quantized impacts: 16 (scores within about 1e-5 of the
    largest weight: exact in practice) or 8 (smaller, approximate).
    impact-index's default, 0, rounds SPLADE weights to integers (recall@10
    about 0.6) and is not offered"""


class WANDIndex(AbstractSparseRetrieverIndex):
    """Searches an impact-index index with WAND instead of MaxScore (xpmir's
    ``SparseRetrieverIndex`` only calls ``search_maxscore``)"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.wandindex"

    source: Param[SparseRetrieverIndex]
    """The impact-index index"""

    def initialize(self, in_memory: bool):
        self.source.initialize(in_memory)
        self.index = self.source.index

    def retrieve(self, query: Dict[int, float], top_k: int) -> List[ScoredDocument]:
        results = self.index.search_wand(query, top_k)
        return scored(
            self.documents, [r.docid for r in results], [r.score for r in results]
        )

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int
    ) -> List[ScoredDocument]:
        results = await self.index.aio_search_wand(query, top_k)
        return scored(
            self.documents, [r.docid for r in results], [r.score for r in results]
        )


class CompressSparseIndex(Task):
    """Compresses an impact-index index (bit-packed, quantized impacts,
    block-max metadata)"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.compresssparseindex"

    index: Param[SparseRetrieverIndex]
    """The raw impact-index index"""

    block_size: Param[int] = field(default=128, ignore_default=True)
    """Number of postings per block"""

    nbits: Param[int] = field(default=16, ignore_default=True)
    """Bits of the quantized impacts (8 or 16: see :class:`Compression`)"""

    compressed_path: Meta[Path] = field(default_factory=PathGenerator("index"))
    """Folder of the compressed index"""

    def task_outputs(self, dep):
        return dep(
            SparseRetrieverIndex.C(
                index_path=self.compressed_path, documents=self.index.documents
            )
        )

    def execute(self):
        # nbits=0 stores impacts as rounded integers (see the module's doc)
        assert self.nbits in (8, 16), "nbits must be 8 or 16"
        self.index.initialize(False)
        self.index.index.compress(
            str(self.compressed_path),
            block_size=self.block_size,
            nbits=self.nbits,
            in_memory=False,
        )


def _ids_and_scores(results):
    return [r.docid for r in results], [r.score for r in results]


class MaxScoreEngine(Engine):
    """impact-index MaxScore (xpmir's ``SparseRetriever``): exact (the top-k
    of the dot product)"""

    name = "maxscore"
    exact = True
    section = "compression"
    Settings = Compression
    builder = SparseRetrieverIndexBuilder
    index_types = (SparseRetrieverIndex,)

    @classmethod
    def retriever(cls, settings: Compression, index, *, launcher=None, **common):
        return SparseRetriever.C(
            index=cls.searched(settings, index, launcher), **common
        )

    @classmethod
    def searched(cls, settings: Compression, index, launcher):
        """The index searched: the raw index, or its compressed copy"""
        if not settings.enabled:
            return index
        return CompressSparseIndex.C(
            index=index, block_size=settings.block_size, nbits=settings.nbits
        ).submit(launcher=launcher)

    @classmethod
    def search(cls, index: SparseRetrieverIndex, **options):
        return lambda query, k: _ids_and_scores(index.index.search_maxscore(query, k))

    @classmethod
    def document_frequencies(cls, index: SparseRetrieverIndex):
        raw = index.index
        terms = range(raw.num_postings())  # the number of terms, in fact
        counts = np.array([raw.postings(t).length() for t in terms], np.float64)
        documents = max((raw.postings(t).max_doc_id() for t in terms), default=-1)
        return counts / max(documents + 1, 1)

    @classmethod
    def average_nonzeros(cls, index: SparseRetrieverIndex):
        import impact_index

        raw = impact_index.Index.load(str(index.index_path), False)
        terms = range(raw.num_postings())
        postings = sum(raw.postings(term).length() for term in terms)
        documents = max((raw.postings(term).max_doc_id() for term in terms), default=-1)
        return postings / (documents + 1) if documents >= 0 else 0.0


class WANDEngine(MaxScoreEngine):
    """impact-index WAND: exact"""

    name = "wand"
    index_types = (WANDIndex,)

    @classmethod
    def retriever(cls, settings: Compression, index, *, launcher=None, **common):
        searched = cls.searched(settings, index, launcher)
        wand = WANDIndex.C(source=searched, documents=searched.documents)
        return SparseRetriever.C(index=wand, **common)

    @classmethod
    def search(cls, index: WANDIndex, **options):
        return lambda query, k: _ids_and_scores(index.index.search_wand(query, k))

    @classmethod
    def document_frequencies(cls, index: WANDIndex):
        return MaxScoreEngine.document_frequencies(index.source)
