"""What the package asks of a retrieval engine of the SPLADE index

An engine is a subclass of :class:`Engine` in a module of its own (its
settings dataclass, its tasks, its searcher), registered by one line in
:mod:`splade.engines`. The experiment finds it by its name
(``retrieval.engine.name``), and reads its settings in
``retrieval.engine.<section>``.
"""

from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["Engine", "Search"]

#: ``(query, k) -> (document ids, scores)``: one query (term id -> weight)
Search = Callable[[Dict[int, float], int], Tuple[Any, Any]]


class Engine:
    """A retrieval engine of the SPLADE index (the class docstring is its
    documentation in the configuration reference)

    The index of the documents is built by ``builder`` (the package's
    exhaustive index, or xpmir's impact-index index); an engine searches it,
    or converts it (a task submitted by :meth:`retriever`) into its own
    index.
    """

    #: ``retrieval.engine.name``
    name: ClassVar[str]
    #: Whether the engine returns the exact top-k of the dot product
    exact: ClassVar[bool] = False
    #: Whether the search runs outside the calling thread (a server, a
    #: client library's threads): its latencies are then wall-clock times,
    #: not the CPU time of the calling thread
    remote: ClassVar[bool] = False
    #: The key of its settings in ``retrieval.engine`` (engines may share
    #: one); None: no settings
    section: ClassVar[Optional[str]] = None
    #: The ``@configuration`` dataclass of its settings
    Settings: ClassVar[Optional[type]] = None
    #: The task (configuration class) that encodes and indexes the documents
    builder: ClassVar[type]
    #: The index configurations it searches (for the efficiency measures)
    index_types: ClassVar[Tuple[type, ...]] = ()

    @classmethod
    def problems(cls, settings) -> List[str]:
        """Settings that do not go together (each value's range is checked
        when the configuration is read), each as ``"key: problem"``"""
        return []

    @classmethod
    def start_problems(cls, settings) -> List[str]:
        """What the world must offer for a run with this engine (a server
        reachable, a library installed), checked when a run starts (not in
        a dry run), for the chosen engine only; each as ``"key: problem"``"""
        return []

    @classmethod
    def index_builder(cls, **common):
        """The task that encodes and indexes the documents (to submit)

        :param common: ``documents``, ``encoder``, ``batch_size``,
            ``max_docs``, ``fabric_config``
        """
        return cls.builder.C(ordered_index=False, **common)

    @classmethod
    def retriever(cls, settings, index, *, launcher=None, **common):
        """The retriever (an xpmir ``Retriever`` configuration) of the index

        :param settings: the engine's settings (``retrieval.engine.<section>``)
        :param index: the output of :meth:`index_builder`'s task (submitted)
        :param launcher: launcher of the conversion tasks the engine submits
            (they only read the index)
        :param common: ``encoder``, ``topk``, ``batchsize``
        """
        raise NotImplementedError

    @classmethod
    def search(cls, index, **options) -> Search:
        """The engine's own search of an initialized index, without xpmir's
        fetching of the documents' records (what latencies time)"""
        return lambda query, k: index.retrieve(query, k, **options)

    @classmethod
    def document_frequencies(cls, index) -> Optional[np.ndarray]:
        """The fraction of documents where each term is not zero, from an
        initialized index built by ``builder`` (None when not known)"""
        return None

    @classmethod
    def average_nonzeros(cls, index) -> Optional[float]:
        """Average number of non-zero terms per document of an index built
        by ``builder`` (not initialized: read from its files)"""
        return None
