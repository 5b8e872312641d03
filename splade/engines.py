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
  :class:`BMPIndex` asks for one more and keeps the first k.

``tests/test_engines.py`` shows both, and checks each engine against a
brute-force dot product.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional

from attrs import Factory
from experimaestro import Meta, Param, PathGenerator, Task, field
from experimaestro.experiments import configuration
from xpmir.index.sparse import (
    AbstractSparseRetrieverIndex,
    BMPSparseRetriever,
    BMPSparseRetrieverIndex,
    SeismicSparseRetriever,
    Sparse2BMPConverter,
    Sparse2SeismicConverter,
    SparseRetriever,
    SparseRetrieverIndex,
)
from xpmir.rankers import ScoredDocument

#: Engine names: exact ones first
EXACT_ENGINES = ("maxscore", "wand")
APPROXIMATE_ENGINES = ("bmp", "seismic")
ENGINES = EXACT_ENGINES + APPROXIMATE_ENGINES


@configuration
class Compression:
    """Compressed impact-index index (SIMD bit-packing, block-max metadata),
    for the exact engines"""

    enabled: bool = False
    """Search a compressed copy of the index instead of the raw index"""

    block_size: int = 128
    """Number of postings per block (block-max pruning granularity)"""

    nbits: int = 16
    """Bits of the quantized impacts: 16 (scores within about 1e-5 of the
    largest weight: exact in practice) or 8 (smaller, approximate). 0, the
    library's default, rounds SPLADE weights to integers and is refused"""


@configuration
class BMP:
    """Block-max pruning (Mallia et al., SIGIR 2024): the index is converted
    to a block forward index with 8-bit document and 5-bit query weights"""

    block_size: int = 64
    """Number of consecutive documents per block"""

    compress_range: bool = False
    """Compress the block upper bounds (smaller index, slower search)"""

    alpha: float = 1.0
    """Block pruning threshold factor (0 to 1; 1: no approximation beyond
    the quantization of the weights; 0.9 is faster)"""

    beta: float = 1.0
    """Fraction of the query terms kept, highest weights first (0 to 1; 1:
    all of them)"""


@configuration
class Seismic:
    """Seismic (Bruch et al., SIGIR 2024): posting lists pruned to their
    highest impacts, split into clustered blocks with summary vectors"""

    n_postings: int = 6000
    """Average number of postings kept per term (global budget)"""

    centroid_fraction: float = 0.1
    """Blocks (k-means centroids) per posting list, as a fraction of its
    length"""

    summary_energy: float = 0.4
    """Fraction of the L1 mass of a block kept in its summary vector"""

    max_fraction: float = 1.5
    """Longest posting list, as a multiple of n_postings"""

    knn: int = 0
    """Nearest neighbours stored per document (0: no kNN graph)"""

    query_cut: int = 10
    """Only the query_cut highest-weighted query terms are traversed"""

    heap_factor: float = 0.7
    """Blocks whose summary score is below heap_factor times the current
    k-th score are skipped (1: no skipping of blocks that might enter the
    top-k; lower is faster and less accurate)"""

    n_knn: int = 0
    """Neighbours used to refine the results (needs knn > 0)"""


@configuration
class Engine:
    """Retrieval engine of the SPLADE index

    ``maxscore`` (default) and ``wand`` are exact (the top-k of the dot
    product); ``bmp`` and ``seismic`` are approximate and much faster
    (``BENCHMARKS.md``, section *Retrieval engines*, gives their recall@10
    against exact search and their latency).
    """

    name: str = "maxscore"
    """``maxscore``: impact-index MaxScore (exact); ``wand``: impact-index
    WAND (exact); ``bmp``: block-max pruning (approximate, see `bmp`);
    ``seismic``: Seismic (approximate, see `seismic`)"""

    compression: Compression = Factory(Compression)
    """Compressed index for ``maxscore`` and ``wand`` (raw index by
    default)"""

    bmp: BMP = Factory(BMP)
    """Parameters of the ``bmp`` engine"""

    seismic: Seismic = Factory(Seismic)
    """Parameters of the ``seismic`` engine"""

    def __attrs_post_init__(self):
        check_engine(self)


def check_engine(engine: Engine):
    """Raises a ValueError when the engine's settings are not offered"""
    if engine.name not in ENGINES:
        raise ValueError(
            f"Unknown retrieval engine {engine.name!r}: expected one of {ENGINES}"
        )
    if engine.compression.enabled and engine.compression.nbits not in (8, 16):
        raise ValueError(
            "retrieval.engine.compression.nbits must be 8 or 16: impact-index's"
            " nbits=0 rounds SPLADE weights to integers (recall@10 about 0.6)"
        )
    if not 0 < engine.bmp.alpha <= 1 or not 0 < engine.bmp.beta <= 1:
        raise ValueError("retrieval.engine.bmp.alpha and beta must be in (0, 1]")
    if engine.seismic.n_knn > engine.seismic.knn:
        raise ValueError("retrieval.engine.seismic.n_knn needs knn >= n_knn")


# --- Index configurations and conversion tasks


def _scored(documents, docids, scores) -> List[ScoredDocument]:
    return [
        ScoredDocument(documents.document_int(int(docid)), float(score))
        for docid, score in zip(docids, scores, strict=True)
    ]


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
        return _scored(
            self.documents, [r.docid for r in results], [r.score for r in results]
        )

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int
    ) -> List[ScoredDocument]:
        results = await self.index.aio_search_wand(query, top_k)
        return _scored(
            self.documents, [r.docid for r in results], [r.score for r in results]
        )


class CompressSparseIndex(Task):
    """Compresses an impact-index index (bit-packed, quantized impacts,
    block-max metadata)"""

    index: Param[SparseRetrieverIndex]
    """The raw impact-index index"""

    block_size: Param[int] = 128
    """Number of postings per block"""

    nbits: Param[int] = 16
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


class BMPIndex(BMPSparseRetrieverIndex):
    """xpmir's BMP index, asking the searcher for k + 1 documents: impact-index
    1.7.1's ``BmpSearcher.search`` returns k - 1 documents for a few % of
    queries (``tests/test_engines.py::test_bmp_short_result_lists``)"""

    def retrieve(
        self, query: Dict[int, float], top_k: int, alpha=None, beta=None
    ) -> List[ScoredDocument]:
        docids, scores = self.searcher.search(
            {str(ix): float(value) for ix, value in query.items()},
            k=top_k + 1,
            alpha=alpha,
            beta=beta,
        )
        return _scored(self.documents, docids[:top_k], scores[:top_k])


class BMPConverter(Sparse2BMPConverter):
    """xpmir's BMP conversion, whose index is a :class:`BMPIndex`"""

    def task_outputs(self, dep):
        return dep(
            BMPIndex.C(index_path=self.bmp_index_path, documents=self.index.documents)
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
    check_engine(engine)
    common: Dict[str, Any] = {"encoder": encoder, "topk": topk}
    common["batchsize"] = batch_size

    if engine.name in EXACT_ENGINES:
        if engine.compression.enabled:
            index = CompressSparseIndex.C(
                index=index,
                block_size=engine.compression.block_size,
                nbits=engine.compression.nbits,
            ).submit(launcher=launcher)
        if engine.name == "wand":
            index = WANDIndex.C(source=index, documents=index.documents)
        return SparseRetriever.C(index=index, **common)

    if engine.name == "bmp":
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


def engine_label(engine: Engine) -> Optional[str]:
    """A short description of a non-default engine (None for the default),
    e.g. to tag results"""
    if engine == Engine():
        return None
    if engine.name in EXACT_ENGINES:
        if engine.compression.enabled:
            return f"{engine.name}-c{engine.compression.nbits}"
        return engine.name
    if engine.name == "bmp":
        return f"bmp-a{engine.bmp.alpha:g}-b{engine.bmp.beta:g}"
    return f"seismic-q{engine.seismic.query_cut}-h{engine.seismic.heap_factor:g}"
