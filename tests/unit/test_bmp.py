"""BMP's integer arithmetic (splade/workarounds/bmp.py): the upstream
behaviour of the ``bmp`` package 0.2.8 and of impact-index 1.7.1's port,
then the work-arounds

The SciFact-like collection has what makes scores overflow: documents of
250 terms, and long queries (50 terms) that share the high weights of a
document, as SPLADE queries share those of their relevant documents.
"""

from pathlib import Path

import impact_index
import numpy as np
import pytest
import scipy.sparse as sp

from splade.engines.bmp.index import (
    MAX_QUERY_WEIGHT,
    MAX_SCORE,
    Searcher,
    bmp_query_weights,
    quantize,
    query_weights,
    rounded_query,
    write_index,
)
from splade.engines.exhaustive import SparseIndex, from_csr

bmp = pytest.importorskip("bmp")

VOCABULARY = 30522
IMPLEMENTATIONS = ["bmp", "impact-index"]


def zipf_terms(rng, count, size, exponent=1.0):
    ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64) ** -exponent
    return rng.choice(VOCABULARY, size=(count, size), p=ranks / ranks.sum())


def scifact_like(rng, docs=3000, queries=60):
    """Documents of about 250 terms (weights up to 3, as splade-bert-tiny's
    on SciFact), queries of 50 terms: the 30 highest of a document, and 20
    others"""
    rows, cols, vals = [], [], []
    for doc, terms in enumerate(zipf_terms(rng, docs, 400)):
        terms = np.unique(terms)[:250]
        rows.append(np.full(len(terms), doc))
        cols.append(terms)
        vals.append(np.minimum(rng.lognormal(-0.5, 0.6, len(terms)), 3))
    documents = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(docs, VOCABULARY),
        dtype=np.float32,
    )
    query_rows = []
    for source in rng.integers(0, docs, queries):
        row = documents[source]
        top = row.indices[np.argsort(-row.data)[:30]]
        others = rng.integers(0, VOCABULARY, 20)
        terms = np.unique(np.concatenate([top, others]))
        vector = np.zeros(VOCABULARY, np.float32)
        vector[terms] = rng.lognormal(0.0, 0.5, len(terms))
        query_rows.append(vector)
    return documents, sp.csr_matrix(np.array(query_rows))


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    rng = np.random.default_rng(7)
    documents, queries = scifact_like(rng)
    folder = tmp_path_factory.mktemp("bmp")
    from_csr(documents, folder / "exhaustive")
    return documents, queries, folder


def as_dict(row):
    return {int(t): float(w) for t, w in zip(row.indices, row.data, strict=True)}


def bmp_scores(stored: sp.csc_matrix, row, levels=None) -> np.ndarray:
    """The exact scores BMP computes: stored document weights times
    ceil(32 q / max q) (upstream) or, through Searcher, round(levels q /
    max q)"""
    if levels is None:
        weights = query_weights(row.data)
    else:
        weights = bmp_query_weights(row.data, levels)
    return stored[:, row.indices] @ weights.astype(np.float64)


def recall_of_ranking(results, scores_per_query, k=10):
    """Mean fraction of the top-k of ``scores`` found (ties at the k-th
    score count as found)"""
    recalls = []
    for docids, scores in zip(results, scores_per_query, strict=True):
        kth = np.sort(scores)[::-1][k - 1]
        wanted = min(k, int((scores >= kth).sum()), int((scores > 0).sum()))
        found = sum(1 for d in docids[:k] if scores[d] >= kth and scores[d] > 0)
        recalls.append(min(found, wanted) / wanted)
    return float(np.mean(recalls))


# --- Upstream behaviour


@pytest.fixture(scope="module")
def upstream(collection):
    """impact-index's own conversion (8-bit weights, floor(256 w / max w),
    whatever the lengths of the documents), as xpmir's Sparse2BMPConverter
    makes it, and the scores it implies"""
    documents, _, folder = collection
    builder = impact_index.IndexBuilder(
        str(folder / "raw"), impact_index.BuilderOptions()
    )
    for doc in range(documents.shape[0]):
        a, b = documents.indptr[doc], documents.indptr[doc + 1]
        builder.add(doc, documents.indices[a:b].astype(np.uint64), documents.data[a:b])
    builder.build(False).to_bmp_streaming(str(folder / "upstream.bmp"), 32, False)
    # floor(256 w / max w), at most 255 (tests/unit/test_engines.py)
    stored = documents.tocsc().astype(np.float64)
    step = np.float32(256) / documents.data.max()
    stored.data = np.clip((documents.tocsc().data * step).astype(np.int64), 0, 255)
    return folder / "upstream.bmp", stored


def test_upstream_scores_wrap_past_65535(collection, upstream):
    """(a) Without scaling, long queries have exact top-10 documents whose
    score is above 65,535: BMP returns their score modulo 65,536 and misses
    them, whichever implementation searches"""
    _, queries, _ = collection
    path, stored = upstream
    searchers = [bmp.Searcher(str(path)), impact_index.BmpSearcher(str(path))]
    overflowing, scores_per_query, results = 0, [], {0: [], 1: []}
    for q in range(queries.shape[0]):
        row = queries[q]
        scores = bmp_scores(stored, row)
        scores_per_query.append(scores)
        top = np.argsort(-scores)[:10]
        overflowing += bool((scores[top] > MAX_SCORE).any())
        query = {str(t): w for t, w in as_dict(row).items()}
        for number, searcher in enumerate(searchers):
            docnos, returned = searcher.search(query, 11, 1.0, 1.0)
            docids = [int(d) for d in docnos]
            np.testing.assert_array_equal(returned, scores[docids] % 2**16)
            results[number].append(docids)
    # as on SciFact (44 of 300 queries), about one query in seven
    assert overflowing >= queries.shape[0] // 10
    for number in results:
        assert recall_of_ranking(results[number], scores_per_query) < 0.99


def test_upstream_document_weights_wrap_past_255(tmp_path):
    """bmp's indexers store weights as u8: 300 is stored as 44"""
    indexer = bmp.Indexer(str(tmp_path / "w.bmp"), 1, False)
    for number, weight in enumerate([300, 100, 1]):
        indexer.add_document(str(number), {"x": weight})
    indexer.finish()
    docnos, scores = bmp.Searcher(str(tmp_path / "w.bmp")).search({"x": 1.0}, 3, 1, 1)
    # 100 first; 300 -> 44 (x 32); and the last block (document 2) unscored
    assert (docnos, scores) == (["1", "0"], [3200.0, 44.0 * 32])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_upstream_last_block_is_never_scored(tmp_path, implementation):
    """An index of one block returns nothing; with one document per block,
    the block of lowest upper bound is never scored"""
    indexer = bmp.InvertedIndexer(str(tmp_path / "one.bmp"), 32, False)
    indexer.add_document("a", [(0, 100)])
    indexer.add_document("b", [(0, 50)])
    indexer.add_term("x", [(0, 100), (1, 50)])
    indexer.finish()
    indexer = bmp.InvertedIndexer(str(tmp_path / "three.bmp"), 1, False)
    for number, weight in enumerate([100, 90, 80]):
        indexer.add_document(str(number), [(0, weight)])
    indexer.add_term("x", [(0, 100), (1, 90), (2, 80)])
    indexer.finish()

    def open_(path):
        if implementation == "bmp":
            return bmp.Searcher(str(path))
        return impact_index.BmpSearcher(str(path))

    assert open_(tmp_path / "one.bmp").search({"x": 1.0}, 2, 1.0, 1.0) == ([], [])
    docnos, _ = open_(tmp_path / "three.bmp").search({"x": 1.0}, 3, 1.0, 1.0)
    assert docnos == ["0", "1"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_upstream_query_without_indexed_terms_panics(tmp_path, implementation):
    indexer = bmp.InvertedIndexer(str(tmp_path / "i.bmp"), 32, False)
    indexer.add_document("a", [(0, 1)])
    indexer.add_term("x", [(0, 1)])
    indexer.finish()
    if implementation == "bmp":
        searcher = bmp.Searcher(str(tmp_path / "i.bmp"))
    else:
        searcher = impact_index.BmpSearcher(str(tmp_path / "i.bmp"))
    with pytest.raises(BaseException, match="unwrap") as raised:
        searcher.search({"y": 1.0}, 10, 1.0, 1.0)
    assert type(raised.value).__name__ == "PanicException"


# --- The work-arounds


@pytest.fixture(scope="module")
def fixed(collection):
    documents, _, folder = collection
    index = SparseIndex.load(folder / "exhaustive", mmap=True)
    meta = write_index(index, folder / "fixed.bmp", block_size=32)
    stored = documents.tocsc().astype(np.float64)
    stored.data = quantize(documents.tocsc().data, meta["scale"]).astype(np.float64)
    return folder / "fixed.bmp", stored, meta


def test_safe_scale_bounds_every_score(collection, fixed):
    _, _, meta = fixed
    _, stored, meta = fixed
    levels = meta["query_levels"]
    assert levels == 16 and meta["overflowing_documents"] == 0
    assert stored.data.max() <= 255
    largest = np.asarray(stored.sum(axis=1)).max()
    assert largest == meta["max_stored_sum"]
    # (nearly) the largest such scale
    assert 0.97 * MAX_SCORE <= largest * levels <= MAX_SCORE


def test_fewer_query_levels_leave_more_document_precision(collection, fixed, tmp_path):
    """query_levels (bmp.query_levels, passed by SafeBMPConverter): with 8
    levels the document weights get a larger scale, scores still fit the
    counter, and alpha = 1 still gives the exact top-10 of those scores"""
    documents, queries, folder = collection
    _, _, meta16 = fixed
    index = SparseIndex.load(folder / "exhaustive", mmap=True)
    meta8 = write_index(index, tmp_path / "l8.bmp", block_size=32, query_levels=8)
    assert meta8["query_levels"] == 8 and meta8["overflowing_documents"] == 0
    assert meta8["scale"] > 1.5 * meta16["scale"]
    assert meta8["max_stored_sum"] * 8 <= MAX_SCORE
    stored = documents.tocsc().astype(np.float64)
    stored.data = quantize(documents.tocsc().data, meta8["scale"]).astype(np.float64)
    searcher = Searcher(tmp_path / "l8.bmp")
    results, scores_per_query = [], []
    for q in range(20):
        row = queries[q]
        results.append(searcher.search(as_dict(row), 10)[0])
        scores_per_query.append(bmp_scores(stored, row, 8))
    assert recall_of_ranking(results, scores_per_query) == 1.0


def test_unsafe_scale_is_refused(collection, tmp_path):
    _, _, folder = collection
    index = SparseIndex.load(folder / "exhaustive", mmap=True)
    with pytest.raises(ValueError, match="can overflow"):
        write_index(index, tmp_path / "unsafe.bmp", scale=80.0)
    with pytest.raises(ValueError, match="query_levels"):
        write_index(index, tmp_path / "unsafe.bmp", query_levels=33)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("k", [10, 100])
def test_fixed_bmp_returns_the_exact_top_k_of_quantized_scores(
    collection, fixed, implementation, k
):
    """(b) With the safe scale, at alpha = 1 BMP returns the exact top-k of
    the quantized scores (recall 1 against that ranking)"""
    _, queries, _ = collection
    path, stored, meta = fixed
    searcher = Searcher(path, implementation)
    results, scores_per_query = [], []
    for q in range(queries.shape[0]):
        row = queries[q]
        docids, returned = searcher.search(as_dict(row), k)
        scores = bmp_scores(stored, row, meta["query_levels"])
        maximum, _ = rounded_query(row.data, meta["query_levels"])
        factor = meta["scale"] * MAX_QUERY_WEIGHT / maximum
        np.testing.assert_allclose(returned * factor, scores[docids], rtol=1e-5)
        np.testing.assert_allclose(
            returned * factor, np.sort(scores)[::-1][:k], rtol=1e-5
        )
        results.append(docids)
        scores_per_query.append(scores)
    assert recall_of_ranking(results, scores_per_query, k) == 1.0


def test_documents_in_another_order(collection, fixed, tmp_path):
    """Documents placed in a given order (as after a reordering) keep their
    ids: same exact top-k of the quantized scores"""
    documents, queries, folder = collection
    _, stored, meta = fixed
    index = SparseIndex.load(folder / "exhaustive", mmap=True)
    order = np.random.default_rng(0).permutation(documents.shape[0])
    write_index(index, tmp_path / "ordered.bmp", block_size=32, order=order)
    searcher = Searcher(tmp_path / "ordered.bmp")
    for q in range(10):
        row = queries[q]
        docids, returned = searcher.search(as_dict(row), 10)
        scores = bmp_scores(stored, row, meta["query_levels"])
        maximum, _ = rounded_query(row.data, meta["query_levels"])
        factor = meta["scale"] * MAX_QUERY_WEIGHT / maximum
        np.testing.assert_allclose(returned * factor, scores[docids], rtol=1e-5)
        np.testing.assert_allclose(
            returned * factor, np.sort(scores)[::-1][:10], rtol=1e-5
        )
    with pytest.raises(ValueError, match="permutation"):
        write_index(index, tmp_path / "bad.bmp", order=order[:-1])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_fixed_searcher_edge_cases(tmp_path, implementation):
    """One block, blocks of one document, and queries of no indexed term"""
    documents = sp.csr_matrix(np.array([[1.0, 0], [0.9, 0], [0.8, 2.0]], np.float32))
    from_csr(documents, tmp_path / "exhaustive")
    index = SparseIndex.load(tmp_path / "exhaustive")
    for block_size in (8, 32):
        path = tmp_path / f"b{block_size}.bmp"
        write_index(index, path, block_size=block_size)
        searcher = Searcher(path, implementation)
        assert searcher.search({0: 1.0}, 3)[0].tolist() == [0, 1, 2]
        assert searcher.search({1: 1.0, 0: 0.1}, 2)[0].tolist() == [2, 0]
        assert len(searcher.search({5: 1.0}, 3)[0]) == 0
        assert len(searcher.search({}, 3)[0]) == 0


def test_rounded_query_weights():
    """What BMP uses from the weights that Searcher gives it: round(levels q /
    max q), terms rounded to 0 dropped"""
    weights = np.array([2.0, 1.0, 0.55, 0.5, 0.2, 0.01], np.float32)
    maximum, shifted = rounded_query(weights, 16)
    quantized = query_weights(np.append(shifted, maximum))  # BMP's ceil
    np.testing.assert_array_equal(quantized[:-1][shifted > 0], [16, 8, 4, 4, 2])
    np.testing.assert_array_equal(bmp_query_weights(weights, 16), [16, 8, 4, 4, 2, 0])


def test_fixed_scores_approximate_the_dot_product(collection, fixed):
    documents, queries, _ = collection
    path, _, meta = fixed
    searcher = Searcher(path)
    row = queries[0]
    docids, returned = searcher.search(as_dict(row), 10)
    exact = (documents[docids] @ row.T).toarray().ravel()
    # document weights within 1 / (2 scale), query weights within max q / 32
    assert np.all(np.abs(returned - exact) <= 0.05 * exact)


def test_bmp_block_sizes_are_checked(collection, tmp_path):
    _, _, folder = collection
    index = SparseIndex.load(Path(folder) / "exhaustive", mmap=True)
    with pytest.raises(ValueError, match="blocks hold"):
        write_index(index, tmp_path / "x.bmp", block_size=4)


def test_bisection_order_groups_similar_documents(tmp_path):
    """impact-index's recursive graph bisection, on the postings: a
    permutation that puts documents of the same topic together"""
    from splade.engines.bmp import bisection_order

    rng = np.random.default_rng(3)
    topics = rng.integers(0, 8, 512)
    rows = []
    for topic in topics:
        vector = np.zeros(400, np.float32)
        vector[rng.choice(50, 10, replace=False) + 50 * topic] = 1.0
        rows.append(vector)
    from_csr(sp.csr_matrix(np.array(rows)), tmp_path / "exhaustive")
    index = SparseIndex.load(tmp_path / "exhaustive")
    order = bisection_order(index, tmp_path / "bisection", 16)
    assert sorted(order.tolist()) == list(range(512))
    # blocks of 16 documents: few topics each (about 8 in the given order)
    ordered = topics[order].reshape(-1, 16)
    shuffled = topics.reshape(-1, 16)
    distinct = np.mean([len(set(block)) for block in ordered])
    assert distinct < 0.5 * np.mean([len(set(block)) for block in shuffled])
