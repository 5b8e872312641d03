"""Seismic (Bruch, Nardini, Rulli, Venturini, "Efficient Inverted Indexes
for Approximate Retrieval over Learned Sparse Representations", SIGIR 2024,
https://arxiv.org/abs/2404.18812), impact-index's port of the authors' code:
posting lists pruned to their highest impacts, split into clustered blocks
with summary vectors; approximate"""

from typing import Annotated, List

from annotated_types import Ge, Gt, Interval
from experimaestro.experiments import configuration
from xpmir.index.sparse import (
    SeismicSparseRetriever,
    SeismicSparseRetrieverIndex,
    Sparse2SeismicConverter,
    SparseRetrieverIndexBuilder,
)

from splade.engines.base import Engine

__all__ = ["Seismic", "SeismicEngine"]


@configuration
class Seismic:
    """Seismic (Bruch et al., SIGIR 2024): posting lists pruned to their
    highest impacts, split into clustered blocks with summary vectors"""

    n_postings: Annotated[int, Gt(0)] = 4000
    """Average number of postings kept per term (global budget; 4000, with
    the defaults below, are the authors' settings for SPLADE on MS MARCO,
    measured in BENCHMARKS.md; xpmir's default is 6000)"""

    centroid_fraction: Annotated[float, Interval(gt=0, le=1)] = 0.1
    """Blocks (k-means centroids) per posting list, as a fraction of its
    length"""

    summary_energy: Annotated[float, Interval(gt=0, le=1)] = 0.4
    """Fraction of the L1 mass of a block kept in its summary vector"""

    max_fraction: Annotated[float, Gt(0)] = 1.5
    """Longest posting list, as a multiple of n_postings"""

    knn: Annotated[int, Ge(0)] = 0
    """Nearest neighbours stored per document (0: no kNN graph)"""

    query_cut: Annotated[int, Gt(0)] = 10
    """Only the query_cut highest-weighted query terms are traversed"""

    heap_factor: Annotated[float, Interval(gt=0, le=1)] = 0.7
    """Blocks whose summary score is below heap_factor times the current
    k-th score are skipped (1: no skipping of blocks that might enter the
    top-k; lower is faster and less accurate)"""

    n_knn: Annotated[int, Ge(0)] = 0
    """Neighbours used to refine the results (needs knn >= n_knn)"""


def _ids_and_scores(results):
    return [r.docid for r in results], [r.score for r in results]


class SeismicEngine(Engine):
    """Seismic (Bruch et al., SIGIR 2024, https://arxiv.org/abs/2404.18812):
    approximate (pruned, clustered posting lists)"""

    name = "seismic"
    section = "seismic"
    Settings = Seismic
    # (Seismic's index is converted from impact-index's)
    builder = SparseRetrieverIndexBuilder
    index_types = (SeismicSparseRetrieverIndex,)

    @classmethod
    def problems(cls, settings: Seismic) -> List[str]:
        if settings.n_knn > settings.knn:
            return ["retrieval.engine.seismic.n_knn: needs knn >= n_knn"]
        return []

    @classmethod
    def retriever(cls, settings: Seismic, index, *, launcher=None, **common):
        seismic_index = Sparse2SeismicConverter.C(
            index=index,
            n_postings=settings.n_postings,
            centroid_fraction=settings.centroid_fraction,
            summary_energy=settings.summary_energy,
            max_fraction=settings.max_fraction,
            knn=settings.knn,
        ).submit(launcher=launcher)
        return SeismicSparseRetriever.C(
            index=seismic_index,
            query_cut=settings.query_cut,
            heap_factor=settings.heap_factor,
            n_knn=settings.n_knn,
            **common,
        )

    @classmethod
    def search(cls, index: SeismicSparseRetrieverIndex, **options):
        return lambda query, k: _ids_and_scores(
            index.searcher.search(query, top_k=k, **options)
        )
