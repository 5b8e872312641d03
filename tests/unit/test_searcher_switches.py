"""The switches of the exhaustive engine's ``Searcher`` that the benchmarks
time (``python -m bench.exhaustive --design``): each kernel choice returns
the same results as the default one (exact: ``tests/test_exhaustive.py``)"""

import numpy as np
import pytest
import scipy.sparse as sp

from splade.engines.exhaustive import Searcher, from_csr


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    rng = np.random.default_rng(0)
    documents = sp.random(4000, 800, 0.03, "csr", np.float32, rng)
    # ties: a few duplicated documents and quantized weights
    documents.data = np.round(documents.data * 8) / 8 + 0.125
    documents = sp.vstack([documents, documents[:50]]).tocsr()
    return from_csr(documents, tmp_path_factory.mktemp("switches") / "index")


def queries(count=40, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        terms = rng.choice(800, int(rng.integers(1, 60)), replace=False)
        yield terms, rng.random(len(terms)).astype(np.float32)


SWITCHES = [
    {"selection": "heap"},
    {"branch_free": 2**40},
    {"branch_free": 0},
    {"dense_ratio": 0.0},
    {"dense_ratio": np.inf},
    {"dense_ratio": 0.0, "selection": "heap"},
    {"dense_ratio": np.inf, "selection": "heap"},
]


@pytest.mark.parametrize("switches", SWITCHES, ids=str)
def test_every_kernel_choice_returns_the_default_results(index, switches):
    default, chosen = Searcher(index), Searcher(index, **switches)
    for terms, weights in queries():
        for k in (1, 10, 1000, 10_000):
            expected = default.search(terms, weights, k)
            found = chosen.search(terms, weights, k)
            assert np.array_equal(found[0], expected[0])
            assert np.array_equal(found[1], expected[1])
    batch = list(queries(10, seed=2))
    for got, expected in zip(
        chosen.search_batch(batch, 10, threads=2),
        default.search_batch(batch, 10),
        strict=True,
    ):
        assert np.array_equal(got[0], expected[0])


def test_unknown_selection():
    with pytest.raises(ValueError, match="unknown selection 'sort'"):
        Searcher(None, selection="sort")


def test_postings_read_by_a_query(index):
    searcher = Searcher(index)
    lengths = np.diff(np.asarray(index.offsets))
    terms = np.array([3, 7, 7, 900, 12])  # a repeated term counts twice
    weights = np.array([1.0, 0.5, 0.5, 1.0, 0.0], np.float32)  # 900: unknown
    expected = lengths[3] + 2 * lengths[7]
    assert searcher.postings(terms, weights) == expected
