"""OpenSearch and Elasticsearch: bulk files of the documents' sparse
vectors, the index mapping, and a search body per query

Files (in the export's ``opensearch/`` folder):

- ``mapping.opensearch.json``: the index settings and mapping for
  OpenSearch (the vector field is ``rank_features``, which OpenSearch's
  ``neural_sparse`` query searches);
- ``mapping.elasticsearch.json``: the same for Elasticsearch 8.11 or later
  (``sparse_vector``, searched by the ``sparse_vector`` query, 8.15 or
  later);
- ``bulk/part-NNNNN.ndjson``: the documents in the ``_bulk`` API's format
  (an action line ``{"index": {"_index": ..., "_id": ...}}``, then the
  document ``{"id": ..., <field>: {<term>: <weight>}}``, and ``"text"``
  when the export carries the text), at most ``documents_per_file``
  documents per file (a bulk request should stay under the servers' 100 MB
  default limit), for both engines;
- ``queries/<name>.opensearch.jsonl`` and
  ``queries/<name>.elasticsearch.jsonl``: one line per query, ``{"id":
  <query id>, "body": <search body>}``, the body a ``neural_sparse``
  (OpenSearch 2.14+, ``query_tokens``) or ``sparse_vector`` (Elasticsearch,
  ``query_vector``) query of the field, with ``size`` the number of
  retrieved documents.

Weights are written as floats (6 significant digits): both engines store
them in Lucene's ``FeatureField``, which keeps 9 significant bits (a
relative error of at most 0.4%: the scores differ from the exact ones by
that much, and close documents may swap). Both refuse zero or negative
weights (not written) and Elasticsearch refuses dots in feature names: a
term whose token has a dot is named ``[<term id>]``
(:func:`splade.export.source.term_names`), in documents and queries alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from splade.export.source import Collection, document_blocks, term_names

__all__ = ["DOCUMENTS_PER_FILE", "mappings", "write_opensearch"]

DOCUMENTS_PER_FILE = 10_000

#: What Elasticsearch refuses in a feature name
FORBIDDEN = "."


def _number(value: float) -> float:
    return float(f"{value:.6g}")


def _vector(names: List[str], terms, weights) -> Dict[str, float]:
    return {
        names[t]: _number(w)
        for t, w in zip(terms.tolist(), weights.tolist(), strict=True)
        if w > 0
    }


def mappings(field: str, text: bool) -> Dict[str, dict]:
    """The index body (settings and mapping) of each engine"""
    bodies = {}
    for engine, kind in (
        ("opensearch", "rank_features"),
        ("elasticsearch", "sparse_vector"),
    ):
        properties = {"id": {"type": "keyword"}, field: {"type": kind}}
        if text:
            properties["text"] = {"type": "text"}
        bodies[engine] = {"mappings": {"properties": properties}}
    return bodies


def search_bodies(field: str, vector: Dict[str, float], size: int) -> Dict[str, dict]:
    """The search body of one query for each engine"""
    return {
        "opensearch": {
            "size": size,
            "query": {"neural_sparse": {field: {"query_tokens": vector}}},
        },
        "elasticsearch": {
            "size": size,
            "query": {"sparse_vector": {"field": field, "query_vector": vector}},
        },
    }


def write_opensearch(
    collection: Collection,
    folder,
    index_name: str = "splade",
    field: str = "splade",
    size: int = 1000,
    names: Optional[List[str]] = None,
    documents_per_file: int = DOCUMENTS_PER_FILE,
) -> Dict[str, object]:
    """Writes the bulk files, the mappings and the query bodies (see the
    module's documentation); returns the numbers written

    :param size: number of documents each query body asks for
    """
    folder = Path(folder)
    names = names or term_names(
        collection.tokens, collection.index.num_terms, FORBIDDEN
    )
    folder.mkdir(parents=True, exist_ok=True)
    text = collection.texts is not None
    for engine, body in mappings(field, text).items():
        (folder / f"mapping.{engine}.json").write_text(json.dumps(body, indent=2))

    bulk = folder / "bulk"
    bulk.mkdir(exist_ok=True)
    written = postings = 0
    out = None
    for first, block in document_blocks(collection.index):
        texts = collection.texts(first, first + block.shape[0]) if text else None
        for row in range(block.shape[0]):
            docid = first + row
            if docid % documents_per_file == 0:
                if out is not None:
                    out.close()
                part = docid // documents_per_file
                out = (bulk / f"part-{part:05d}.ndjson").open("wt", encoding="utf-8")
            span = slice(block.indptr[row], block.indptr[row + 1])
            vector = _vector(names, block.indices[span], block.data[span])
            postings += len(vector)
            external = collection.docid(docid)
            source = {"id": external, field: vector}
            if texts is not None:
                source["text"] = texts[row]
            action = {"index": {"_index": index_name, "_id": external}}
            out.write(json.dumps(action, ensure_ascii=False) + "\n")
            out.write(json.dumps(source, ensure_ascii=False) + "\n")
            written += 1
    if out is not None:
        out.close()

    queries = folder / "queries"
    queries.mkdir(exist_ok=True)
    counts = {}
    for name, encoded in collection.queries.items():
        files = {
            engine: (queries / f"{name}.{engine}.jsonl").open("wt", encoding="utf-8")
            for engine in ("opensearch", "elasticsearch")
        }
        try:
            for query in encoded:
                vector = _vector(names, query.terms, query.weights)
                for engine, body in search_bodies(field, vector, size).items():
                    line = {"id": query.id, "body": body}
                    files[engine].write(json.dumps(line, ensure_ascii=False) + "\n")
        finally:
            for fp in files.values():
                fp.close()
        counts[name] = len(encoded)
    return {"documents": written, "postings": postings, "queries": counts}
