"""The package's exhaustive engine: exact, term-at-a-time, every posting of
the query terms scored (the default engine)

Learned sparse queries (SPLADE) have many terms with flat weights: dynamic
pruning (MaxScore, WAND) skips little, and scoring *every* posting of the
query terms into a dense accumulator is faster: about 10 times faster than
PISA's block-max MaxScore and 20 times faster than impact-index's MaxScore
at 1M documents, one thread (BENCHMARKS.md). Its cost grows linearly with
the number of postings of the query terms.

Modules:

- :mod:`.format`: the index folder and :class:`SparseIndex`;
- :mod:`.build`: :class:`IndexBuilder` (bounded memory), :func:`build_index`,
  :func:`from_csr`;
- :mod:`.impact_format`: :func:`from_impact_index` (an impact-index index
  converted to this format);
- :mod:`.kernels` (numba) and :mod:`.search`: :class:`Searcher`;
- :mod:`.tasks`: the experimaestro tasks (index builder, index, retriever);
- :mod:`.shards`: sharded encoding (``indexation.shards``) and merging;
- :mod:`.documents`: :func:`document_blocks`, the index document by
  document (for the exports and the engines that load documents).

Only numpy and numba are needed to build and search (scipy and impact-index
are imported by the converters that need them).
"""

from pathlib import Path
from typing import Annotated

import numpy as np
from annotated_types import Ge
from experimaestro.experiments import configuration
from xpmir.index.sparse import SparseRetrieverIndex

from splade.engines.base import Engine
from splade.engines.exhaustive.build import IndexBuilder, build_index, from_csr
from splade.engines.exhaustive.documents import document_blocks
from splade.engines.exhaustive.format import FORMAT, VERSION, SparseIndex, read_meta
from splade.engines.exhaustive.impact_format import from_impact_index
from splade.engines.exhaustive.search import Searcher
from splade.engines.exhaustive.shards import MergeShards, merge, shard_builders
from splade.engines.exhaustive.tasks import (
    ExhaustiveIndex,
    ExhaustiveIndexBuilder,
    ExhaustiveRetriever,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "Exhaustive",
    "ExhaustiveEngine",
    "ExhaustiveIndex",
    "ExhaustiveIndexBuilder",
    "ExhaustiveRetriever",
    "IndexBuilder",
    "MergeShards",
    "Searcher",
    "SparseIndex",
    "build_index",
    "document_blocks",
    "from_csr",
    "from_impact_index",
    "merge",
    "read_meta",
    "shard_builders",
    "term_major",
]


@configuration
class Exhaustive:
    """The exhaustive engine"""

    threads: Annotated[int, Ge(0)] = 0
    """Search threads (0: every core available to the retrieval task; 1 for
    latency measurements)"""


def term_major(index, scratch: Path) -> SparseIndex:
    """The postings of an index configuration, term-major (memory-mapped):
    the exhaustive index as it is, an impact-index index converted into
    ``scratch`` (for the engines that convert the index: PISA, BMP)"""
    if isinstance(index, ExhaustiveIndex):
        return SparseIndex.load(index.index_path, mmap=True)
    if isinstance(index, SparseRetrieverIndex):
        from_impact_index(index.index_path, scratch)
        return SparseIndex.load(scratch, mmap=True)
    raise TypeError(f"cannot read the postings of {type(index).__name__}")


class ExhaustiveEngine(Engine):
    """The package's exhaustive engine (:mod:`splade.engines.exhaustive`):
    exact, every posting of the query terms scored in a float32
    accumulator, then a partial top-k; the fastest exact engine measured
    (BENCHMARKS.md)"""

    name = "exhaustive"
    exact = True
    section = "exhaustive"
    Settings = Exhaustive
    builder = ExhaustiveIndexBuilder
    index_types = (ExhaustiveIndex,)

    @classmethod
    def retriever(cls, settings: Exhaustive, index, *, launcher=None, **common):
        return ExhaustiveRetriever.C(index=index, threads=settings.threads, **common)

    @classmethod
    def search(cls, index: ExhaustiveIndex, **options):
        return index.search

    @classmethod
    def document_frequencies(cls, index: ExhaustiveIndex):
        counts = np.diff(np.asarray(index.index.offsets))
        return counts / max(index.index.num_docs, 1)

    @classmethod
    def average_nonzeros(cls, index: ExhaustiveIndex):
        meta = read_meta(index.index_path)
        return meta["num_postings"] / max(meta["num_docs"], 1)
