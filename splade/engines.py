"""Retrieval engines of the SPLADE index: exact (the package's exhaustive
engine, impact-index MaxScore or WAND) and approximate (block-max pruning,
Seismic)

``exhaustive`` (the default) searches the package's term-major index
(:mod:`splade.exhaustive`), built by :class:`ExhaustiveIndexBuilder` from the
encoded documents; the other engines search the impact-index index built by
xpmir's ``SparseRetrieverIndexBuilder`` (or an index converted from it by a
task that :func:`sparse_retriever` submits). All score documents by the dot
product of the query and document SPLADE vectors.

Why exhaustive by default: learned sparse queries have many terms with flat
weights, so that dynamic pruning skips little; scoring every posting of the
query terms into a float32 accumulator over all documents, then selecting
the top-k, was the fastest exact method at every size measured (SciFact,
100k and 1M documents: BENCHMARKS.md, ``bench/retrieval_engines.py``), about
10 times faster than PISA's block-max MaxScore and 20 times faster than
impact-index's MaxScore at 1M documents, one thread. Its cost grows linearly
with the number of postings of the query terms.

Two settings that look exact are not, and are not offered:

- impact-index's ``Index.compress(..., nbits=0)`` (its default) stores
  impacts as *integers* (each float is rounded to the nearest integer): it is
  lossless for BM25 term frequencies, but SPLADE weights (mostly between 0
  and 3) collapse to {0, 1, 2, 3}, hence a recall@10 of about 0.6 against
  exact search. ``compression.nbits`` only accepts 8 or 16 (quantized
  floats: each weight is off by at most about 1/256 or 1/65536 of the
  largest one).
- BMP with ``alpha = beta = 1`` is exact on *quantized* scores only: the
  searcher puts query weights on 5 bits (``ceil(32 q / max q)``) and sums
  their products with 8-bit document weights in a 16-bit counter, so that
  the conversion (:class:`SafeBMPConverter`) stores document weights as
  ``int(s w)`` with the largest scale ``s`` for which no score can exceed
  that counter; its ranking differs from the float ranking. BMP is offered
  as an approximate engine. impact-index's own conversion lets scores
  overflow (they wrap), and the searcher (the ``bmp`` package's, which
  impact-index shares) skips the last candidate block, may return k - 1
  documents and panics on a query of no indexed term:
  :mod:`splade.workarounds.bmp` works around all four
  (``tests/test_bmp.py``).

``tests/test_engines.py`` shows both, and checks each engine against a
brute-force dot product.
"""

import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from experimaestro import Meta, Param, PathGenerator, Task, field
from xpm_torch.configuration import FabricConfiguration
from xpmir.index.sparse import (
    AbstractSparseRetrieverIndex,
    AbstractSparseRetrieverIndexBuilder,
    BMPSparseRetriever,
    SeismicSparseRetriever,
    Sparse2SeismicConverter,
    SparseRetriever,
    SparseRetrieverIndex,
    SparseRetrieverIndexBuilder,
)
from xpmir.rankers import ScoredDocument
from xpmir.utils.multiprocessing import available_cpus

from splade.configuration import Engine, EngineName
from splade.workarounds.datamaestro_ir import scored

logger = logging.getLogger(__name__)


def problems(engine: Engine) -> List[str]:
    """Settings of the engine that do not go together (each value's range
    is checked when the configuration is read)"""
    if engine.seismic.n_knn > engine.seismic.knn:
        return ["retrieval.engine.seismic.n_knn: needs knn >= n_knn"]
    return []


# --- The exhaustive engine (splade/exhaustive.py)


class ExhaustiveIndex(AbstractSparseRetrieverIndex):
    """The package's exact exhaustive index (term-major postings, float32
    accumulator over all documents, partial top-k)"""

    index_path: Meta[Path]
    """Folder of the index (:mod:`splade.exhaustive`'s format)"""

    def initialize(self, in_memory: bool):
        from splade.exhaustive import SparseIndex

        self.index = SparseIndex.load(self.index_path, mmap=not in_memory)
        self.searcher = self.index.searcher()

    def search(self, query: Dict[int, float], top_k: int):
        """Document ids and scores of the top-k (one query, one thread)"""
        terms = np.fromiter(query.keys(), np.int64, len(query))
        weights = np.fromiter(query.values(), np.float32, len(query))
        return self.searcher.search(terms, weights, top_k)

    def retrieve(self, query: Dict[int, float], top_k: int) -> List[ScoredDocument]:
        return scored(self.documents, *self.search(query, top_k))

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int
    ) -> List[ScoredDocument]:
        return self.retrieve(query, top_k)


class ExhaustiveIndexBuilder(AbstractSparseRetrieverIndexBuilder):
    """Encodes the documents (xpmir's encoding pipeline, as
    ``SparseRetrieverIndexBuilder``) into the package's exhaustive index;
    the postings are buffered within ``memory_budget`` bytes, sorted runs
    being written to disk and merged at the end"""

    index_path: Meta[Path] = field(default_factory=PathGenerator("index"))
    """Folder of the index"""

    memory_budget: Meta[int] = field(default=1 << 30, ignore_default=True)
    """Bytes of postings buffered before a sorted run is written to disk (28
    bytes a posting)"""

    fabric_config: Meta[FabricConfiguration] = field(
        default_factory=FabricConfiguration.C
    )
    """Device and precision of the encoder"""

    def task_outputs(self, dep):
        return dep(
            ExhaustiveIndex.C(index_path=self.index_path, documents=self.documents)
        )

    def execute(self):
        self._execute(self.fabric_config.get_fabric())

    def create_index_builder(self) -> Optional[int]:
        from splade.exhaustive import IndexBuilder

        # A killed build starts again
        shutil.rmtree(self.index_path, ignore_errors=True)
        self.builder = IndexBuilder(self.index_path, memory_budget=self.memory_budget)
        return None

    def add_encoded_document(self, docid, encoded, nonzero_ix):
        self.builder.add(docid, nonzero_ix, encoded.value[nonzero_ix])

    def build_index(self):
        index = self.builder.finish()
        logger.info("Exhaustive index: %s", index)


#: Below these many query-document pairs, one thread searches
PARALLEL_WORK = 10_000_000


class ExhaustiveRetriever(SparseRetriever):
    """Retrieval with the exhaustive index: the queries are encoded in
    batches, then searched on ``threads`` threads (numba; one thread when
    there are fewer than ``PARALLEL_WORK`` query-document pairs)"""

    threads: Meta[int] = field(default=0, ignore_default=True)
    """Search threads (0: every core available to the process)"""

    def retrieve_all(self, queries, shard_and_gather: bool = True):
        fabric = getattr(self, "fabric", None)
        if fabric is not None and fabric.world_size > 1:
            return super().retrieve_all(queries, shard_and_gather)
        import torch
        from scipy.sparse import csr_matrix, vstack

        items = list(queries.items())
        self.encoder.eval()
        vectors = []
        with torch.no_grad():
            for start in range(0, len(items), self.batchsize):
                batch = [record for _, record in items[start : start + self.batchsize]]
                vectors.append(csr_matrix(self.encoder(batch).value.cpu().numpy()))
        if not vectors:
            return {}
        matrix = vstack(vectors).tocsr()
        threads = self.threads or available_cpus()
        if threads > 1 and len(items) * self.index.index.num_docs >= PARALLEL_WORK:
            results = self.index.searcher.search_batch(matrix, self.topk, threads)
        else:
            # Little work: the sequential kernel (numba compiles the parallel
            # one in about 6 s, once per installation)
            results = [
                self.index.searcher.search(row.indices, row.data, self.topk)
                for row in matrix
            ]
        return {
            key: scored(self.index.documents, docids, scores)
            for (key, _), (docids, scores) in zip(items, results, strict=True)
        }


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


# --- PISA (optional: pyterrier-pisa)


def term_major(index: AbstractSparseRetrieverIndex, scratch: Path):
    """The postings of an index configuration, term-major
    (:class:`splade.exhaustive.SparseIndex`, memory-mapped): the exhaustive
    index as it is, an impact-index index converted into ``scratch``"""
    from splade.exhaustive import SparseIndex, from_impact_index

    if isinstance(index, ExhaustiveIndex):
        return SparseIndex.load(index.index_path, mmap=True)
    if isinstance(index, SparseRetrieverIndex):
        from_impact_index(index.index_path, scratch)
        return SparseIndex.load(scratch, mmap=True)
    raise TypeError(f"cannot read the postings of {type(index).__name__}")


class PisaRetriever(SparseRetriever):
    """Retrieval with a PISA index (:class:`PisaIndex`)"""

    algorithm: Param[str] = field(default="block_max_maxscore", ignore_default=True)
    """``block_max_maxscore`` or ``block_max_wand`` (both exact)"""

    query_scale: Param[float] = field(default=100.0, ignore_default=True)
    """Query weights count as ``int(query_scale * q)``"""

    def get_retrieval_options(self) -> Dict[str, Any]:
        return {"algorithm": self.algorithm, "query_scale": self.query_scale}


class PisaIndex(AbstractSparseRetrieverIndex):
    """A PISA index written by :class:`PisaConverter` (:mod:`splade.pisa`):
    exact top-k of the quantized scores, one query at a time on one
    thread"""

    Retriever = PisaRetriever

    index_path: Meta[Path]
    """Folder of the PISA index"""

    def initialize(self, in_memory: bool):
        from splade.pisa import PisaSearcher

        self.searcher = PisaSearcher(self.index_path)

    def search(
        self,
        query: Dict[int, float],
        top_k: int,
        algorithm: str = "block_max_maxscore",
        query_scale: float = 100.0,
    ):
        """Document ids and scores (quantized score / (scale *
        query_scale)) of the top-k"""
        return self.searcher.search(query, top_k, algorithm, query_scale)

    def retrieve(
        self, query: Dict[int, float], top_k: int, **options
    ) -> List[ScoredDocument]:
        return scored(self.documents, *self.search(query, top_k, **options))

    async def aio_retrieve(
        self, query: Dict[int, float], top_k: int, **options
    ) -> List[ScoredDocument]:
        return self.retrieve(query, top_k, **options)


class PisaConverter(Task):
    """Writes the PISA index of a SPLADE index (the exhaustive engine's or
    impact-index's): weights quantized as ``int(scale * w)``, compressed
    (``block_simdbp``) with block-max data"""

    index: Param[AbstractSparseRetrieverIndex]
    """The SPLADE index (:class:`ExhaustiveIndex` or impact-index's
    ``SparseRetrieverIndex``)"""

    scale: Param[float] = field(default=100.0, ignore_default=True)
    """Document weights are stored as ``int(scale * w)``"""

    block_size: Param[int] = field(default=64, ignore_default=True)
    """Postings per block of the block-max data"""

    pisa_path: Meta[Path] = field(default_factory=PathGenerator("pisa"))
    """Folder of the PISA index"""

    def task_outputs(self, dep):
        return dep(
            PisaIndex.C(index_path=self.pisa_path, documents=self.index.documents)
        )

    def execute(self):
        meta = convert_to_pisa(self.index, self.pisa_path, self.scale, self.block_size)
        logger.info("PISA index: %s", meta)


def convert_to_pisa(index, folder: Path, scale: float = 100.0, block_size: int = 64):
    """What :class:`PisaConverter` does: the PISA index of ``index`` (an
    exhaustive or impact-index index) in ``folder``"""
    from splade.pisa import write_index

    folder = Path(folder)
    scratch = folder.parent / f"{folder.name}-postings"
    try:
        return write_index(term_major(index, scratch), folder, scale, block_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- BMP (the bmp package, with splade/workarounds/bmp.py)


class SafeBMPIndex(AbstractSparseRetrieverIndex):
    """A BMP index written by :class:`SafeBMPConverter`: no score can
    overflow BMP's 16-bit counter, and the searcher's other faults are
    worked around (:mod:`splade.workarounds.bmp`)"""

    Retriever = BMPSparseRetriever

    index_path: Meta[Path]
    """The BMP index file (``<name>.json`` and ``<name>.kth.npy`` beside
    it)"""

    def initialize(self, in_memory: bool):
        from splade.workarounds.bmp import Searcher

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
    (:func:`splade.workarounds.bmp.write_index`)"""

    index: Param[AbstractSparseRetrieverIndex]
    """The SPLADE index (:class:`ExhaustiveIndex` or impact-index's
    ``SparseRetrieverIndex``)"""

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
    from splade.workarounds.bmp import write_index

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


def engine_search(index, **options):
    """``(query, k) -> (document ids, scores)`` of an initialized index: the
    engine's own search, without xpmir's fetching of the k documents' text
    (what latency measures time)"""
    from xpmir.index.sparse import BMPSparseRetrieverIndex, SeismicSparseRetrieverIndex

    def ids_and_scores(results):
        return [r.docid for r in results], [r.score for r in results]

    if isinstance(index, ExhaustiveIndex):
        return index.search
    if isinstance(index, (PisaIndex, SafeBMPIndex)):
        return lambda query, k: index.search(query, k, **options)
    if isinstance(index, WANDIndex):
        return lambda query, k: ids_and_scores(index.index.search_wand(query, k))
    if isinstance(index, SparseRetrieverIndex):
        return lambda query, k: ids_and_scores(index.index.search_maxscore(query, k))
    if isinstance(index, BMPSparseRetrieverIndex):
        return lambda query, k: index.searcher.search(
            {str(t): float(w) for t, w in query.items()}, k=k, **options
        )
    if isinstance(index, SeismicSparseRetrieverIndex):
        return lambda query, k: ids_and_scores(
            index.searcher.search(query, top_k=k, **options)
        )
    # Any other index: its retrieve (with the documents' records)
    return lambda query, k: index.retrieve(query, k, **options)


# --- The index and the retriever


def index_builder(
    engine: Engine,
    *,
    documents,
    encoder,
    batch_size: int,
    max_docs: int,
    fabric_config,
) -> AbstractSparseRetrieverIndexBuilder:
    """The task that encodes and indexes ``documents`` for the engine (to
    submit): the exhaustive index, or the impact-index index that the other
    engines search (or convert)"""
    common = dict(
        documents=documents,
        encoder=encoder,
        batch_size=batch_size,
        max_docs=max_docs,
        ordered_index=False,
        fabric_config=fabric_config,
    )
    if EngineName(engine.name) in (
        EngineName.EXHAUSTIVE,
        EngineName.PISA,
        EngineName.BMP,
    ):
        # PISA's and BMP's indices are converted from the exhaustive one
        return ExhaustiveIndexBuilder.C(**common)
    return SparseRetrieverIndexBuilder.C(**common)


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
    :param index: the output of :func:`index_builder`'s task (submitted)
    :param encoder: the query encoder
    :param topk: number of retrieved documents
    :param batch_size: number of queries encoded at once
    :param launcher: launcher of the conversion tasks (compression, BMP,
        Seismic, PISA), that the engine may submit; they only read the index
    :return: a ``SparseRetriever`` configuration; for ``maxscore`` on the
        raw index it is exactly ``SparseRetriever.C(index=index,
        encoder=encoder, topk=topk, batchsize=batch_size)``
    """
    name = EngineName(engine.name)
    common: Dict[str, Any] = {"encoder": encoder, "topk": topk}
    common["batchsize"] = batch_size

    if name == EngineName.EXHAUSTIVE:
        return ExhaustiveRetriever.C(
            index=index, threads=engine.exhaustive.threads, **common
        )

    if name == EngineName.PISA:
        pisa = engine.pisa
        pisa_index = PisaConverter.C(
            index=index, scale=pisa.scale, block_size=pisa.block_size
        ).submit(launcher=launcher)
        return PisaRetriever.C(
            index=pisa_index,
            algorithm=pisa.algorithm,
            query_scale=pisa.query_scale,
            **common,
        )

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
        bmp_index = SafeBMPConverter.C(
            index=index,
            block_size=bmp.block_size,
            compress_range=bmp.compress_range,
            reorder=bmp.reorder,
            query_levels=bmp.query_levels,
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
