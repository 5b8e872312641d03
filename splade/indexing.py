"""The indices of each collection of documents, and their retrievers: BM25's
and each SPLADE model's

An index is built once per collection of documents, with the key of the
first test collection that has it (its launcher requirements): test
collections on the same documents (MS MARCO dev and TREC DL) share it.
"""

from typing import Dict, Optional

from xpmir.index.bow import BOWRetriever, BOWSparseRetrieverIndexBuilder
from xpmir.rankers.standard import BM25

from splade import engines
from splade.configuration import SPLADEConfiguration
from splade.requirements import Launchers

__all__ = ["BM25Indices", "SpladeIndices"]


class _PerDocuments:
    """One index per collection of documents: :meth:`build` is called once
    for each (with the key of the first test collection that has it)"""

    def __init__(self):
        self._indices: Dict[str, object] = {}

    def index(self, documents, key: Optional[str] = None):
        """The index of ``documents`` (submitted)"""
        identifier = documents.__identifier__().all
        if identifier not in self._indices:
            self._indices[identifier] = self.build(documents, key)
        return self._indices[identifier]

    def build(self, documents, key: Optional[str]):
        raise NotImplementedError


class BM25Indices(_PerDocuments):
    """The BM25 baseline: impact-index bag-of-words indices (no Java), and
    their BM25 retrievers"""

    def __init__(self, cfg: SPLADEConfiguration, launchers: Launchers):
        super().__init__()
        self.cfg = cfg
        self.launchers = launchers

    def build(self, documents, key):
        return BOWSparseRetrieverIndexBuilder.C(
            documents=documents, max_docs=self.cfg.indexation.max_docs
        ).submit(launcher=self.launchers.bm25(key))

    def retriever(self, documents, key: Optional[str] = None, topk=None):
        """BM25's top ``topk`` (default ``retrieval.topk``) of the documents"""
        return BOWRetriever.C(
            index=self.index(documents, key),
            model=BM25.C(k1=self.cfg.bm25.k1, b=self.cfg.bm25.b),
            topk=topk or self.cfg.retrieval.topk,
        )


class SpladeIndices(_PerDocuments):
    """The SPLADE index of a model for the chosen engine, encoded by one
    task or by ``indexation.shards`` tasks whose indices a CPU task merges,
    and its retriever (the engine's, with the query encoder)"""

    def __init__(
        self,
        cfg: SPLADEConfiguration,
        scorer,
        init_tasks,
        device,
        launchers: Launchers,
    ):
        super().__init__()
        self.cfg = cfg
        self.scorer = scorer
        self.init_tasks = init_tasks
        self.device = device
        self.launchers = launchers

    def build(self, documents, key):
        cfg = self.cfg
        builders = engines.index_builders(
            cfg.retrieval.engine,
            cfg.indexation.shards,
            documents=documents,
            encoder=self.scorer.encoder,
            batch_size=cfg.indexation.batch_size,
            max_docs=cfg.indexation.max_docs,
            fabric_config=self.device,
        )
        launcher = self.launchers.indexation(key)
        indices = [
            builder.submit(launcher=launcher, init_tasks=self.init_tasks)
            for builder in builders
        ]
        if len(indices) == 1:
            return indices[0]
        merged = engines.MergeShards.C(shards=indices, documents=documents)
        return merged.submit(launcher=self.launchers.bm25(key))

    def retriever(self, documents, key: Optional[str] = None):
        """The engine's retriever of the index (its conversion tasks, if
        any, go to BM25's launcher: CPU tasks)"""
        cfg = self.cfg
        return engines.sparse_retriever(
            cfg.retrieval.engine,
            index=self.index(documents, key),
            encoder=self.scorer.query_encoder or self.scorer.encoder,
            topk=cfg.retrieval.topk,
            batch_size=cfg.retrieval.batch_size,
            launcher=self.launchers.bm25(key),
        )
