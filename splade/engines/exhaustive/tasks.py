"""The exhaustive engine's tasks: the index of the encoded documents
(:class:`ExhaustiveIndexBuilder`), its configuration (:class:`ExhaustiveIndex`)
and its retriever (:class:`ExhaustiveRetriever`)"""

import logging
import shutil
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from experimaestro import Meta, PathGenerator, field
from xpm_torch.configuration import FabricConfiguration
from xpmir.index.sparse import (
    AbstractSparseRetrieverIndex,
    AbstractSparseRetrieverIndexBuilder,
    SparseRetriever,
)
from xpmir.rankers import ScoredDocument
from xpmir.utils.multiprocessing import available_cpus

from splade.workarounds.datamaestro_ir import scored

__all__ = [
    "ExhaustiveIndex",
    "ExhaustiveIndexBuilder",
    "ExhaustiveRetriever",
    "PARALLEL_WORK",
]

logger = logging.getLogger(__name__)


class ExhaustiveIndex(AbstractSparseRetrieverIndex):
    """The package's exact exhaustive index (term-major postings, float32
    accumulator over all documents, partial top-k)"""

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.exhaustiveindex"

    index_path: Meta[Path]
    """Folder of the index (:mod:`splade.engines.exhaustive.format`)"""

    def initialize(self, in_memory: bool):
        from splade.engines.exhaustive.format import SparseIndex

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

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.exhaustiveindexbuilder"

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
        from splade.engines.exhaustive.build import IndexBuilder

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

    # (its identifier when it was in splade/engines.py)
    __xpmid__ = "splade.engines.exhaustiveretriever"

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
