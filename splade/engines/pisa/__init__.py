"""PISA (Mallia et al., "PISA: Performant Indexes and Search for Academia",
OSIRRC 2019), the reference dynamic pruning engine, through
``pyterrier-pisa`` (no Java): block-max MaxScore or WAND on *quantized*
weights, exact on those (:mod:`.index` says how the weights are quantized)

An optional dependency: ``pip install -e ".[pisa]"``.
"""

import logging
import shutil
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal

from annotated_types import Gt
from experimaestro import Meta, Param, PathGenerator, Task, field
from experimaestro.experiments import configuration
from xpmir.index.sparse import AbstractSparseRetrieverIndex, SparseRetriever
from xpmir.rankers import ScoredDocument

from splade.engines.base import Engine
from splade.engines.exhaustive import ExhaustiveIndexBuilder, term_major
from splade.workarounds.datamaestro_ir import scored

__all__ = [
    "Pisa",
    "PisaConverter",
    "PisaEngine",
    "PisaIndex",
    "PisaRetriever",
    "convert_to_pisa",
]

logger = logging.getLogger(__name__)


@configuration
class Pisa:
    """The ``pisa`` engine: the index (converted from the SPLADE index) stores
    each document weight ``w`` as the integer ``int(scale * w)`` (postings
    stored as 0 are dropped), and a query weight ``q`` counts as
    ``int(query_scale * q)`` (query terms counted 0 are dropped); scores are
    the exact sums of their products (see :mod:`splade.engines.pisa`)"""

    scale: Annotated[float, Gt(0)] = 100.0
    """Document weights are stored as ``int(scale * w)`` (100: as
    pyterrier-pisa's ``toks_scale``; a SPLADE weight of at most about 3
    then needs 9 bits)"""

    query_scale: Annotated[float, Gt(0)] = 100.0
    """Query weights count as ``int(query_scale * q)``"""

    algorithm: Literal["block_max_maxscore", "block_max_wand"] = "block_max_maxscore"
    """Query processing: block-max MaxScore (the faster on SPLADE queries,
    BENCHMARKS.md) or block-max WAND; both exact"""

    block_size: Annotated[int, Gt(0)] = 64
    """Postings per block of the block-max data"""


class PisaRetriever(SparseRetriever):
    """Retrieval with a PISA index (:class:`PisaIndex`)"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.pisaretriever"

    algorithm: Param[str] = field(default="block_max_maxscore", ignore_default=True)
    """``block_max_maxscore`` or ``block_max_wand`` (both exact)"""

    query_scale: Param[float] = field(default=100.0, ignore_default=True)
    """Query weights count as ``int(query_scale * q)``"""

    def get_retrieval_options(self) -> Dict[str, Any]:
        return {"algorithm": self.algorithm, "query_scale": self.query_scale}


class PisaIndex(AbstractSparseRetrieverIndex):
    """A PISA index written by :class:`PisaConverter`: exact top-k of the
    quantized scores, one query at a time on one thread"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.pisaindex"

    Retriever = PisaRetriever

    index_path: Meta[Path]
    """Folder of the PISA index"""

    def initialize(self, in_memory: bool):
        from splade.engines.pisa.index import PisaSearcher

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

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.pisaconverter"

    index: Param[AbstractSparseRetrieverIndex]
    """The SPLADE index (the exhaustive engine's ``ExhaustiveIndex`` or
    impact-index's ``SparseRetrieverIndex``)"""

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
    exhaustive or impact-index index configuration) in ``folder``"""
    from splade.engines.pisa.index import write_index

    folder = Path(folder)
    scratch = folder.parent / f"{folder.name}-postings"
    try:
        return write_index(term_major(index, scratch), folder, scale, block_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class PisaEngine(Engine):
    """PISA (Mallia et al., OSIRRC 2019), the reference dynamic pruning
    engine, through pyterrier-pisa (an optional dependency: ``pip install
    -e ".[pisa]"``; no Java): block-max MaxScore or WAND on *quantized*
    weights (``int(scale * w)`` for documents, ``int(query_scale * q)`` for
    queries), exact on those (recall@10 0.99 to 1 against the float ranking
    with the default scales); for comparisons with the exact engines"""

    name = "pisa"
    section = "pisa"
    Settings = Pisa
    # (PISA's index is converted from the exhaustive one)
    builder = ExhaustiveIndexBuilder
    index_types = (PisaIndex,)

    @classmethod
    def retriever(cls, settings: Pisa, index, *, launcher=None, **common):
        pisa_index = PisaConverter.C(
            index=index, scale=settings.scale, block_size=settings.block_size
        ).submit(launcher=launcher)
        return PisaRetriever.C(
            index=pisa_index,
            algorithm=settings.algorithm,
            query_scale=settings.query_scale,
            **common,
        )

    @classmethod
    def search(cls, index: PisaIndex, **options):
        return lambda query, k: index.search(query, k, **options)
