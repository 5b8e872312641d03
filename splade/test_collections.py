"""The test collections, with the measures computed on each

Each test collection is searched in an index of its own documents (e.g. a
BEIR dataset), built once per collection of documents: test collections on
the same documents (MS MARCO dev and TREC DL) share their indices
(:mod:`splade.indexing`).
"""

from typing import Dict, List

from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluations

from splade.configuration import Data
from splade.datasets import Datasets
from splade.indexed_subset import IndexedSubset
from splade.measures import measure
from splade.results import ResultsTable

__all__ = ["problems", "selected_tests", "test_collections"]


def problems(data: Data) -> List[str]:
    """Test collections named in ``data`` that are not in ``data.tests``"""
    found = []
    for field, keys in (
        ("tests_only", data.tests_only),
        ("test_sizes", data.test_sizes),
        ("test_requirements", data.test_requirements),
        *((f"averages.{name}", names) for name, names in data.averages.items()),
    ):
        found += [
            f"data.{field}: {key} is not a test collection"
            f" (data.tests: {sorted(data.tests)})"
            for key in keys
            if key not in data.tests
        ]
    return found


def test_collections(
    datasets: Datasets, measures: List[str], max_docs: int
) -> ResultsTable:
    """The test collections, with the measures computed on each

    When only the first ``max_docs`` documents are indexed, the queries and
    judgements are restricted to them; a test collection named in
    ``data.test_sizes`` is a random sample of its queries.
    """
    collections = {}
    data = datasets.data
    for key, dataset_id in selected_tests(data).items():
        relevance = data.binary_relevance.get(key, 1)
        parsed = [measure(name, relevance) for name in measures]
        collection = datasets.get(dataset_id)
        if max_docs > 0:
            collection = IndexedSubset.C(dataset=collection, max_docs=max_docs).submit()
        if size := data.test_sizes.get(key):
            collection = RandomFold.C(
                dataset=collection, seed=0, fold=0, sizes=[size]
            ).submit()
        collections[key] = Evaluations(collection, parsed)
    return ResultsTable(measures, data.averages, **collections)


def selected_tests(data: Data) -> Dict[str, str]:
    """The test collections evaluated (``data.tests_only``, if given)"""
    if not data.tests_only:
        return dict(data.tests)
    return {key: data.tests[key] for key in data.tests_only if key in data.tests}
