"""The ``pruned`` engine (splade/engines/pruned.py): posting lists cut to
their highest weights, candidates rescored exactly from a forward index"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import ROOT, document_store, load
from datamaestro_ir.data import SimpleTextItem
from experimaestro.utils.config import validate_attrs

from splade.configuration import Engine, Model
from splade.engines import ENGINES, problems
from splade.engines.exhaustive import ExhaustiveIndex, from_csr, term_major
from splade.engines.pruned import (
    Pruned,
    PrunedConverter,
    PrunedIndex,
    PrunedRetriever,
    PrunedSearcher,
    write_index,
)
from splade.models import load_encoders, splade_model

NUM_DOCS, VOCABULARY = 6000, 2000


def zipf_matrix(rng, count, draws, exponent, mean):
    """Rows of the distinct terms of ``draws`` Zipf draws, log-normal
    weights (heavier for rarer terms, as SPLADE's)"""
    ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-exponent)
    cdf /= cdf[-1]
    rows = np.repeat(np.arange(count), draws)
    terms = np.minimum(np.searchsorted(cdf, rng.random(count * draws)), VOCABULARY - 1)
    weights = rng.lognormal(mean + 0.1 * np.log1p(terms), 0.6).astype(np.float32)
    matrix = sp.csr_matrix((weights, (rows, terms)), shape=(count, VOCABULARY))
    matrix.sum_duplicates()
    return matrix


@pytest.fixture(scope="module")
def random_collection(tmp_path_factory):
    rng = np.random.default_rng(0)
    documents = zipf_matrix(rng, NUM_DOCS, 80, 1.0, -1.0)
    queries = zipf_matrix(rng, 40, 30, 0.8, -0.5)
    folder = tmp_path_factory.mktemp("pruned")
    index = from_csr(documents, folder / "exhaustive")
    return folder, documents, queries, index


def rows(matrix):
    for q in range(matrix.shape[0]):
        a, b = matrix.indptr[q], matrix.indptr[q + 1]
        yield matrix.indices[a:b].astype(np.int64), matrix.data[a:b]


def test_index_keeps_the_highest_weights_and_the_documents(random_collection):
    folder, documents, _, index = random_collection
    meta = write_index(index, folder / "p50", postings=50)
    lengths = np.diff(np.asarray(index.offsets))
    assert meta["kept_postings"] == np.minimum(lengths, 50).sum()
    searcher = PrunedSearcher(folder / "p50")
    kept = searcher.inverted
    by_term = documents.tocsc()
    for term in np.flatnonzero(lengths > 50)[:20]:
        a, b = kept.offsets[term], kept.offsets[term + 1]
        docids = np.asarray(kept.docids[a:b])
        assert np.all(np.diff(docids.astype(np.int64)) > 0)  # document order
        column = by_term[:, term].toarray().ravel()
        np.testing.assert_array_equal(kept.weights[a:b], column[docids])
        # no dropped posting weighs more than a kept one
        dropped = np.setdiff1d(np.flatnonzero(column), docids)
        assert column[dropped].max() <= column[docids].min()
    # the forward index is the documents' matrix
    indptr, terms, weights = searcher.forward
    forward = sp.csr_matrix(
        (weights, terms.astype(np.int64), indptr), shape=documents.shape
    )
    assert (forward != documents).nnz == 0


def test_without_pruning_it_is_exact(random_collection):
    """Every posting kept and every document rescored: the exhaustive
    engine's results (exact)"""
    folder, _, queries, index = random_collection
    write_index(index, folder / "whole", postings=NUM_DOCS)
    pruned, exhaustive = PrunedSearcher(folder / "whole"), index.searcher()
    for terms, weights in rows(queries):
        for k in (1, 10, 100):
            found = pruned.search(terms, weights, k, candidates=NUM_DOCS)
            expected = exhaustive.search(terms, weights, k)
            np.testing.assert_array_equal(found[0], expected[0])
            np.testing.assert_allclose(found[1], expected[1], rtol=1e-5)


def test_pruned_search_returns_exact_scores_of_what_it_finds(random_collection):
    """Scores are the exact dot products, sorted; recall@10 against exact
    search grows with the postings kept and the candidates rescored"""
    folder, documents, queries, index = random_collection
    exhaustive = index.searcher()
    recalls = {}
    for postings, candidates in ((30, 10), (100, 50), (300, 200), (1000, 500)):
        write_index(index, folder / f"p{postings}", postings)
        searcher = PrunedSearcher(folder / f"p{postings}")
        found_all = []
        for terms, weights in rows(queries):
            ids, scores = searcher.search(terms, weights, 10, candidates)
            query = np.zeros(VOCABULARY, np.float32)
            np.add.at(query, terms, weights)
            np.testing.assert_allclose(scores, documents[ids] @ query, rtol=1e-5)
            assert np.all(np.diff(scores) <= 0) and np.all(scores > 0)
            found_all.append(ids)
        exact = [exhaustive.search(t, w, 10)[0] for t, w in rows(queries)]
        recalls[postings] = np.mean(
            [len(set(f) & set(e)) / 10 for f, e in zip(found_all, exact, strict=True)]
        )
    assert recalls[30] < recalls[100] < recalls[300] < recalls[1000]
    # (independent random terms: harder to prune than real vectors)
    assert recalls[1000] >= 0.98 and recalls[30] < 0.5


def test_query_terms_traverses_the_heaviest(random_collection):
    folder, _, queries, index = random_collection
    write_index(index, folder / "p100", postings=100)
    searcher = PrunedSearcher(folder / "p100")
    offsets = searcher.inverted.offsets
    terms, weights = next(rows(queries))
    heaviest = terms[np.argsort(-weights, kind="stable")[:5]]
    expected = (offsets[heaviest + 1] - offsets[heaviest]).sum()
    assert searcher.postings(terms, weights, query_terms=5) == expected
    everything = (offsets[terms + 1] - offsets[terms]).sum()
    assert searcher.postings(terms, weights) == everything > expected
    # fewer terms traversed: a subset of the candidates, still exact scores
    ids, scores = searcher.search(terms, weights, 10, 50, query_terms=5)
    assert len(ids) == 10


def test_edge_cases(random_collection):
    folder, _, _, index = random_collection
    write_index(index, folder / "edge", postings=20)
    searcher = PrunedSearcher(folder / "edge")
    empty = searcher.search(np.array([], np.int64), np.array([], np.float32), 10)
    assert len(empty[0]) == 0
    unknown = searcher.search(np.array([VOCABULARY + 5]), np.array([1.0]), 10)
    assert len(unknown[0]) == 0
    assert len(searcher.search(np.array([3]), np.array([1.0]), 0)[0]) == 0
    with pytest.raises(ValueError, match="same length"):
        searcher.search(np.array([1, 2]), np.array([1.0]), 10)


def test_configuration():
    assert "pruned" in ENGINES and ENGINES["pruned"].Settings is Pruned
    engine = validate_attrs(
        Engine, {"name": "pruned", "pruned": {"postings": 500, "candidates": 200}}
    )
    assert engine.pruned.postings == 500 and engine.pruned.query_terms == 0
    assert problems(engine) == []
    with pytest.raises(Exception, match="pruned.candidates"):
        validate_attrs(Engine, {"name": "pruned", "pruned": {"candidates": 0}})


@pytest.fixture(scope="module")
def debug_vectors(tmp_path_factory, collection, tiny_model):
    """150 debug documents encoded by the embedded model, their exhaustive
    index and the encoders"""
    documents = collection.documents[:150]
    folder = tmp_path_factory.mktemp("pruned-debug")
    store = document_store(folder, documents)
    encoders = load_encoders(tiny_model)
    with torch.no_grad():
        vectors = encoders[0](
            [{"text_item": SimpleTextItem(text)} for _, text in documents]
        ).value.numpy()
    from_csr(sp.csr_matrix(vectors), folder / "exhaustive")
    index = ExhaustiveIndex.C(index_path=folder / "exhaustive", documents=store)
    return folder, store, index, encoders, vectors, documents


def test_chosen_in_yaml(tmp_path):
    """A recipe with ``retrieval.engine.name: pruned``: the exhaustive index
    is converted (``postings``), the retriever searches with the other
    settings"""
    from dryrun import dry_run, of_type
    from xpmir.evaluation import Evaluate

    from splade.engines.exhaustive import ExhaustiveIndexBuilder

    cfg = load(
        ROOT / "splade" / "debug.yaml",
        "retrieval.engine.name=pruned",
        "retrieval.engine.pruned.postings=50",
        "retrieval.engine.pruned.candidates=20",
    )
    tasks = dry_run(cfg, tmp_path)
    (splade,) = [
        e for e in of_type(tasks, Evaluate) if e.__xpm__.tags()["model"] == "splade"
    ]
    assert isinstance(splade.retriever, PrunedRetriever)
    assert splade.retriever.candidates == 20
    (converter,) = of_type(tasks, PrunedConverter)
    assert converter.postings == 50
    assert isinstance(converter.index.__xpm__.task, ExhaustiveIndexBuilder)


def test_pruned_retriever(debug_vectors, tiny_model):
    """The retriever of a converted index (as PrunedConverter converts it):
    what the searcher finds, as documents of the collection, with their
    exact scores"""
    folder, store, index, encoders, vectors, documents = debug_vectors
    scorer, _, _ = splade_model(Model(base_hf_id=str(tiny_model)))
    write_index(term_major(index.instance(), folder / "scratch"), folder / "p", 20)
    config = PrunedRetriever.C(
        index=PrunedIndex.C(index_path=folder / "p", documents=store),
        encoder=scorer.query_encoder,
        topk=10,
        batchsize=8,
        candidates=30,
        query_terms=8,
    )
    retriever = config.instance()
    retriever.encoder.initialize()
    retriever.encoder.load_model(tiny_model)
    retriever.initialize()
    docids = [d for d, _ in documents]
    searcher = PrunedSearcher(folder / "p")
    for text in ("lazo bomu vipube", "mopege nina diba lazo"):
        record = {"text_item": SimpleTextItem(text)}
        with torch.no_grad():
            q = encoders[1]([record]).value.numpy()[0]
        found = retriever.retrieve(record)
        terms = np.flatnonzero(q)
        ids, _ = searcher.search(terms, q[terms], 10, 30, 8)
        assert [sd.document["id"] for sd in found] == [docids[i] for i in ids]
        scores = vectors @ q
        returned = [sd.score for sd in found]
        np.testing.assert_allclose(
            returned, scores[[docids.index(sd.document["id"]) for sd in found]],
            rtol=1e-4, atol=1e-5,
        )  # fmt: skip


def test_statistics_of_the_efficiency_table(debug_vectors):
    """The efficiency table's statistics of a pruned index: documents keep
    all their terms (the forward index), a query traverses the pruned
    posting lists (FLOPS), read through the engine registry"""
    from splade.engines import average_nonzeros, document_frequencies

    folder, store, index, _, vectors, _ = debug_vectors
    write_index(term_major(index.instance(), folder / "scratch"), folder / "s", 20)
    pruned = PrunedIndex.C(index_path=folder / "s", documents=store).instance()
    pruned.initialize(in_memory=True)
    nonzero = vectors != 0
    assert average_nonzeros(pruned) == pytest.approx(nonzero.sum() / len(vectors))
    frequencies = document_frequencies(pruned)
    expected = np.minimum(nonzero.sum(axis=0), 20) / len(vectors)
    np.testing.assert_allclose(frequencies[: len(expected)], expected)
    assert (frequencies[len(expected) :] == 0).all()
