"""The export formats, read back by their own parsers: CIFF by Google's
protobuf runtime (messages built from CIFF's .proto definition), the JSON
formats by ``json``; on an index whose term ids reach 151,935 (Qwen's
vocabulary of 151,936 tokens), with the tokens that the formats must name
with care (dots, white space, empty, missing)

The round trips through the real engines (Anserini, PISA) are in
``tests/pipeline/test_export_engines.py``.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from splade.engines.exhaustive import from_csr
from splade.export import FORMATS, Collection, QueryVector, export, quantize
from splade.export.ciff import encode_varints
from splade.export.source import document_blocks, term_names

VOCABULARY = 151_936
DOCS = 60


def vocabulary():
    """Tokens of a 151,936-term vocabulary (byte-level BPE-like), with a
    dot, a dotted token, white space, an empty token, and ids beyond the
    tokenizer (None), as an LLM's padded vocabulary has"""
    tokens = [f"Ġt{i}" for i in range(VOCABULARY - 200)] + [None] * 200
    tokens[1] = "."
    tokens[2] = "a.b"
    tokens[3] = "two words"
    tokens[4] = ""
    tokens[5] = "é##"
    return tokens


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows, cols, values = [], [], []
    for doc in range(DOCS):
        terms = rng.choice(VOCABULARY, 40, replace=False)
        terms[:3] = [1 + doc % 5, VOCABULARY - 1, doc % 3 + 2]
        terms = np.unique(terms)
        weights = rng.uniform(0.01, 3.0, terms.size)
        weights[terms == VOCABULARY - 1] = 0.125  # 12.5: rounds to 12
        weights[terms == 5] = 0.004  # rounds to 0: left out of integer formats
        rows += [doc] * terms.size
        cols += terms.tolist()
        values += weights.tolist()
    matrix = sp.csr_matrix(
        (np.array(values, np.float32), (rows, cols)), shape=(DOCS, VOCABULARY)
    )
    index = from_csr(matrix, tmp_path_factory.mktemp("index"))
    queries = {
        "dev": [
            QueryVector(
                f"q{i}",
                np.array([1, 2, 5, 7 + i, VOCABULARY - 1]),
                np.array([0.5, 1.25, 0.003, 2.0, 0.3], np.float32),
            )
            for i in range(3)
        ]
    }
    docids = [f"doc-{i}" for i in range(DOCS)]
    texts = [f"text of document {i}" for i in range(DOCS)]
    return (
        Collection(
            index,
            docids=docids,
            tokens=vocabulary(),
            queries=queries,
            texts=lambda first, last: texts[first:last],
        ),
        matrix,
    )


@pytest.fixture(scope="module")
def exported(collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    manifest = export(collection[0], folder, list(FORMATS), scale=100)
    return folder, manifest


def expected_names(forbidden=""):
    return term_names(vocabulary(), VOCABULARY, forbidden)


def test_term_names():
    names = expected_names()
    assert names[1] == "." and names[2] == "a.b"
    assert names[3] == "[3]" and names[4] == "[4]"  # white space, empty
    assert names[VOCABULARY - 1] == f"[{VOCABULARY - 1}]"  # no token
    assert expected_names(".")[1:3] == ["[1]", "[2]"]  # Elasticsearch
    assert term_names(None, 3) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="same name"):
        term_names(["[1]", ""], 2)  # the empty token is named [1] too


def test_quantization_rounds_halves_to_even():
    assert quantize([0.125, 0.135, 0.004, 0.005, 2.999], 100).tolist() == [
        12,
        14,
        0,
        0,
        300,
    ]


def test_varints_as_protobuf_encodes_them():
    from google.protobuf.internal.encoder import _VarintBytes

    values = [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, 2**32, 2**63 - 1]
    assert encode_varints(np.array(values, np.uint64)) == b"".join(
        _VarintBytes(v) for v in values
    )


def test_document_blocks_on_disk_equal_in_memory(collection, tmp_path):
    _, matrix = collection
    index = collection[0].index
    for budget in (1 << 30, 24 * 500):  # in memory; about 5 blocks on disk
        blocks = list(document_blocks(index, 7, memory_budget=budget, scratch=tmp_path))
        assert [first for first, _ in blocks] == list(range(0, DOCS, 7))
        rebuilt = sp.vstack([block for _, block in blocks]).tocsr()
        assert (rebuilt != matrix).nnz == 0
    assert list(tmp_path.iterdir()) == []  # the temporary files are removed


# --- CIFF, read by protobuf's runtime


def ciff_messages():
    """The message classes of CIFF's .proto (osirrc/ciff), made by protobuf
    from a descriptor (no protoc needed)"""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    spec = {
        "Header": [
            ("version", 1, F.TYPE_INT32),
            ("num_postings_lists", 2, F.TYPE_INT32),
            ("num_docs", 3, F.TYPE_INT32),
            ("total_postings_lists", 4, F.TYPE_INT32),
            ("total_docs", 5, F.TYPE_INT32),
            ("total_terms_in_collection", 6, F.TYPE_INT64),
            ("average_doclength", 7, F.TYPE_DOUBLE),
            ("description", 8, F.TYPE_STRING),
        ],
        "Posting": [("docid", 1, F.TYPE_INT32), ("tf", 2, F.TYPE_INT32)],
        "PostingsList": [
            ("term", 1, F.TYPE_STRING),
            ("df", 2, F.TYPE_INT64),
            ("cf", 3, F.TYPE_INT64),
            ("postings", 4, F.TYPE_MESSAGE),
        ],
        "DocRecord": [
            ("docid", 1, F.TYPE_INT32),
            ("collection_docid", 2, F.TYPE_STRING),
            ("doclength", 3, F.TYPE_INT32),
        ],
    }
    proto = descriptor_pb2.FileDescriptorProto(
        name="ciff.proto", package="io.osirrc.ciff", syntax="proto3"
    )
    for name, fields in spec.items():
        message = proto.message_type.add(name=name)
        for field, number, kind in fields:
            entry = message.field.add(name=field, number=number, type=kind)
            entry.label = F.LABEL_OPTIONAL
            if kind == F.TYPE_MESSAGE:
                entry.label = F.LABEL_REPEATED
                entry.type_name = ".io.osirrc.ciff.Posting"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"io.osirrc.ciff.{name}")
        )
        for name in spec
    }


def read_delimited(data: bytes, position: int, cls):
    from google.protobuf.internal.decoder import _DecodeVarint32

    size, position = _DecodeVarint32(data, position)
    message = cls()
    message.ParseFromString(data[position : position + size])
    return message, position + size


def read_ciff(path: Path):
    classes = ciff_messages()
    data = path.read_bytes()
    header, position = read_delimited(data, 0, classes["Header"])
    lists, records = [], []
    for _ in range(header.num_postings_lists):
        message, position = read_delimited(data, position, classes["PostingsList"])
        lists.append(message)
    for _ in range(header.num_docs):
        message, position = read_delimited(data, position, classes["DocRecord"])
        records.append(message)
    assert position == len(data)
    return header, lists, records


def test_ciff_read_by_protobuf(collection, exported):
    coll, matrix = collection
    folder, manifest = exported
    header, lists, records = read_ciff(folder / "ciff" / "index.ciff")
    impacts = quantize(matrix.data, 100)
    dropped = int((impacts == 0).sum())
    integer = sp.csr_matrix(
        (impacts.copy(), matrix.indices.copy(), matrix.indptr.copy()), matrix.shape
    )
    integer.eliminate_zeros()
    names = expected_names()
    columns = integer.tocsc()
    present = np.flatnonzero(np.diff(columns.indptr))

    assert header.version == 1
    assert header.num_docs == header.total_docs == DOCS
    assert header.num_postings_lists == len(present)
    assert header.total_terms_in_collection == integer.sum()
    assert header.average_doclength == pytest.approx(integer.sum() / DOCS)
    assert "round(100 w)" in header.description

    # Terms in byte order; docids as gaps; tf the integer weights
    terms = [message.term for message in lists]
    assert terms == sorted(terms, key=lambda t: t.encode("utf-8"))
    assert sorted(terms) == sorted(names[t] for t in present)
    by_name = {names[t]: t for t in present}
    for message in lists:
        term = by_name[message.term]
        column = columns[:, term]
        docids = np.cumsum([p.docid for p in message.postings])
        assert docids.tolist() == column.indices.tolist()
        assert [p.tf for p in message.postings] == column.data.tolist()
        assert message.df == column.nnz and message.cf == column.data.sum()
    assert [r.docid for r in records] == list(range(DOCS))
    assert [r.collection_docid for r in records] == coll.docids
    assert [r.doclength for r in records] == integer.sum(axis=1).A1.tolist()
    assert manifest["formats"]["ciff"]["dropped_postings"] == dropped > 0


# --- Anserini


def test_anserini_documents_and_queries(collection, exported):
    coll, matrix = collection
    folder, manifest = exported
    names = expected_names()
    lines = (folder / "anserini/documents/part-00000.jsonl").read_text().splitlines()
    assert len(lines) == DOCS
    for doc, line in enumerate(lines):
        record = json.loads(line)
        row = matrix[doc]
        expected = {
            names[t]: int(i)
            for t, i in zip(row.indices, quantize(row.data, 100), strict=True)
            if i
        }
        assert record == {
            "id": f"doc-{doc}",
            "contents": f"text of document {doc}",
            "vector": expected,
        }
        assert all(isinstance(v, int) for v in record["vector"].values())
    assert f"[{VOCABULARY - 1}]" in json.loads(lines[0])["vector"]

    for line, query in zip(
        (folder / "anserini/queries/dev.tsv").read_text().splitlines(),
        coll.queries["dev"],
        strict=True,
    ):
        qid, tokens = line.split("\t")
        counts = {}
        for token in tokens.split(" "):
            counts[token] = counts.get(token, 0) + 1
        expected = {
            names[t]: int(i)
            for t, i in zip(query.terms, quantize(query.weights, 100), strict=True)
            if i
        }
        assert qid == query.id and counts == expected
        assert json.loads(
            (folder / "anserini/queries/dev.jsonl")
            .read_text()
            .splitlines()[coll.queries["dev"].index(query)]
        ) == {"id": query.id, "vector": expected}
    assert manifest["formats"]["anserini"]["queries"] == {"dev": 3}


# --- OpenSearch / Elasticsearch


def test_opensearch_bulk_mapping_and_queries(collection, exported):
    coll, matrix = collection
    folder = exported[0] / "opensearch"
    names = expected_names(".")
    assert "." not in "".join(names)
    opensearch = json.loads((folder / "mapping.opensearch.json").read_text())
    elastic = json.loads((folder / "mapping.elasticsearch.json").read_text())
    assert opensearch["mappings"]["properties"]["splade"] == {"type": "rank_features"}
    assert elastic["mappings"]["properties"]["splade"] == {"type": "sparse_vector"}

    lines = (folder / "bulk/part-00000.ndjson").read_text().splitlines()
    assert len(lines) == 2 * DOCS
    for doc in range(DOCS):
        action, source = json.loads(lines[2 * doc]), json.loads(lines[2 * doc + 1])
        assert action == {"index": {"_index": "splade", "_id": f"doc-{doc}"}}
        row = matrix[doc]
        vector = source["splade"]
        assert set(vector) == {names[t] for t in row.indices}
        for term, weight in zip(row.indices, row.data, strict=True):
            assert vector[names[term]] == pytest.approx(weight, rel=1e-5)
        assert source["id"] == f"doc-{doc}"
        assert source["text"] == f"text of document {doc}"

    for engine in ("opensearch", "elasticsearch"):
        lines = (folder / f"queries/dev.{engine}.jsonl").read_text().splitlines()
        for line, query in zip(lines, coll.queries["dev"], strict=True):
            record = json.loads(line)
            assert record["id"] == query.id
            body = record["body"]
            assert body["size"] == 1000
            if engine == "opensearch":
                vector = body["query"]["neural_sparse"]["splade"]["query_tokens"]
            else:
                assert body["query"]["sparse_vector"]["field"] == "splade"
                vector = body["query"]["sparse_vector"]["query_vector"]
            assert vector == {
                names[t]: pytest.approx(float(w), rel=1e-5)
                for t, w in zip(query.terms, query.weights, strict=True)
            }


def test_unknown_format(collection, tmp_path):
    with pytest.raises(ValueError, match="unknown export formats"):
        export(collection[0], tmp_path, ["lucene"])


# --- The command


def test_the_command_on_an_index_folder(collection, tmp_path):
    from splade.export.__main__ import main

    coll, matrix = collection
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"D{i}\n" for i in range(DOCS)))
    out = tmp_path / "out"
    folder = coll.index.folder
    main([str(folder), str(out), "--formats", "anserini", "--terms", "ids"])
    first = json.loads((out / "anserini/documents/part-00000.jsonl").open().readline())
    assert first["id"] == "0"  # no ids given: the internal numbers
    main([str(folder), str(out), "--formats", "ciff", "--docids", str(ids)])
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["documents"] == DOCS and manifest["term_names"] == "ids"
    _, lists, records = read_ciff(out / "ciff/index.ciff")
    assert records[5].collection_docid == "D5"
    kept = matrix.indices[quantize(matrix.data, 100) > 0]  # (term 5 rounds to 0)
    assert {m.term for m in lists} == {str(t) for t in np.unique(kept)}
    with pytest.raises(SystemExit):
        main([str(folder), str(out), "--formats", "lucene"])


def test_the_command_on_an_impact_index_folder(tmp_path):
    """An index of xpmir's impact-index builder is converted, then written"""
    import impact_index

    from splade.export.__main__ import main

    rng = np.random.default_rng(1)
    options = impact_index.BuilderOptions()
    builder = impact_index.IndexBuilder(str(tmp_path / "impact"), options)
    expected = {}
    for doc in range(30):
        terms = np.unique(rng.integers(0, 500, 12)).astype(np.uint64)
        weights = rng.uniform(0.1, 2.0, terms.size).astype(np.float32)
        builder.add(doc, terms, weights)
        expected[str(doc)] = {
            str(t): int(i) for t, i in zip(terms, quantize(weights, 100), strict=True)
        }
    builder.build(False)
    main([str(tmp_path / "impact"), str(tmp_path / "out"), "--formats", "anserini"])
    lines = (tmp_path / "out/anserini/documents/part-00000.jsonl").read_text()
    found = {r["id"]: r["vector"] for r in map(json.loads, lines.splitlines())}
    assert found == expected
