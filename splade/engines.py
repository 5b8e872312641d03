"""Retrieval engines of the SPLADE index: exact (impact-index MaxScore or
WAND) and approximate (block-max pruning, Seismic)

Every engine searches the impact-index index built by xpmir's
``SparseRetrieverIndexBuilder`` (or an index converted from it by a task that
:func:`sparse_retriever` submits), and scores documents by the dot product of
the query and document SPLADE vectors.

Two settings that look exact are not, and are not offered:

- impact-index's ``Index.compress(..., nbits=0)`` (its default) stores
  impacts as *integers* (each float is rounded to the nearest integer): it is
  lossless for BM25 term frequencies, but SPLADE weights (mostly between 0
  and 3) collapse to {0, 1, 2, 3}, hence a recall@10 of about 0.6 against
  exact search. ``compression.nbits`` only accepts 8 or 16 (quantized
  floats: each weight is off by at most about 1/256 or 1/65536 of the
  largest one).
- BMP with ``alpha = beta = 1`` is exact on *quantized* scores only: the
  conversion stores document weights on 8 bits (``floor(256 w / max w)``)
  and the searcher puts query weights on 5 bits (``ceil(32 q / max q)``), so
  its ranking differs from the float ranking (recall@10 about 0.96 against
  exact search on SPLADE-like vectors). BMP is offered as an approximate
  engine. Its searcher may also return k - 1 documents instead of k (in a
  few % of queries, whatever the number of matching documents):
  :class:`splade.workarounds.impact_index.BMPIndex` asks for one more and
  keeps the first k.

``tests/test_engines.py`` shows both, and checks each engine against a
brute-force dot product.
"""

from pathlib import Path
from typing import Any, Dict, List

from experimaestro import Meta, Param, PathGenerator, Task, field
from xpmir.index.sparse import (
    AbstractSparseRetrieverIndex,
    BMPSparseRetriever,
    SeismicSparseRetriever,
    Sparse2SeismicConverter,
    SparseRetriever,
    SparseRetrieverIndex,
)
from xpmir.rankers import ScoredDocument

from splade.configuration import Engine, EngineName
from splade.workarounds.impact_index import BMPConverter, scored


def problems(engine: Engine) -> List[str]:
    """Settings of the engine that do not go together (each value's range
    is checked when the configuration is read)"""
    if engine.seismic.n_knn > engine.seismic.knn:
        return ["retrieval.engine.seismic.n_knn: needs knn >= n_knn"]
    return []


# --- Index configurations and conversion tasks


class WANDIndex(AbstractSparseRetrieverIndex):
    """Searches an impact-index index with WAND instead of MaxScore (xpmir's
    ``SparseRetrieverIndex`` only calls ``search_maxscore``)"""

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

    index: Param[SparseRetrieverIndex]
    """The raw impact-index index"""

    block_size: Param[int] = field(default=128, ignore_default=True)
    """Number of postings per block"""

    nbits: Param[int] = field(default=16, ignore_default=True)
    """Bits of the quantized impacts (8 or 16: see
    :class:`splade.configuration.Compression`)"""

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


# --- The retriever


def sparse_retriever(
    engine: Engine,
    *,
    index: SparseRetrieverIndex,
    encoder,
    topk: int,
    batch_size: int,
    launcher=None,
) -> SparseRetriever:
    """Returns the retriever of a SPLADE index with the given engine

    :param engine: the engine and its parameters
    :param index: the impact-index index (the output of xpmir's
        ``SparseRetrieverIndexBuilder``, submitted)
    :param encoder: the query encoder
    :param topk: number of retrieved documents
    :param batch_size: number of queries encoded at once
    :param launcher: launcher of the conversion tasks (compression, BMP,
        Seismic), that the engine may submit; they only read the index
    :return: a ``SparseRetriever`` configuration; for the default engine
        (``maxscore``, raw index) it is exactly
        ``SparseRetriever.C(index=index, encoder=encoder, topk=topk,
        batchsize=batch_size)``
    """
    name = EngineName(engine.name)
    common: Dict[str, Any] = {"encoder": encoder, "topk": topk}
    common["batchsize"] = batch_size

    if name.exact:
        if engine.compression.enabled:
            index = CompressSparseIndex.C(
                index=index,
                block_size=engine.compression.block_size,
                nbits=engine.compression.nbits,
            ).submit(launcher=launcher)
        if name == EngineName.WAND:
            index = WANDIndex.C(source=index, documents=index.documents)
        return SparseRetriever.C(index=index, **common)

    if name == EngineName.BMP:
        bmp = engine.bmp
        bmp_index = BMPConverter.C(
            index=index, block_size=bmp.block_size, compress_range=bmp.compress_range
        ).submit(launcher=launcher)
        return BMPSparseRetriever.C(
            index=bmp_index, alpha=bmp.alpha, beta=bmp.beta, **common
        )

    seismic = engine.seismic
    seismic_index = Sparse2SeismicConverter.C(
        index=index,
        n_postings=seismic.n_postings,
        centroid_fraction=seismic.centroid_fraction,
        summary_energy=seismic.summary_energy,
        max_fraction=seismic.max_fraction,
        knn=seismic.knn,
    ).submit(launcher=launcher)
    return SeismicSparseRetriever.C(
        index=seismic_index,
        query_cut=seismic.query_cut,
        heap_factor=seismic.heap_factor,
        n_knn=seismic.n_knn,
        **common,
    )
