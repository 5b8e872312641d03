"""Retrieval engines (splade/engines.py) against a brute-force dot product

On a random SPLADE-shaped collection (Zipf-distributed term ids, positive
weights): the exact engines return the exact top-k, the approximate ones
reach their documented recall@10, and the two settings that are not offered
(impact-index's default compression, BMP taken as exact) show why. On the
debug collection encoded by the embedded model, the retrievers that
:func:`splade.engines.sparse_retriever` configures return the documents of
the brute-force top-k.
"""

from pathlib import Path

import impact_index
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import document_store
from datamaestro_ir.data import SimpleTextItem
from experimaestro.utils.config import validate_attrs
from pydantic import ValidationError
from xpmir.index.sparse import (
    BMPSparseRetriever,
    SeismicSparseRetriever,
    SeismicSparseRetrieverIndex,
    SparseRetriever,
    SparseRetrieverIndex,
)

from splade.configuration import Engine, Model
from splade.engines import sparse_retriever
from splade.engines.bmp import BMP
from splade.engines.exhaustive import ExhaustiveIndex, ExhaustiveRetriever
from splade.engines.impact import WANDIndex
from splade.models import load_encoders, splade_model

VOCABULARY = 3000


def random_vectors(rng, count, terms, exponent=1.2):
    """Sparse vectors with Zipf-distributed term ids and positive weights"""
    ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
    probabilities = ranks**-exponent / np.sum(ranks**-exponent)
    permutation = rng.permutation(VOCABULARY)
    rows, cols, vals = [], [], []
    for row in range(count):
        ix = np.unique(permutation[rng.choice(VOCABULARY, terms, p=probabilities)])
        rows.append(np.full(len(ix), row))
        cols.append(ix)
        vals.append(rng.lognormal(-0.5, 0.7, len(ix)).astype(np.float32))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(count, VOCABULARY),
        dtype=np.float32,
    )


def build_index(matrix: sp.csr_matrix, folder: Path) -> impact_index.Index:
    """An impact-index index, built as xpmir's SparseRetrieverIndexBuilder does"""
    options = impact_index.BuilderOptions()
    options.in_memory_threshold = 128
    builder = impact_index.IndexBuilder(str(folder), options)
    for docid in range(matrix.shape[0]):
        start, end = matrix.indptr[docid], matrix.indptr[docid + 1]
        builder.add(
            docid, matrix.indices[start:end].astype(np.uint64), matrix.data[start:end]
        )
    return builder.build(False)


def as_dict(row: sp.csr_matrix):
    pairs = zip(row.indices, row.data, strict=True)
    return {int(ix): float(value) for ix, value in pairs}


@pytest.fixture(scope="module")
def random_collection(tmp_path_factory):
    rng = np.random.default_rng(42)
    documents = random_vectors(rng, 3000, 60)
    queries = random_vectors(rng, 60, 15, exponent=0.9)
    folder = tmp_path_factory.mktemp("random")
    build_index(documents, folder / "raw")
    exact = (queries @ documents.T).toarray()
    return documents, queries, exact, folder


def exact_top(scores: np.ndarray, k: int):
    order = np.argsort(-scores, kind="stable")[:k]
    return order[scores[order] > 0]


def recall_at(results, exact, k=10):
    """Mean fraction of the exact top-k (ties at the k-th score count as
    retrieved) found in the results"""
    recalls = []
    for scores, docids in zip(exact, results, strict=True):
        top = exact_top(scores, k)
        found = sum(1 for d in docids[:k] if scores[d] >= scores[top[-1]])
        recalls.append(min(found, len(top)) / len(top))
    return float(np.mean(recalls))


def assert_exact(results, exact, k):
    """The returned scores are the documents' dot products, and the k best"""
    for scores, (docids, returned) in zip(exact, results, strict=True):
        expected = np.sort(scores[exact_top(scores, k)])[::-1]
        np.testing.assert_allclose(returned, scores[docids], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(returned, expected, rtol=1e-5, atol=1e-5)


def search_all(search, queries, k):
    results = []
    for q in range(queries.shape[0]):
        docids, scores = search(as_dict(queries[q]), k)
        results.append((np.asarray(docids, dtype=np.int64), np.asarray(scores)))
    return results


def impact_search(method):
    def search(query, k):
        results = method(query, k)
        return [r.docid for r in results], [r.score for r in results]

    return search


@pytest.mark.parametrize("k", [10, 100])
@pytest.mark.parametrize("algorithm", ["search_maxscore", "search_wand"])
def test_exact_engines_return_the_exact_top_k(random_collection, algorithm, k):
    _, queries, exact, folder = random_collection
    index = impact_index.Index.load(str(folder / "raw"), True)
    results = search_all(impact_search(getattr(index, algorithm)), queries, k)
    assert_exact(results, exact, k)


def test_compressed_index_16_bits_is_exact_in_practice(random_collection):
    _, queries, exact, folder = random_collection
    raw = impact_index.Index.load(str(folder / "raw"), True)
    compressed = raw.compress(str(folder / "c16"), block_size=128, nbits=16)
    results = search_all(impact_search(compressed.search_maxscore), queries, 10)
    assert recall_at([d for d, _ in results], exact) >= 0.995
    for scores, (docids, returned) in zip(exact, results, strict=True):
        np.testing.assert_allclose(returned, scores[docids], rtol=1e-3, atol=1e-3)


def test_default_compression_rounds_impacts_to_integers(random_collection):
    """Why ``compress(block_size=128)`` gave recall@10 0.64: nbits=0 (the
    default) stores each impact as the nearest integer"""
    documents, queries, exact, folder = random_collection
    raw = impact_index.Index.load(str(folder / "raw"), True)
    compressed = raw.compress(str(folder / "c0"), block_size=128)
    term = int(np.argmax(np.bincount(documents.indices)))
    column = documents[:, term].toarray().ravel()
    stored = {r.docid: r.score for r in compressed.search_maxscore({term: 1.0}, 3000)}
    stored = np.array([stored.get(d, 0.0) for d in range(len(column))])
    np.testing.assert_array_equal(stored, np.round(column))
    results = search_all(impact_search(compressed.search_maxscore), queries, 10)
    assert recall_at([d for d, _ in results], exact) < 0.9
    # and the engine does not offer it
    with pytest.raises(ValidationError, match="compression.nbits"):
        validate_attrs(Engine, {"compression": {"enabled": True, "nbits": 0}})


@pytest.fixture(scope="module")
def bmp_searcher(random_collection):
    _, _, _, folder = random_collection
    raw = impact_index.Index.load(str(folder / "raw"), True)
    raw.to_bmp_streaming(str(folder / "bmp"), 64, False)
    return impact_index.BmpSearcher(str(folder / "bmp"))


def bmp_search(searcher, alpha=1.0, beta=1.0, extra=0):
    def search(query, k):
        docids, scores = searcher.search(
            {str(t): w for t, w in query.items()}, k=k + extra, alpha=alpha, beta=beta
        )
        return [int(d) for d in docids[:k]], scores[:k]

    return search


def test_bmp_is_exact_on_quantized_weights_only(random_collection, bmp_searcher):
    """Why BMP with alpha = beta = 1 is not exact: it ranks by the dot
    product of 5-bit query weights (ceil(32 q / max q)) and 8-bit document
    weights (floor(256 d / max d)), and that ranking it gets exactly"""
    documents, queries, exact, _ = random_collection
    quantized_docs = documents.tocsc().astype(np.float64)
    step = np.float32(256) / documents.data.max()
    quantized_docs.data = np.clip(
        (quantized_docs.data.astype(np.float32) * step).astype(np.int64), 0, 255
    ).astype(np.float64)
    results = search_all(bmp_search(bmp_searcher, extra=1), queries, 10)
    for q, (docids, scores) in enumerate(results):
        row = queries[q]
        scale = np.float32(32) / row.data.max()
        weights = dict(zip(row.indices, np.ceil(row.data * scale), strict=True))
        quantized = np.zeros(documents.shape[0])
        for term, weight in weights.items():
            column = quantized_docs[:, term]
            quantized[column.indices] += weight * column.data
        np.testing.assert_array_equal(scores, quantized[docids])
        np.testing.assert_array_equal(scores, np.sort(quantized)[::-1][:10])
    # ... which is not the float ranking
    recall = recall_at([d for d, _ in results], exact)
    assert 0.9 <= recall < 1


def test_bmp_short_result_lists(random_collection, bmp_searcher):
    """impact-index 1.7.1's BmpSearcher sometimes returns k - 1 documents;
    BMPIndex asks for k + 1"""
    _, queries, exact, _ = random_collection
    plain = search_all(bmp_search(bmp_searcher), queries, 10)
    fixed = search_all(bmp_search(bmp_searcher, extra=1), queries, 10)
    short = [q for q, (docids, _) in enumerate(plain) if len(docids) < 10]
    assert short and all((exact[q] > 0).sum() >= 10 for q in short)
    assert all(len(docids) == 10 for docids, _ in fixed)


@pytest.mark.parametrize(
    "alpha,minimum", [(1.0, 0.93), (0.9, 0.85)], ids=["alpha=1", "alpha=0.9"]
)
def test_bmp_recall(random_collection, bmp_searcher, alpha, minimum):
    _, queries, exact, _ = random_collection
    results = search_all(bmp_search(bmp_searcher, alpha=alpha, extra=1), queries, 10)
    assert recall_at([d for d, _ in results], exact) >= minimum


@pytest.fixture(scope="module")
def seismic_searcher(random_collection):
    _, _, _, folder = random_collection
    raw = impact_index.Index.load(str(folder / "raw"), True)
    (folder / "seismic").mkdir()
    raw.to_seismic(str(folder / "seismic"), n_postings=300)
    return impact_index.SeismicSearcher(str(folder / "seismic"))


@pytest.mark.parametrize(
    "query_cut,heap_factor,minimum", [(10, 0.7, 0.9), (15, 0.9, 0.97)]
)
def test_seismic_recall(
    random_collection, seismic_searcher, query_cut, heap_factor, minimum
):
    _, queries, exact, _ = random_collection

    def search(query, k):
        results = seismic_searcher.search(
            query, top_k=k, query_cut=query_cut, heap_factor=heap_factor
        )
        return [r.docid for r in results], [r.score for r in results]

    results = search_all(search, queries, 10)
    assert recall_at([d for d, _ in results], exact) >= minimum
    # Seismic's scores are the exact dot products of what it retrieves
    for scores, (docids, returned) in zip(exact, results, strict=True):
        # (half-precision weights)
        np.testing.assert_allclose(returned, scores[docids], rtol=2e-3, atol=2e-3)


# --- PISA (optional: pyterrier-pisa)


@pytest.fixture(scope="module")
def pisa_searcher(random_collection):
    """The PISA index of the random collection, converted as PisaConverter
    converts the exhaustive index"""
    pytest.importorskip("pyterrier_pisa")
    from splade.engines.exhaustive import SparseIndex, from_csr
    from splade.engines.pisa.index import PisaSearcher, write_index

    documents, _, _, folder = random_collection
    from_csr(documents, folder / "exhaustive")
    write_index(SparseIndex.load(folder / "exhaustive", mmap=True), folder / "pisa")
    return PisaSearcher(folder / "pisa")


def quantized_scores(documents, row, scale=100.0, query_scale=100.0):
    """sum int(query_scale q) int(scale w), computed with numpy"""
    stored = documents.tocsc().astype(np.float64)
    stored.data = np.floor(documents.tocsc().data * np.float32(scale))
    counts = np.floor(row.data * np.float32(query_scale))
    return stored[:, row.indices] @ counts


@pytest.mark.parametrize("algorithm", ["block_max_maxscore", "block_max_wand"])
@pytest.mark.parametrize("k", [10, 100])
def test_pisa_returns_the_top_k_of_quantized_scores(
    random_collection, pisa_searcher, algorithm, k
):
    documents, queries, exact, _ = random_collection
    results = []
    for q in range(queries.shape[0]):
        docids, scores = pisa_searcher.search(as_dict(queries[q]), k, algorithm)
        quantized = quantized_scores(documents, queries[q])
        np.testing.assert_allclose(scores * 1e4, quantized[docids], rtol=1e-6)
        np.testing.assert_allclose(
            scores * 1e4, np.sort(quantized)[::-1][: len(docids)], rtol=1e-6
        )
        assert len(docids) == min(k, (quantized > 0).sum())
        results.append(docids)
    # ... close to the float ranking
    assert recall_at(results, exact) >= 0.99


def test_pisa_searcher_edge_cases(pisa_searcher):
    """A query without any indexed term (or with weights below 1 /
    query_scale) finds nothing; an unknown algorithm is refused"""
    assert len(pisa_searcher.search({10**6: 1.0}, 10)[0]) == 0
    assert len(pisa_searcher.search({0: 0.001}, 10)[0]) == 0
    with pytest.raises(ValueError, match="algorithm"):
        pisa_searcher.search({0: 1.0}, 10, algorithm="exhaustive")


# --- Configuration


def test_engine_configuration():
    engine = validate_attrs(
        Engine, {"name": "seismic", "seismic": {"query_cut": 5, "heap_factor": 0.8}}
    )
    assert engine.seismic.query_cut == 5 and engine.bmp == BMP()
    with pytest.raises(
        ValidationError, match="name\n  Input should be 'exhaustive', 'maxscore'"
    ):
        validate_attrs(Engine, {"name": "lucene"})
    pisa = validate_attrs(Engine, {"name": "pisa", "pisa": {"scale": 50}})
    assert pisa.pisa.scale == 50 and pisa.pisa.algorithm == "block_max_maxscore"
    with pytest.raises(ValidationError, match="pisa.algorithm"):
        validate_attrs(Engine, {"name": "pisa", "pisa": {"algorithm": "wand"}})
    with pytest.raises(ValidationError, match="bmp.alpha\n  Input should be greater"):
        validate_attrs(Engine, {"name": "bmp", "bmp": {"alpha": 0}})
    levels = validate_attrs(Engine, {"name": "bmp", "bmp": {"query_levels": 8}})
    assert levels.bmp.query_levels == 8 and BMP().query_levels == 16
    with pytest.raises(ValidationError, match="bmp.query_levels"):
        validate_attrs(Engine, {"name": "bmp", "bmp": {"query_levels": 33}})


# --- The retrievers of sparse_retriever on the debug collection


@pytest.fixture(scope="module")
def debug_setup(tmp_path_factory, collection, tiny_model):
    """200 debug documents encoded by the embedded model, their impact-index
    index, and the (document, query) encoders"""
    folder = tmp_path_factory.mktemp("debug-index")
    documents = collection.documents[:200]
    store = document_store(folder, documents)

    scorer, _, _ = splade_model(Model(base_hf_id=str(tiny_model)))
    encoders = load_encoders(tiny_model)
    with torch.no_grad():
        vectors = encoders[0](
            [{"text_item": SimpleTextItem(text)} for _, text in documents]
        ).value.numpy()
    build_index(sp.csr_matrix(vectors), folder / "raw")
    index = SparseRetrieverIndex.C(index_path=folder / "raw", documents=store)
    return folder, store, index, scorer, encoders, vectors, documents


#: queries of the debug collection's words, for the retrievers' tests
QUERIES = ("lazo bomu vipube", "mopege nina diba lazo", "vipube theory data")


def ready(retriever, tiny_model):
    """The retriever, with the model loaded, ready to search"""
    retriever.encoder.initialize()
    retriever.encoder.load_model(tiny_model)
    retriever.initialize()
    return retriever


def debug_queries(encoders):
    """The records of QUERIES and their vectors (query encoder)"""
    records = [{"text_item": SimpleTextItem(text)} for text in QUERIES]
    with torch.no_grad():
        return records, encoders[1](records).value.numpy()


def check_exact_retriever(retriever_config, debug_setup, tiny_model):
    """The retriever returns the brute-force top-10 documents and scores"""
    _, _, _, _, encoders, vectors, documents = debug_setup
    retriever = retriever_config.instance()
    ready(retriever, tiny_model)
    records, q = debug_queries(encoders)
    docids = [d for d, _ in documents]
    for record, scores in zip(records, q @ vectors.T, strict=True):
        results = retriever.retrieve(record)
        ids = [docids.index(sd.document["id"]) for sd in results]
        returned = [sd.score for sd in results]
        assert len(results) == 10
        np.testing.assert_allclose(returned, scores[ids], rtol=1e-4, atol=1e-4)
        expected = np.sort(scores)[::-1][:10]
        np.testing.assert_allclose(returned, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["maxscore", "wand"])
def test_exact_retrievers_on_debug_collection(debug_setup, tiny_model, name):
    _, _, index, scorer, *_ = debug_setup
    retriever = sparse_retriever(
        Engine(name=name),
        index=index,
        encoder=scorer.query_encoder,
        topk=10,
        batch_size=8,
    )
    assert isinstance(retriever.index, WANDIndex if name == "wand" else type(index))
    check_exact_retriever(retriever, debug_setup, tiny_model)


def test_maxscore_is_xpmirs_retriever(debug_setup):
    _, _, index, scorer, *_ = debug_setup
    ours = sparse_retriever(
        Engine(name="maxscore"),
        index=index,
        encoder=scorer.query_encoder,
        topk=10,
        batch_size=8,
    )
    current = SparseRetriever.C(
        index=index, encoder=scorer.query_encoder, topk=10, batchsize=8
    )
    assert type(ours) is type(current)
    assert ours.__identifier__().all == current.__identifier__().all


@pytest.fixture(scope="module")
def exhaustive_index(debug_setup):
    """The exhaustive index of the 200 encoded debug documents"""
    from splade.engines.exhaustive import from_csr

    folder, store, _, _, _, vectors, _ = debug_setup
    from_csr(sp.csr_matrix(vectors), folder / "exhaustive")
    return ExhaustiveIndex.C(index_path=folder / "exhaustive", documents=store)


def test_exhaustive_retriever_on_debug_collection(
    debug_setup, exhaustive_index, tiny_model
):
    """The default engine: the exhaustive index, one query at a time"""
    _, _, _, scorer, *_ = debug_setup
    retriever = sparse_retriever(
        Engine(),
        index=exhaustive_index,
        encoder=scorer.query_encoder,
        topk=10,
        batch_size=8,
    )
    assert isinstance(retriever, ExhaustiveRetriever)
    check_exact_retriever(retriever, debug_setup, tiny_model)


@pytest.mark.parametrize("threads", [1, 2])
def test_exhaustive_retrieve_all(
    debug_setup, exhaustive_index, tiny_model, threads, monkeypatch
):
    """All the queries at once (encoded in batches, searched on threads):
    the brute-force top-k, as one query at a time"""
    # the parallel search, even for this little work
    monkeypatch.setattr("splade.engines.exhaustive.tasks.PARALLEL_WORK", 0)
    _, _, _, scorer, encoders, vectors, documents = debug_setup
    config = ExhaustiveRetriever.C(
        index=exhaustive_index,
        encoder=scorer.query_encoder,
        topk=5,
        batchsize=2,
        threads=threads,
    )
    retriever = config.instance()
    ready(retriever, tiny_model)
    records = {f"q{i}": {"text_item": SimpleTextItem(t)} for i, t in enumerate(QUERIES)}
    results = retriever.retrieve_all(records)
    with torch.no_grad():
        q = encoders[1](list(records.values())).value.numpy()
    docids = [d for d, _ in documents]
    for (key, record), scores in zip(records.items(), q @ vectors.T, strict=True):
        returned = [sd.score for sd in results[key]]
        np.testing.assert_allclose(
            returned, np.sort(scores)[::-1][:5], rtol=1e-4, atol=1e-4
        )
        assert [sd.document["id"] for sd in results[key]] == [
            sd.document["id"] for sd in retriever.retrieve(record)
        ]
        ids = [docids.index(sd.document["id"]) for sd in results[key]]
        np.testing.assert_allclose(returned, scores[ids], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("source", ["exhaustive", "impact-index"])
def test_pisa_retriever_on_debug_collection(
    debug_setup, exhaustive_index, tiny_model, tmp_path, source
):
    """PisaConverter (from the exhaustive or the impact-index index), then the
    retriever that sparse_retriever configures: the top-10 of the quantized
    scores, whose float scores are those of the exact top-10 within the
    quantization error"""
    pytest.importorskip("pyterrier_pisa")
    from splade.engines.pisa import PisaIndex, PisaRetriever, convert_to_pisa

    _, store, raw_index, scorer, encoders, vectors, documents = debug_setup
    index = exhaustive_index if source == "exhaustive" else raw_index
    convert_to_pisa(index.instance(), tmp_path / "pisa")
    # as sparse_retriever configures it (tests/unit/test_recipes.py)
    retriever = PisaRetriever.C(
        index=PisaIndex.C(index_path=tmp_path / "pisa", documents=store),
        encoder=scorer.query_encoder,
        topk=10,
        batchsize=8,
    ).instance()
    ready(retriever, tiny_model)
    records, q = debug_queries(encoders)
    docids = [d for d, _ in documents]
    for record, query, scores in zip(records, q, q @ vectors.T, strict=True):
        results = retriever.retrieve(record)
        assert len(results) == 10
        ids = [docids.index(sd.document["id"]) for sd in results]
        quantized = (np.floor(vectors * np.float32(100)) @ np.floor(query * 100)) / 1e4
        returned = np.array([sd.score for sd in results])
        np.testing.assert_allclose(returned, quantized[ids], rtol=1e-5)
        np.testing.assert_allclose(returned, np.sort(quantized)[::-1][:10], rtol=1e-5)
        # each weight is off by less than 0.01
        error = 0.01 * (query.sum() + vectors.sum(axis=1).max()) + 1e-4 * len(query)
        assert np.all(np.abs(returned - scores[ids]) <= error)
        assert np.sort(scores)[::-1][9] - error <= returned.min()


def test_approximate_retrievers_on_debug_collection(
    debug_setup, exhaustive_index, tiny_model
):
    """BMP and Seismic retrievers, on indices converted as the tasks of
    sparse_retriever convert them, return what their searcher finds, as
    documents of the collection (the untrained model's vectors are nearly
    uniform, so that recall is measured on the random collection above)"""
    pytest.importorskip("bmp")
    from splade.engines.bmp import SafeBMPIndex, convert_to_bmp
    from splade.engines.bmp.index import Searcher

    folder, store, index, scorer, encoders, vectors, documents = debug_setup
    raw = impact_index.Index.load(str(folder / "raw"), False)
    convert_to_bmp(exhaustive_index.instance(), folder / "safe-bmp", 32)
    (folder / "seismic").mkdir()
    raw.to_seismic(str(folder / "seismic"))
    bmp = Searcher(folder / "safe-bmp" / "index.bmp")
    seismic = impact_index.SeismicSearcher(str(folder / "seismic"))
    common = {"encoder": scorer.query_encoder, "topk": 10, "batchsize": 8}
    retrievers = {
        "bmp": BMPSparseRetriever.C(
            index=SafeBMPIndex.C(
                index_path=folder / "safe-bmp" / "index.bmp", documents=store
            ),
            alpha=0.9,
            beta=1.0,
            **common,
        ),
        "seismic": SeismicSparseRetriever.C(
            index=SeismicSparseRetrieverIndex.C(
                index_path=folder / "seismic", documents=store
            ),
            heap_factor=0.8,
            **common,
        ),
    }
    text = "lazo bomu vipube mopege"
    with torch.no_grad():
        q = encoders[1]([{"text_item": SimpleTextItem(text)}]).value.numpy()[0]
    query = {int(t): float(q[t]) for t in q.nonzero()[0]}
    expected = {"bmp": bmp.search(query, 10, 0.9, 1.0)[0].tolist()}
    assert len(expected["bmp"]) == 10
    results = seismic.search(query, top_k=10, query_cut=10, heap_factor=0.8)
    expected["seismic"] = [r.docid for r in results]
    for name, config in retrievers.items():
        retriever = ready(config.instance(), tiny_model)
        found = retriever.retrieve({"text_item": SimpleTextItem(text)})
        assert [sd.document["id"] for sd in found] == [
            documents[d][0] for d in expected[name]
        ], name


# --- Efficiency (FLOPS, latency, index size) of the exact engines


@pytest.mark.parametrize("name", ["exhaustive", "maxscore"])
def test_efficiency_measures(debug_setup, exhaustive_index, tiny_model, name):
    """FLOPS is sum_j p_q(j) p_d(j), computed here from the vectors; the
    latencies are positive, and include the query encoding or not; the
    index size is that of its files"""
    from splade.efficiency import folder_size, measure

    folder, _, raw_index, scorer, encoders, vectors, _ = debug_setup
    index = exhaustive_index if name == "exhaustive" else raw_index
    retriever = sparse_retriever(
        Engine(name=name),
        index=index,
        encoder=scorer.query_encoder,
        topk=10,
        batch_size=8,
    ).instance()
    ready(retriever, tiny_model)
    topics = [
        {"id": str(i), "text_item": SimpleTextItem(t)} for i, t in enumerate(QUERIES)
    ]
    measures = measure(retriever, topics, queries=2)

    with torch.no_grad():
        q = encoders[1](topics).value.numpy()
    expected = float(np.dot((q > 0).mean(axis=0), (vectors > 0).mean(axis=0)))
    assert measures["flops"] == pytest.approx(expected, rel=1e-6)
    assert measures["timed_queries"] == 2
    assert 0 < measures["latency_ms"] < measures["latency_query_ms"]
    path = folder / ("exhaustive" if name == "exhaustive" else "raw")
    assert measures["index_mb"] == pytest.approx(folder_size(path) / 2**20)
