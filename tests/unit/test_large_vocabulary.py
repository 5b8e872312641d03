"""Term ids of the largest LLM vocabularies (Qwen's 151,936 entries) through
every engine, and a generated decoder of that vocabulary size: no engine
may truncate a term id (to 16 bits: 65,536; or 17: 131,072)"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

VOCABULARY = 151_936
#: term ids above 2**17: a truncated id would be another term
HIGH = 2**17


def vectors(rng, count, terms):
    """Random positive vectors, half of their terms among the last 2,000 ids
    of the vocabulary"""
    rows, cols, vals = [], [], []
    for row in range(count):
        ix = np.unique(
            np.concatenate(
                [
                    rng.integers(0, VOCABULARY, terms),
                    rng.integers(VOCABULARY - 2000, VOCABULARY, terms),
                ]
            )
        )
        rows.append(np.full(len(ix), row))
        cols.append(ix)
        vals.append(rng.lognormal(-0.5, 0.7, len(ix)).astype(np.float32))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(count, VOCABULARY),
    )


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Documents, queries of high term ids only, the exact scores, the
    exhaustive index and an impact-index index of the documents"""
    import impact_index

    from splade.engines.exhaustive.build import from_csr

    rng = np.random.default_rng(0)
    documents = vectors(rng, 300, 30)
    queries = vectors(rng, 20, 6)
    queries.data[queries.indices < HIGH] = 0
    queries.eliminate_zeros()
    assert queries.getnnz(axis=1).min() > 0
    folder = tmp_path_factory.mktemp("vocabulary")
    exhaustive = from_csr(documents, folder / "exhaustive")
    assert exhaustive.num_terms == VOCABULARY
    builder = impact_index.IndexBuilder(
        str(folder / "raw"), impact_index.BuilderOptions()
    )
    for doc in range(documents.shape[0]):
        a, b = documents.indptr[doc], documents.indptr[doc + 1]
        builder.add(doc, documents.indices[a:b].astype(np.uint64), documents.data[a:b])
    raw = builder.build(False)
    exact = (queries @ documents.T).toarray()
    return queries, exact, exhaustive, raw, folder


def query_dict(queries, q):
    row = queries[q]
    return {int(t): float(w) for t, w in zip(row.indices, row.data, strict=True)}


def check(search, queries, exact, k=5, tolerance=1e-4, recall=1.0):
    """Each returned document has its exact score (within ``tolerance``,
    relative: the quantized engines), and the top-k recall is at least
    ``recall``"""
    found = []
    for q in range(queries.shape[0]):
        docids, scores = search(query_dict(queries, q), k)
        docids = np.asarray(docids, np.int64)
        assert len(docids) > 0
        expected = exact[q, docids]
        np.testing.assert_allclose(scores, expected, rtol=tolerance, atol=tolerance)
        top = set(np.argsort(-exact[q], kind="stable")[:k].tolist())
        found.append(len(top & set(docids.tolist())) / k)
    assert np.mean(found) >= recall, np.mean(found)


def test_exhaustive(large):
    queries, exact, exhaustive, _, _ = large
    searcher = exhaustive.searcher()

    def search(query, k):
        terms = np.fromiter(query.keys(), np.int64)
        return searcher.search(terms, np.fromiter(query.values(), np.float32), k)

    check(search, queries, exact)


@pytest.mark.parametrize("algorithm", ["search_maxscore", "search_wand"])
def test_maxscore_and_wand(large, algorithm):
    queries, exact, _, raw, _ = large

    def search(query, k):
        results = getattr(raw, algorithm)(query, k)
        return [r.docid for r in results], [r.score for r in results]

    check(search, queries, exact)


def test_pisa(large):
    pytest.importorskip("pyterrier_pisa", reason="pyterrier-pisa (.[pisa]) absent")
    from splade.engines.pisa.index import PisaSearcher, write_index

    queries, exact, exhaustive, _, folder = large
    write_index(exhaustive, folder / "pisa")
    searcher = PisaSearcher(folder / "pisa")
    # weights and query weights quantized to 1/100
    check(searcher.search, queries, exact, tolerance=0.05, recall=0.9)


def test_bmp(large):
    from splade.engines.bmp.index import Searcher, write_index

    queries, exact, exhaustive, _, folder = large
    meta = write_index(exhaustive, folder / "index.bmp", 32)
    # BMP numbers only the terms with postings (its 16-bit forward index)
    assert meta["used_terms"] == int((np.diff(exhaustive.offsets) > 0).sum())
    assert np.flatnonzero(np.diff(exhaustive.offsets) > 0).max() >= HIGH
    searcher = Searcher(folder / "index.bmp")
    check(searcher.search, queries, exact, tolerance=0.1, recall=0.8)


def test_bmp_refuses_more_terms_than_its_16_bits(tmp_path):
    from splade.engines.bmp.index import write_index
    from splade.engines.exhaustive.build import from_csr

    count = 2**16
    matrix = sp.csr_matrix(
        (np.ones(count, np.float32), (np.arange(count) % 64, np.arange(count))),
        shape=(64, VOCABULARY),
    )
    index = from_csr(matrix, tmp_path / "exhaustive")
    with pytest.raises(ValueError, match="16 bits"):
        write_index(index, tmp_path / "index.bmp", 32)


def test_seismic(large):
    import impact_index

    queries, exact, _, raw, folder = large
    raw.to_seismic(
        str(folder / "seismic"),
        n_postings=1000,
        centroid_fraction=0.1,
        summary_energy=0.4,
        max_fraction=1.5,
        knn=0,
    )
    searcher = impact_index.SeismicSearcher(str(folder / "seismic"))

    def search(query, k):
        results = searcher.search(
            query, top_k=k, query_cut=10, heap_factor=1.0, n_knn=0
        )
        return [int(r.docid) for r in results], [r.score for r in results]

    # approximate (pruned postings), but the scores are the documents' (its
    # values are stored in half precision)
    check(search, queries, exact, tolerance=2e-3, recall=0.8)


def test_decoder_of_the_largest_vocabulary(tmp_path):
    """A generated Llama whose LM head has 151,936 entries: vectors of that
    dimension, term ids above 2**17 in the index, saved and loaded"""
    from datamaestro_ir.data import SimpleTextItem

    from splade.encoders.decoder import DecoderLocation, decoder_encoders
    from splade.encoders.topk import TopK
    from splade.engines.exhaustive.build import from_csr
    from splade.tiny_decoder import TinyDecoderSpec, make_tiny_decoder

    texts = ["lazo bomu vipube mopege", "nina diba theory", "analysis data lazo"]
    spec = TinyDecoderSpec(hidden_size=16, heads=2, kv_heads=1, intermediate_size=32)
    make_tiny_decoder(texts * 5, tmp_path / "model", spec, vocab_size=VOCABULARY)
    document, _, _ = decoder_encoders(
        DecoderLocation.C(hf_id=str(tmp_path / "model")),
        name="large",
        query_maxlen=8,
        document_maxlen=16,
        bidirectional=True,
        document_topk=TopK.C(k=256),
    )
    encoder = document.instance()
    encoder.encoder.load_pretrained()
    encoder.eval()
    assert encoder.dimension == VOCABULARY
    records = [{"text_item": SimpleTextItem(text)} for text in texts]
    with torch.no_grad():
        value = encoder(records).value
    assert value.shape == (3, VOCABULARY)
    assert ((value > 0).sum(dim=1) == 256).all()
    matrix = sp.csr_matrix(value.numpy())
    assert matrix.indices.max() >= HIGH
    index = from_csr(matrix, tmp_path / "index")
    assert index.num_terms == VOCABULARY
    term = int(matrix.indices.max())
    docids, scores = index.searcher().search(
        np.array([term], np.int64), np.array([1.0], np.float32), 3
    )
    holders = np.flatnonzero(matrix[:, term].toarray().ravel())
    assert set(docids.tolist()) == set(holders.tolist())

    encoder.save_model(tmp_path / "saved")
    loaded, _, _ = decoder_encoders(
        DecoderLocation.C(hf_id=str(tmp_path / "model")),
        name="large",
        query_maxlen=8,
        document_maxlen=16,
        bidirectional=True,
        document_topk=TopK.C(k=256),
    )
    loaded = loaded.instance()
    loaded.initialize()
    loaded.load_model(tmp_path / "saved")
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(records).value, value)
