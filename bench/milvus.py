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
with :mod:`bench.retrieval_engines`)::

    pip install -e ".[milvus,bench]"
    nice -n 10 python -m bench.milvus --workdir /tmp/splade-bench
"""

import argparse
import shutil
import time
from pathlib import Path

import numpy as np  # noqa: E402

from bench import common  # noqa: E402


class Ids:
    """A document store that only knows the documents' numbers"""

    def document_int(self, number):
        return {"id": f"doc{number}"}


def timed(search, queries, k):
    """(results, mean CPU ms of the calling thread, mean wall ms, wall p95
    ms): Milvus Lite searches in a server thread of its own, whose CPU time
    the calling thread's does not count"""
    found, cpu, wall = common.per_query(search, queries, k, clock=time.thread_time)
    return (
        found,
        1000 * np.mean(cpu),
        1000 * np.mean(wall),
        1000 * np.percentile(wall, 95),
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.milvus", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/splade-bench"),
        help="encodings (real/) and the Milvus Lite database "
        "(default: /tmp/splade-bench)",
    )
    common.add_path(parser, "--data", common.DATA, "folder of the local collections")
    common.add_path(parser, "--model", common.MODEL, "SPLADE model (encodes SciFact)")
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    common.one_thread()
    real = args.workdir / "real"
    cached = [real / "scifact-docs.npz", real / "scifact-queries.test.tsv.npz"]
    if not all(path.exists() for path in cached):
        common.require(arguments, args.data, "data folder", "--data")
        common.require(arguments, args.model, "model", "--model")
    common.require_modules(arguments, "pymilvus", "milvus_lite", extras="milvus,bench")

    from splade.engines.exhaustive import from_csr
    from splade.engines.milvus import MilvusIndex, connect, load

    # SciFact's vectors, cached as bench.splade_mix caches them
    docs, queries = (
        common.encoded(real, args.data, args.model, "scifact", texts).tocsr()
        for texts in ("docs.tsv", "queries.test.tsv")
    )
    folder = args.workdir / "milvus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    index = from_csr(docs, folder / "exhaustive")
    topics = [common.query(queries, q) for q in range(queries.shape[0])]
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
    # (the index's documents: an experimaestro document store of their ids,
    # as the experiment's index has)
    from datamaestro_ir.data.beir import BeirDocumentStore

    from splade.repository import write_document_store

    with (folder / "documents.tsv").open("wt") as fp:
        fp.writelines(f"doc{number}\t\n" for number in range(docs.shape[0]))
    write_document_store(folder / "documents.tsv", folder / "store")
    store = BeirDocumentStore.C(
        id="scifact.ids", path=folder / "store", count=docs.shape[0]
    )
    milvus = MilvusIndex.C(
        uri=None, lite_path=folder / "milvus.db", collection="scifact", documents=store
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
            found, cpu, wall, p95 = timed(search, queries, k)
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
