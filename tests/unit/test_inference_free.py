"""Inference-free SPLADE: a checkpoint in OpenSearch's layout (a masked
language model folder plus ``idf.json``) loads, its query vectors are the
IDF weights of the query's tokens and its document vectors are those of
sentence-transformers' ``SparseEncoder`` (a ``Router`` of the IDF table,
``SparseStaticEmbedding``, for queries, and of the MLM with ``SpladePooling``
for documents) on the same folder; the doc-v3 activation (log1p_relu) is
read from the folder; the IDF table is computed on documents as said;
SPLADE-v3-Lexical's query vectors keep only the query's tokens"""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import ROOT, load
from dryrun import dry_run, of_type

from splade.encoders import ComputeIdf, IdfQueryEncoder, ModelIdf
from splade.encoders.idf import bm25_idf, document_idf
from splade.models import load_encoders

QUERIES = [
    "what about vuso rapim",
    "find information on lakat",
    "the the zz unknownword",
]


@pytest.fixture(scope="module")
def opensearch_folder(tiny_model, tmp_path_factory):
    """A model folder in OpenSearch's layout: the MLM, and an idf.json
    generated over its vocabulary (special tokens with weight 1, as
    OpenSearch's files have them)"""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("opensearch")
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rng = np.random.RandomState(0)
    idf = {
        token: (1.0 if token in tokenizer.all_special_tokens else float(rng.rand() * 8))
        for token in tokenizer.get_vocab()
    }
    (folder / "idf.json").write_text(json.dumps(idf))
    return folder


def sparse_encoder(folder, maxlen, activation="relu"):
    """sentence-transformers' inference-free model of the folder, built as
    OpenSearch's hub folders describe it"""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (
        Router,
        SparseStaticEmbedding,
        SpladePooling,
        Transformer,
    )
    from transformers import AutoTokenizer

    idf = SparseStaticEmbedding.from_json(
        str(folder / "idf.json"),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        frozen=True,
    )
    mlm = Transformer(str(folder), transformer_task="fill-mask", max_seq_length=maxlen)
    pooling = SpladePooling(pooling_strategy="max", activation_function=activation)
    router = Router.for_query_document(
        query_modules=[idf], document_modules=[mlm, pooling]
    )
    return SparseEncoder(modules=[router], device="cpu")


def records(texts):
    from datamaestro_ir.data import SimpleTextItem

    return [{"text_item": SimpleTextItem(text)} for text in texts]


def dense(vectors):
    return vectors.to_dense().numpy() if vectors.is_sparse else vectors.numpy()


def test_query_vectors_are_the_idf_of_the_query_tokens(opensearch_folder):
    from transformers import AutoTokenizer

    _, queries = load_encoders(opensearch_folder, architecture="idf")
    assert isinstance(queries, IdfQueryEncoder)
    table = json.loads((opensearch_folder / "idf.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(opensearch_folder)
    with torch.no_grad():
        vectors = queries(records(QUERIES)).value
    for text, vector in zip(QUERIES, vectors, strict=True):
        tokens = tokenizer.tokenize(text)
        expected = np.zeros(len(tokenizer))
        for token in tokens:
            expected[tokenizer.convert_tokens_to_ids(token)] = table[token]
        assert np.array_equal(vector.numpy(), expected.astype(np.float32))
        # the query's own tokens only, once each
        assert (vector > 0).sum() == len({t for t in tokens if table[t] > 0})


def test_vectors_are_sentence_transformers_ones(opensearch_folder):
    documents, queries = load_encoders(
        opensearch_folder, architecture="idf", document_maxlen=64
    )
    reference = sparse_encoder(opensearch_folder, maxlen=64)
    texts = [
        "vuso rapim lakat analysis data model",
        "filler words only here",
        "lakat " * 40,
    ]
    with torch.no_grad():
        ours_d = documents(records(texts)).value.numpy()
        ours_q = queries(records(QUERIES)).value.numpy()
    theirs_d = dense(reference.encode_document(texts, convert_to_sparse_tensor=False))
    theirs_q = dense(reference.encode_query(QUERIES, convert_to_sparse_tensor=False))
    assert np.allclose(ours_d, theirs_d, atol=1e-5)
    assert (ours_d > 0).sum() > 10
    assert np.array_equal(ours_q, theirs_q)


def test_the_doc_v3_activation_is_read_from_the_folder(opensearch_folder, tmp_path):
    """OpenSearch's doc-v3 folders say log1p_relu in
    document_1_SpladePooling/config.json: log(1 + log(1 + ReLU))"""
    folder = tmp_path / "doc-v3"
    shutil.copytree(opensearch_folder, folder)
    (folder / "document_1_SpladePooling").mkdir()
    (folder / "document_1_SpladePooling/config.json").write_text(
        json.dumps({"pooling_strategy": "max", "activation_function": "log1p_relu"})
    )
    documents, _ = load_encoders(folder, architecture="idf", document_maxlen=64)
    relu, _ = load_encoders(opensearch_folder, architecture="idf", document_maxlen=64)
    reference = sparse_encoder(folder, maxlen=64, activation="log1p_relu")
    texts = ["vuso rapim lakat analysis data model", "lakat lakat"]
    with torch.no_grad():
        ours = documents(records(texts)).value.numpy()
        plain = relu(records(texts)).value.numpy()
    theirs = dense(reference.encode_document(texts, convert_to_sparse_tensor=False))
    assert np.allclose(ours, theirs, atol=1e-5)
    assert np.allclose(ours, np.log1p(plain), atol=1e-6)


def test_lexical_queries_keep_only_their_tokens(tiny_model):
    from transformers import AutoTokenizer

    _, lexical = load_encoders(tiny_model, architecture="lexical")
    _, expanded = load_encoders(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    with torch.no_grad():
        ours = lexical(records(QUERIES)).value
        full = expanded(records(QUERIES)).value
    for text, vector, reference in zip(QUERIES, ours, full, strict=True):
        ids = set(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids -= {tokenizer.mask_token_id}
        mask = torch.zeros_like(reference)
        mask[sorted(ids)] = 1
        assert torch.equal(vector, reference * mask)
        assert (reference > 0).sum() > (vector > 0).sum()


def test_the_idf_table_of_the_documents(tiny_model, collection):
    from transformers import AutoTokenizer

    a, b, c = collection.document_words[0][:3]
    texts = [f"{a} {b} {a}", f"{b} {c}", f"{c} {c} analysis", a]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    table = document_idf(texts, tokenizer, batch_size=3)
    assert set(table) == set(tokenizer.get_vocab())
    for word, df in ((a, 2), (b, 2), (c, 2), ("analysis", 1)):
        expected = math.log(1 + (4 - df + 0.5) / (df + 0.5))
        assert table[word] == pytest.approx(expected)
    assert table["data"] == pytest.approx(bm25_idf(4, np.array([0]))[0])
    assert all(table[t] == 0 for t in tokenizer.all_special_tokens)


def test_zero_shot_on_an_opensearch_folder_needs_only_the_architecture(
    opensearch_folder, tmp_path
):
    """mode: zero-shot, architecture: idf, base_hf_id: the folder: the
    query side reads the folder's idf.json; training computes the table on
    the documents instead (a task)"""
    zero_shot = dry_run(
        load(
            ROOT / "splade/debug.yaml",
            "mode=zero-shot",
            "model.architecture=idf",
            f"model.base_hf_id={opensearch_folder}",
        ),
        tmp_path / "zero-shot",
    )
    assert not of_type(zero_shot, ComputeIdf)
    indexed = [
        t for t in zero_shot if hasattr(t, "documents") and hasattr(t, "encoder")
    ]
    assert indexed
    evaluations = [t for t in zero_shot if type(t).__name__.startswith("EvaluateWith")]
    (evaluation,) = evaluations
    query_encoder = evaluation.retriever.encoder
    assert isinstance(query_encoder, IdfQueryEncoder)
    assert isinstance(query_encoder.idf, ModelIdf)
    assert query_encoder.idf.hf_id == str(opensearch_folder)

    trained = dry_run(
        load(ROOT / "splade/debug.yaml", "model.architecture=idf"), tmp_path / "train"
    )
    (table,) = of_type(trained, ComputeIdf)
    assert "debug" in table.documents.id
