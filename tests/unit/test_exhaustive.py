"""Exact exhaustive retrieval (splade/exhaustive.py) against the dot product"""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from splade.engines import exhaustive as ex

NUM_DOCS, VOCABULARY, DOC_TERMS = 3000, 3000, 60
NUM_QUERIES, QUERY_TERMS = 30, 15
RTOL = 1e-5


def zipf_vectors(rng, count, terms, exponent, mean):
    """CSR (float32): ``terms`` distinct Zipf-distributed term ids per row
    (ranks mapped to ids by a fixed permutation), log-normal weights"""
    ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-exponent)
    cdf /= cdf[-1]
    permutation = np.random.default_rng(12).permutation(VOCABULARY)
    rows = []
    for _ in range(count):
        chosen = np.zeros(0, np.int64)
        while chosen.shape[0] < terms:
            draws = np.searchsorted(cdf, rng.random(2 * terms))
            chosen = np.unique(np.concatenate([chosen, draws]))
        rows.append(rng.permutation(chosen)[:terms])
    indptr = np.arange(count + 1) * terms
    indices = permutation[np.concatenate(rows)]
    data = rng.lognormal(mean, 0.6, count * terms).astype(np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), (count, VOCABULARY))
    matrix.sort_indices()
    return matrix


@pytest.fixture(scope="module")
def documents():
    return zipf_vectors(np.random.default_rng(0), NUM_DOCS, DOC_TERMS, 1.1, -1.0)


@pytest.fixture(scope="module")
def queries():
    return zipf_vectors(np.random.default_rng(1), NUM_QUERIES, QUERY_TERMS, 0.9, -0.5)


@pytest.fixture(scope="module")
def index(documents, tmp_path_factory):
    return ex.from_csr(documents, tmp_path_factory.mktemp("exhaustive") / "index")


def rows(matrix):
    for q in range(matrix.shape[0]):
        a, b = matrix.indptr[q], matrix.indptr[q + 1]
        yield matrix.indices[a:b], matrix.data[a:b]


def check_exact(docs, scores, exact, k):
    """Results agree with the float64 dot product ``exact`` (all documents):
    scores within RTOL, sorted, ties by document id, the top-k up to ties"""
    assert docs.dtype == np.int64 and scores.dtype == np.float32
    positive = np.flatnonzero(exact > 0)
    assert len(docs) == min(k, len(positive))
    assert len(set(docs.tolist())) == len(docs)
    np.testing.assert_allclose(scores, exact[docs], rtol=RTOL)
    assert (scores > 0).all()
    order = np.lexsort((docs, -scores))
    assert np.array_equal(order, np.arange(len(docs)))
    if len(docs) == 0:
        return
    # anything left out scores no more than the last returned (up to rounding)
    rest = np.setdiff1d(positive, docs)
    if len(rest):
        assert exact[rest].max() <= exact[docs].min() * (1 + 2 * RTOL)
    # and the exact top-k is found, apart from documents tied (within
    # rounding) with the k-th
    top = positive[np.lexsort((positive, -exact[positive]))][: len(docs)]
    kth = exact[top[-1]]
    missing = np.setdiff1d(top, docs)
    assert (np.abs(exact[missing] - kth) <= 2 * RTOL * kth).all()


@pytest.mark.parametrize("k", [10, 100])
def test_scores_equal_dot_product(index, documents, queries, k):
    searcher = index.searcher()
    exact_all = documents.astype(np.float64) @ queries.astype(np.float64).T
    exact_all = np.asarray(exact_all.todense())
    for q, (terms, weights) in enumerate(rows(queries)):
        docs, scores = searcher.search(terms, weights, k)
        check_exact(docs, scores, exact_all[:, q], k)


def test_k_larger_than_matches(index, documents):
    """Rare terms: every matching document comes back, and k beyond the
    collection size is fine"""
    counts = np.diff(index.offsets)
    rare = np.flatnonzero((counts > 0) & (counts < 5))[:5]
    weights = np.linspace(0.5, 1.5, len(rare)).astype(np.float32)
    exact = documents[:, rare].astype(np.float64) @ weights.astype(np.float64)
    matching = np.flatnonzero(exact > 0)
    assert 0 < len(matching) < 50
    for dense_ratio in (0, np.inf):  # scan (most documents at 0), list
        searcher = index.searcher(dense_ratio=dense_ratio)
        for k in (50, NUM_DOCS, 10 * NUM_DOCS):
            docs, scores = searcher.search(rare, weights, k)
            assert set(docs.tolist()) == set(matching.tolist())
            check_exact(docs, scores, exact, k)


def test_empty_and_absent_terms(index, queries):
    searcher = index.searcher()
    docs, scores = searcher.search([], [], 10)
    assert docs.shape == scores.shape == (0,)
    assert docs.dtype == np.int64 and scores.dtype == np.float32
    # zero weights, k = 0
    assert len(searcher.search([1, 2], [0.0, 0.0], 10)[0]) == 0
    terms, weights = next(rows(queries))
    assert len(searcher.search(terms, weights, 0)[0]) == 0
    # terms outside the vocabulary (or without postings) are ignored
    assert len(searcher.search([VOCABULARY + 5, -1], [1.0, 1.0], 10)[0]) == 0
    expected = searcher.search(terms, weights, 20)
    extended = (
        np.concatenate([terms, [VOCABULARY, VOCABULARY + 100, -3]]),
        np.concatenate([weights, [2.0, 3.0, 1.0]]),
    )
    found = searcher.search(*extended, 20)
    assert np.array_equal(found[0], expected[0])
    assert np.array_equal(found[1], expected[1])


def test_strategies_agree(index, queries):
    """Touched list (dense_ratio=inf) and full scan (dense_ratio=0) give the
    same results, and the accumulator is clean after each query"""
    listed, scanned = index.searcher(dense_ratio=np.inf), index.searcher(dense_ratio=0)
    for k in (10, 1000):
        for terms, weights in rows(queries):
            a, b = listed.search(terms, weights, k), scanned.search(terms, weights, k)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not listed._acc.any() and not scanned._acc.any()


def test_ties_by_document_id(tmp_path):
    """Equal scores: smaller document ids first, also at the cut"""
    matrix = sp.csr_matrix(np.ones((20, 3), np.float32))
    matrix[::3, 2] = 0  # documents 0, 3, ... score 2 on terms 1+2, the rest 3
    matrix.eliminate_zeros()
    index = ex.from_csr(matrix, tmp_path / "index")
    for dense_ratio in (0, np.inf):
        searcher = index.searcher(dense_ratio=dense_ratio)
        docs, scores = searcher.search([1, 2], [1.0, 1.0], 15)
        expected = [d for d in range(20) if d % 3] + [0, 3]
        assert docs.tolist() == expected
        assert scores.tolist() == [2.0] * 13 + [1.0] * 2


def test_negative_weights(tmp_path):
    """Scores coming back to exactly 0 (listed twice), negative scores: only
    positive scores come back, each document once"""
    dense = np.array([[1, 1, 1], [1, 1, 0], [2, 1, 0], [0, 0, 1]], np.float32)
    index = ex.from_csr(sp.csr_matrix(dense), tmp_path / "index")
    weights = np.array([1.0, -1.0, 0.5], np.float32)
    exact = dense.astype(np.float64) @ weights
    for dense_ratio in (0, np.inf):
        searcher = index.searcher(dense_ratio=dense_ratio)
        docs, scores = searcher.search([0, 1, 2], weights, 10)
        check_exact(docs, scores, exact, 10)
        assert docs.tolist() == [2, 0, 3]
        # a list overflow (more first reaches than documents) scans instead
        docs, scores = searcher.search([0, 1, 0, 1, 2], [1, -1, 1, -1, 0.5], 10)
        assert docs.tolist() == [2, 0, 3]
        assert not searcher._acc.any()


def test_batch_threads(index, queries):
    searcher = index.searcher()
    for k in (10, 100):
        single = [searcher.search(t, w, k) for t, w in rows(queries)]
        for threads in (1, 2):
            for batch in (queries, list(rows(queries))):
                results = searcher.search_batch(batch, k, threads=threads)
                assert len(results) == len(single)
                for (a, b), (c, d) in zip(results, single, strict=True):
                    assert np.array_equal(a, c) and np.array_equal(b, d)
    assert searcher.search_batch([], 10, threads=2) == []


def test_mmap_equals_memory(index, queries):
    mapped = ex.SparseIndex.load(index.folder, mmap=True)
    assert isinstance(mapped.docids.base, np.memmap)
    for name in ("offsets", "docids", "weights"):
        assert np.array_equal(getattr(mapped, name), getattr(index, name))
    a, b = mapped.searcher(), index.searcher()
    for terms, weights in rows(queries):
        x, y = a.search(terms, weights, 10), b.search(terms, weights, 10)
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])


def test_format(index, documents):
    """The arrays are scipy's CSC arrays; meta.json holds the sizes"""
    csc = documents.tocsc()
    csc.sort_indices()
    assert np.array_equal(index.offsets, csc.indptr)
    assert np.array_equal(index.docids, csc.indices)
    assert np.array_equal(index.weights, csc.data)
    meta = json.loads((index.folder / "meta.json").read_text())
    assert meta == {
        "format": ex.FORMAT,
        "version": ex.VERSION,
        "num_docs": NUM_DOCS,
        "num_terms": VOCABULARY,
        "num_postings": documents.nnz,
    }
    assert sorted(p.name for p in index.folder.iterdir()) == [
        "docids.npy",
        "meta.json",
        "offsets.npy",
        "weights.npy",
    ]


def files(folder):
    return {
        name: (folder / name).read_bytes()
        for name in ("offsets.npy", "docids.npy", "weights.npy", "meta.json")
    }


def test_spilled_runs_identical(index, documents, tmp_path):
    """A tiny budget (many runs, in or out of document order) writes the same
    bytes as a single run"""
    reference = files(index.folder)
    builder = ex.IndexBuilder(tmp_path / "spilled", VOCABULARY, NUM_DOCS, 64 * 1024)
    for first in range(0, NUM_DOCS, 100):
        builder.add_batch(
            first,
            documents.indptr[first : first + 101],
            documents.indices,
            documents.data,
        )
    assert builder.runs > 10
    builder.finish()
    assert files(tmp_path / "spilled") == reference
    assert not (tmp_path / "spilled" / "_runs").exists()
    # documents out of order, one at a time (a stable sort instead of the
    # counting sort), with both budgets
    order = np.random.default_rng(3).permutation(NUM_DOCS)
    triples = [(int(d), *row_of(documents, d)) for d in order]
    for budget, name in ((64 * 1024, "shuffled-small"), (2**28, "shuffled")):
        ex.build_index(tmp_path / name, triples, VOCABULARY, NUM_DOCS, budget)
        assert files(tmp_path / name) == reference


def row_of(matrix, d):
    a, b = matrix.indptr[d], matrix.indptr[d + 1]
    return matrix.indices[a:b], matrix.data[a:b]


def test_builder_checks(tmp_path):
    builder = ex.IndexBuilder(tmp_path / "index", num_terms=10, num_docs=5)
    with pytest.raises(ValueError):
        builder.add(5, [1], [1.0])
    with pytest.raises(ValueError):
        builder.add(0, [10], [1.0])
    with pytest.raises(ValueError):
        builder.add(0, [1, 2], [1.0])
    builder.add(1, [3, 4], [0.0, 2.0])  # zero weights are dropped
    index = builder.finish()
    assert index.num_postings == 1 and index.num_docs == 5
    empty = ex.build_index(tmp_path / "empty", [], num_terms=4, num_docs=3)
    assert empty.num_postings == 0
    assert len(empty.searcher().search([1], [1.0], 5)[0]) == 0


def build_impact_index(documents, folder, order):
    impact_index = pytest.importorskip("impact_index")
    options = impact_index.BuilderOptions()
    options.in_memory_threshold = 128
    builder = impact_index.IndexBuilder(str(folder), options)
    for d in order:
        terms, values = row_of(documents, d)
        builder.add(d, terms.astype(np.uint64), values.astype(np.float32))
    builder.build(False)
    return impact_index.Index.load(str(folder), True)


@pytest.mark.parametrize("method", ["numpy", "iterator"])
def test_from_impact_index(index, documents, queries, tmp_path, method):
    """Both readers give the builder's arrays (impact-index's builder wants
    increasing document ids: its postings are sorted)"""
    source = build_impact_index(documents, tmp_path / "impact", range(NUM_DOCS))
    converted = ex.from_impact_index(
        tmp_path / "impact", tmp_path / "converted", 1024 * 1024, method=method
    )
    num_terms = source.num_postings()  # (the number of terms)
    assert converted.num_terms == num_terms <= VOCABULARY
    assert converted.num_docs == NUM_DOCS
    assert np.array_equal(converted.offsets, index.offsets[: num_terms + 1])
    assert np.array_equal(converted.docids, index.docids)
    assert np.array_equal(converted.weights, index.weights)
    # against impact-index's own iterators, for a few terms
    for t in np.flatnonzero(np.diff(converted.offsets))[::97]:
        pairs = [(p.docid, p.value) for p in source.postings(int(t))]
        a, b = converted.offsets[t], converted.offsets[t + 1]
        assert [d for d, _ in pairs] == converted.docids[a:b].tolist()
        assert np.array_equal(np.float32([v for _, v in pairs]), converted.weights[a:b])
    searcher = converted.searcher()
    for terms, weights in rows(queries):
        docs, _ = searcher.search(terms, weights, 10)
        query = {int(t): float(w) for t, w in zip(terms, weights, strict=True)}
        found = [r.docid for r in source.search_maxscore(query, 10)]
        assert len(set(docs.tolist()) & set(found)) >= 9  # (ties aside)
