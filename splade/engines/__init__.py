"""Retrieval engines of the SPLADE index, registered in one place

Each engine is a module (or sub-package) of this package holding its
settings (a ``@configuration`` dataclass, ``retrieval.engine.<section>`` in
YAML), its tasks, its searcher and its checks, and a subclass of
:class:`~splade.engines.base.Engine` that says how the package uses them.
:data:`ENGINES` registers them: the experiment finds an engine by its name
(``retrieval.engine.name``), and :mod:`splade.configuration` makes the
``retrieval.engine`` section from their settings.

Adding an engine: a module ``splade/engines/<name>.py`` with its settings
dataclass and an ``Engine`` subclass (``name``, ``section``, ``Settings``,
``builder``, ``index_types``, :meth:`~splade.engines.base.Engine.retriever`),
and one line in :data:`ENGINES` below.

All engines score documents by the dot product of the query and document
SPLADE vectors; ``exact`` ones return its exact top-k.
``tests/unit/engines/`` checks each against a brute-force dot product.

This package is a floor below :mod:`splade.configuration`: it imports
nothing of the package but the work-arounds of the libraries.
"""

import time
from typing import Callable, Dict, List, Optional, Type

from splade.engines.base import Engine, Search
from splade.engines.bmp import BMPEngine
from splade.engines.exhaustive import (
    ExhaustiveEngine,
    ExhaustiveIndexBuilder,
    MergeShards,
    shard_builders,
)
from splade.engines.impact import MaxScoreEngine, WANDEngine
from splade.engines.milvus import MilvusEngine
from splade.engines.pisa import PisaEngine
from splade.engines.seismic import SeismicEngine

__all__ = [
    "ENGINES",
    "Engine",
    "MergeShards",
    "Search",
    "average_nonzeros",
    "document_frequencies",
    "engine_of",
    "index_builders",
    "latency_clock",
    "problems",
    "search_function",
    "sections",
    "sparse_retriever",
]

#: The engines, by name (the first is the default)
ENGINES: Dict[str, Type[Engine]] = {
    engine.name: engine
    for engine in (
        ExhaustiveEngine,
        MaxScoreEngine,
        WANDEngine,
        PisaEngine,
        BMPEngine,
        SeismicEngine,
        MilvusEngine,
    )
}


def sections() -> Dict[str, type]:
    """The settings sections of ``retrieval.engine``: key -> dataclass (in
    the order of :data:`ENGINES`)"""
    found = {}
    for engine in ENGINES.values():
        if engine.section is not None:
            found.setdefault(engine.section, engine.Settings)
    return found


def engine_of(section) -> Type[Engine]:
    """The engine chosen in a ``retrieval.engine`` section"""
    return ENGINES[str(section.name)]


def _settings(section):
    engine = engine_of(section)
    return getattr(section, engine.section) if engine.section else None


def problems(section, shards: int = 1, start: bool = False) -> List[str]:
    """Settings of the engines that do not go together (each value's range
    is checked when the configuration is read), and whether the chosen
    engine's index can be sharded

    :param shards: ``indexation.shards``
    :param start: whether a run starts (not a dry run): the chosen engine
        then also checks the world (:meth:`Engine.start_problems`: a server
        reachable...)
    """
    found = []
    for engine in ENGINES.values():
        if engine.section is not None:
            found += engine.problems(getattr(section, engine.section))
    engine = engine_of(section)
    if start and not (engine.section and engine.problems(_settings(section))):
        found += engine.start_problems(_settings(section))
    if shards > 1 and engine.builder is not ExhaustiveIndexBuilder:
        found.append(
            f"indexation.shards: only the exhaustive index can be sharded (the"
            f" exhaustive, pisa and bmp engines'), not {engine.name}'s"
        )
    return list(dict.fromkeys(found))


def index_builders(section, shards: int = 1, **common) -> List:
    """The tasks that encode and index the documents for the chosen engine
    (to submit): one, or ``shards`` tasks of a slice each (whose indices
    :class:`~splade.engines.exhaustive.MergeShards` merges)

    :param common: ``documents``, ``encoder``, ``batch_size``,
        ``max_docs``, ``fabric_config``
    """
    if shards > 1:
        return shard_builders(shards, **common)
    return [engine_of(section).index_builder(**common)]


def sparse_retriever(section, *, index, encoder, topk, batch_size, launcher=None):
    """The retriever of a SPLADE index with the chosen engine

    :param section: ``retrieval.engine`` (the engine and its parameters)
    :param index: the output of :func:`index_builders`'s task (submitted)
    :param encoder: the query encoder
    :param topk: number of retrieved documents
    :param batch_size: number of queries encoded at once
    :param launcher: launcher of the conversion tasks (compression, BMP,
        Seismic, PISA), that the engine may submit; they only read the index
    """
    return engine_of(section).retriever(
        _settings(section),
        index,
        launcher=launcher,
        encoder=encoder,
        topk=topk,
        batchsize=batch_size,
    )


def _engine_of_index(index) -> Optional[Type[Engine]]:
    """The engine that searches an index configuration"""
    for engine in ENGINES.values():
        if type(index) in engine.index_types:
            return engine
    for engine in ENGINES.values():
        if isinstance(index, engine.index_types):
            return engine
    return None


def search_function(index, **options) -> Search:
    """``(query, k) -> (document ids, scores)`` of an initialized index: the
    engine's own search, without xpmir's fetching of the k documents' text
    (what latencies time); any other index: its ``retrieve``"""
    engine = _engine_of_index(index)
    if engine is None:
        return lambda query, k: index.retrieve(query, k, **options)
    return engine.search(index, **options)


def latency_clock(index) -> Callable[[], float]:
    """The clock of the latencies of an initialized index: the calling
    thread's CPU time, or the wall-clock time for the engines whose search
    runs elsewhere (:attr:`Engine.remote`)"""
    engine = _engine_of_index(index)
    if engine is not None and engine.remote:
        return time.perf_counter
    return time.thread_time


def document_frequencies(index):
    """The fraction of documents where each term is not zero, from an
    initialized index (None for the engines that do not keep it)"""
    engine = _engine_of_index(index)
    return None if engine is None else engine.document_frequencies(index)


def average_nonzeros(index) -> Optional[float]:
    """Average number of non-zero terms per document of a SPLADE index (an
    index builder's output, read from its files; None when unknown)"""
    engine = _engine_of_index(index)
    return None if engine is None else engine.average_nonzeros(index)
