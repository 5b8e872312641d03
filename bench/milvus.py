"""Milvus Lite beside the exhaustive engine on SciFact (5,183 documents, its
300 test queries) encoded by ``../shared/models/splade-bert-tiny``

Measures the load of the SPLADE index into a Milvus Lite collection (the
package's :func:`splade.engines.milvus.load`: batches of 1,000 documents,
then the collection's ``SPARSE_INVERTED_INDEX``), and the latency of one
query at a time (k = 10 and 1,000) through the package's searchers: the
exhaustive engine (CPU time of the thread, and wall time) and Milvus Lite
(wall time: the search runs in Milvus Lite's server thread, behind gRPC),
plus Milvus Lite with 64 queries per request; and whether Milvus's top-10
is the exhaustive engine's (Milvus Lite searches exactly).

Milvus Lite 3.x is a pure-Python re-implementation of Milvus for
development: these figures say nothing of a Milvus server's speed, which is
not measured here. Usage (the vectors are cached in ``--workdir``, shared
with ``bench/retrieval_engines.py``)::

    pip install -e ".[milvus,bench]"
    nice -n 10 python bench/milvus.py --workdir /tmp/splade-bench
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


class Ids:
    """A document store that only knows the documents' numbers"""

    def document_int(self, number):
        return {"id": f"doc{number}"}


def timed(search, queries, k):
    cpu, wall, found = [], [], []
    for terms, weights in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        found.append(search(terms, weights, k))
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return (
        found,
        1000 * np.mean(cpu),
        1000 * np.mean(wall),
        1000 * np.percentile(wall, 95),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/splade-bench"))
    args = parser.parse_args()
    import scipy.sparse as sp
    from splade_mix import SHARED, encode, read_texts

    from splade.engines.exhaustive import from_csr
    from splade.engines.milvus import MilvusIndex, connect, load

    # SciFact's vectors, cached as bench/splade_mix.py caches them
    real = args.workdir / "real"
    real.mkdir(parents=True, exist_ok=True)
    vectors = []
    for cache, texts in (
        ("scifact-docs.npz", "docs.tsv"),
        ("scifact-queries.test.tsv.npz", "queries.test.tsv"),
    ):
        if not (real / cache).exists():
            encoded = encode(read_texts(SHARED / "data" / "scifact" / texts))
            sp.save_npz(real / cache, encoded)
        vectors.append(sp.load_npz(real / cache).tocsr())
    docs, queries = vectors
    folder = args.workdir / "milvus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    index = from_csr(docs, folder / "exhaustive")
    topics = [
        (row.indices.astype(np.int64), row.data.astype(np.float32)) for row in queries
    ]
    print(
        f"SciFact: {docs.shape[0]} documents, {docs.nnz / docs.shape[0]:.0f}"
        f" non-zeros per document; {len(topics)} queries,"
        f" {queries.nnz / len(topics):.1f} non-zeros per query"
    )

    from experimaestro.taskglobals import Env

    Env.instance().taskpath = folder  # (experimaestro's progress bars)
    start, start_cpu = time.perf_counter(), time.process_time()
    client = connect(str(folder / "milvus.db"))
    held = load(client, "scifact", index, Ids(), 1000)
    client.close()
    load_wall, load_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(f"Milvus Lite load: {held} documents, {load_wall:.1f} s wall, {load_cpu:.1f}")

    searcher = index.searcher()
    milvus = MilvusIndex.C(
        uri=None, lite_path=folder / "milvus.db", collection="scifact"
    ).instance()
    milvus.initialize()

    def exhaustive(terms, weights, k):
        return searcher.search(terms, weights, k)[0]

    def lite(terms, weights, k):
        query = dict(zip(terms.tolist(), weights.tolist(), strict=True))
        return milvus.search(query, k)[0]

    rows = []
    for k in (10, 1000):
        for name, search in (("exhaustive", exhaustive), ("Milvus Lite", lite)):
            search(*topics[0], k)  # warm-up
            found, cpu, wall, p95 = timed(search, topics, k)
            rows.append((name, k, cpu, wall, p95, found))
    exact = {k: found for name, k, *_, found in rows if name == "exhaustive"}
    same = {
        k: np.mean(
            [
                set(a[:10].tolist()) == set(b[:10].tolist())
                for a, b in zip(found, exact[k], strict=True)
            ]
        )
        for name, k, *_, found in rows
        if name == "Milvus Lite"
    }
    # 64 queries per request
    dicts = [dict(zip(t.tolist(), w.tolist(), strict=True)) for t, w in topics]
    start = time.perf_counter()
    for first in range(0, len(dicts), 64):
        milvus.search_batch(dicts[first : first + 64], 10)
    batched = 1000 * (time.perf_counter() - start) / len(dicts)

    print()
    print(
        "| engine | k | CPU ms / query (thread) | wall ms / query | wall p95 ms |"
        " top-10 = exhaustive's |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, k, cpu, wall, p95, _ in rows:
        equal = f"{same[k]:.3f}" if name == "Milvus Lite" else "-"
        cpu_text = f"{cpu:.2f}" if name == "exhaustive" else "- (server thread)"
        print(f"| {name} | {k} | {cpu_text} | {wall:.2f} | {p95:.2f} | {equal} |")
    print(f"| Milvus Lite, 64 queries per request | 10 | - | {batched:.2f} | - | - |")
    milvus.client.close()


if __name__ == "__main__":
    main()
