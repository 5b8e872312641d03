"""The Milvus engine on Milvus Lite (``pip install -e ".[milvus]"``): a
SPLADE index loaded into a collection gives the exhaustive engine's top-k
(same documents, scores to 1e-4), also when the load was killed and resumed

The index: 3,000 documents over a 151,936-term vocabulary (term ids up to
the last one; some documents without any term, which Milvus refuses and no
query can score), with its document store. The killed load runs in a
subprocess, killed (SIGKILL) after its third batch; the load is then run
again: it resumes from the documents the collection holds (upserting), and
ends with each document once.

The experiment-level test (the debug recipe with ``-c
retrieval.engine.name=milvus``) is in
``tests/pipeline/test_published_milvus_export.py``.
"""

import logging
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import ROOT, document_store

from splade.engines.exhaustive import from_csr

pytestmark = pytest.mark.slow
pytest.importorskip("milvus_lite", reason="the milvus extra is not installed")

VOCABULARY = 151_936
DOCS, QUERIES, K = 3000, 20, 10
COLLECTION = "splade_test"


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("milvus")
    rng = np.random.default_rng(0)
    ranks = np.minimum(rng.zipf(1.3, (DOCS, 40)) - 1, VOCABULARY - 1)
    permutation = rng.permutation(VOCABULARY)
    rows, cols = [], []
    for row in range(DOCS):
        if row % 500 == 7:
            continue  # a document without any term
        terms = np.unique(np.append(permutation[ranks[row]], VOCABULARY - 1))
        rows += [row] * terms.size
        cols += terms.tolist()
    values = rng.uniform(0.01, 3.0, len(rows)).astype(np.float32)
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(DOCS, VOCABULARY))
    index = from_csr(matrix, folder / "index")
    store = document_store(folder, [(f"doc{i}", f"text {i}") for i in range(DOCS)])
    queries = []
    for q in range(QUERIES):
        terms = np.unique(np.append(permutation[ranks[q * 7, :8]], VOCABULARY - 1))
        queries.append({int(t): float(rng.uniform(0.1, 2.0)) for t in terms})
    searcher = index.searcher()
    expected = []
    for query in queries:
        ids, scores = searcher.search(list(query), list(query.values()), K)
        expected.append((ids, scores))
    return folder, index, store, queries, expected


def search(path, store, queries):
    from splade.engines.milvus import MilvusIndex

    milvus = MilvusIndex.C(
        uri=None, lite_path=path, collection=COLLECTION, documents=store
    ).instance()
    milvus.initialize()
    try:
        return milvus.search_batch(queries, K)
    finally:
        milvus.client.close()


def assert_same(found, expected):
    for (ids, scores), (exact_ids, exact_scores) in zip(found, expected, strict=True):
        assert sorted(ids.tolist()) == sorted(exact_ids.tolist())
        np.testing.assert_allclose(scores, exact_scores, atol=1e-4)


def load(path, index, store, batch_size):
    from splade.engines.milvus import connect, load

    client = connect(str(path))
    try:
        return load(client, COLLECTION, index, store.instance(), batch_size)
    finally:
        client.close()


def test_loaded_collection_gives_the_exhaustive_top_k(collection, tmp_path):
    _, index, store, queries, expected = collection
    held = load(tmp_path / "milvus.db", index, store, 1000)
    assert held == DOCS - DOCS // 500  # documents without any term left out
    assert_same(search(tmp_path / "milvus.db", store, queries), expected)
    # A second load finds the collection full, and inserts nothing
    assert load(tmp_path / "milvus.db", index, store, 1000) == held


KILLED = (
    """
import json, sys
from pathlib import Path
from splade.engines.exhaustive import SparseIndex
from splade.engines import milvus
from datamaestro_ir.data.beir import BeirDocumentStore

path, index_path, store_path, count = sys.argv[1:]
from experimaestro.taskglobals import Env
Env.instance().taskpath = Path(path).parent  # (experimaestro's progress bars)
client = milvus.connect(path)
insert = client.insert

def counted_insert(*args, **kwargs):
    result = insert(*args, **kwargs)
    print("inserted", flush=True)
    return result

client.insert = counted_insert
store = BeirDocumentStore.C(id="test.store", path=store_path, count=int(count))
milvus.load(client, "%s", SparseIndex.load(index_path), store.instance(), 200)
"""
    % COLLECTION
)


def test_killed_load_resumes(collection, tmp_path, caplog):
    folder, index, store, queries, expected = collection
    path = tmp_path / "milvus.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED),
            str(path),
            str(folder / "index"),
            str(folder / "store"),
            str(DOCS),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    batches = 0
    for line in process.stdout:
        batches += line.strip() == "inserted"
        if batches == 3:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert batches == 3, "the load ended before it could be killed"

    with caplog.at_level(logging.INFO, logger="splade.engines.milvus"):
        held = load(path, index, store, 200)
    resumed = [r.getMessage() for r in caplog.records if "Resuming" in r.getMessage()]
    assert resumed, "the second load did not resume"
    start = int(resumed[0].rsplit(" ", 1)[1])
    assert 400 <= start < DOCS  # at least two of the three batches were kept
    assert held == DOCS - DOCS // 500  # each document once
    assert_same(search(path, store, queries), expected)
