"""The exhaustive engine (:mod:`splade.engines.exhaustive`) against the
references, on a synthetic SPLADE-shaped collection

Collection (:func:`bench.common.zipf_vectors`): ``--docs`` documents of (at
most) 120 distinct terms of 400 draws from a Zipf law of exponent 1.2 over
30,522 ranks (BERT's vocabulary; term id = a fixed random permutation of
the rank), ``--queries`` queries of 20 distinct terms of 60 draws from a
Zipf law of exponent 0.9 over the same ranks; positive log-normal weights,
larger for rarer terms (as SPLADE's).

Printed, measured in the same run on one thread: CPU milliseconds per query
(``time.process_time`` around each query: mean and p95) at k=10 and k=1000
for

- scipy brute force: CSC column slices ``D[:, terms] @ weights`` (all the
  scores), then ``np.argpartition`` and a sort of the top-k;
- the exhaustive engine (``Searcher.search``), index in memory;
- PISA block-max MaxScore (``pyterrier-pisa``, if installed), through the
  PISA engine (:func:`splade.engines.pisa.index.write_index`,
  :class:`~splade.engines.pisa.index.PisaSearcher`): impacts ``int(100
  w)`` (postings whose impact is 0 dropped), query weights ``int(100 q)``;
- impact-index MaxScore (exact; ``Index.search_maxscore``), index in memory;

with the ratio to scipy, the top-10 agreement with scipy's exact top-10,
each build's wall time, peak RSS (each build in its own process) and index
size; then, with ``--threads N`` > 1, the throughput of
``Searcher.search_batch`` on N threads; with ``--design``, the
measurements behind the engine's choices, through the switches of its
``Searcher`` (top-k by key buffer or heap, branch-free appends, touched list
or full scan); with ``--convert``, ``from_impact_index`` timed by method on
the impact-index index. Files go to ``--workdir`` (default
``/tmp/bench-exhaustive-DOCS``); an index already built there is reused
(remove its ``build.json`` to build it again).

    python -m bench.exhaustive --docs 100000 --threads 2 --design --convert
    python -m bench.exhaustive --docs 1000000 --threads 2 --design --convert

(about 1.5 and 12 minutes on 2 idle cores).
"""

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from bench import common

DOC_TERMS, DOC_DRAWS, DOC_EXPONENT = 120, 400, 1.2
QUERY_TERMS, QUERY_DRAWS, QUERY_EXPONENT = 20, 60, 0.9
CHUNK = 20_000


def generate(folder: Path, docs: int, queries: int, seed: int = 0):
    """The collection, written chunk by chunk (bounded memory)"""
    if common.is_collection(folder):
        return
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(common.VOCABULARY)
    documents = dict(draws=DOC_DRAWS, exponent=DOC_EXPONENT, max_terms=DOC_TERMS)

    def chunks():
        for start in range(0, docs, CHUNK):
            yield common.zipf_vectors(
                rng,
                min(CHUNK, docs - start),
                permutation=permutation,
                mean=-1.3,
                sigma=0.6,
                **documents,
            )

    # (the documents are drawn before the queries)
    common.write_collection(folder, chunks(), None)
    queries_matrix = common.zipf_vectors(
        rng,
        queries,
        draws=QUERY_DRAWS,
        exponent=QUERY_EXPONENT,
        max_terms=QUERY_TERMS,
        permutation=permutation,
        mean=-0.8,
        sigma=0.5,
    )
    common.write_queries(folder, queries_matrix)


# --- Search


def per_query(search, queries, k):
    """(results, CPU ms per query) of ``search(terms, weights, k)``"""
    results, cpu, _ = common.per_query(search, queries, k)
    return results, 1000 * np.array(cpu)


def scipy_search(matrix):
    def search(terms, weights, k):
        scores = matrix[:, terms] @ weights
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return top[scores[top] > 0]

    return search


def measure(name, search, queries, rows, exact=None):
    print(f"  searching with {name}", flush=True)
    search(*common.query(queries, 0), 10)
    results, k10 = per_query(search, queries, 10)
    _, k1000 = per_query(search, queries, 1000)
    rows.append(
        {
            "engine": name,
            "k10": (float(k10.mean()), float(np.percentile(k10, 95))),
            "k1000": (float(k1000.mean()), float(np.percentile(k1000, 95))),
            "top10": 1.0 if exact is None else common.recall(results, exact),
        }
    )
    return results


# --- Design measurements


def design(index, queries):
    """The engine's choices, through the switches of its ``Searcher``: top-k
    selection (key buffer or heap), branch-free appends to the key buffer,
    touched list or full scan (``dense_ratio``)"""
    from splade.engines.exhaustive import Searcher

    print("\nDesign measurements (CPU ms/query, mean over the queries)")
    postings = np.array(
        [
            index.searcher().postings(*common.query(queries, q))
            for q in range(queries.shape[0])
        ]
    )
    print(
        f"postings per query: mean {postings.mean():,.0f}, median"
        f" {np.median(postings):,.0f} ({postings.mean() / index.num_docs:.2f}"
        " x the number of documents)"
    )
    variants = {
        # name: Searcher's switches
        "list, key buffer (engine)": dict(dense_ratio=np.inf),
        "list, key buffer, branch-free": dict(dense_ratio=np.inf, branch_free=2**40),
        "list, heap": dict(dense_ratio=np.inf, selection="heap"),
        "scan, key buffer (engine)": dict(dense_ratio=0.0),
        "scan, key buffer, branch-free": dict(dense_ratio=0.0, branch_free=2**40),
        "scan, heap": dict(dense_ratio=0.0, selection="heap"),
    }
    for ratio in (0.25, 0.5, 1.0, 2.0):
        variants[f"dense_ratio={ratio}"] = dict(dense_ratio=ratio)
    print(f"{'Searcher':<32} {'k=10':>8} {'k=1000':>8}")
    for name, switches in variants.items():
        searcher = Searcher(index, **switches)
        search = lambda t, w, k, s=searcher: s.search(t, w, k)[0]  # noqa: E731
        search(*common.query(queries, 0), 10)  # (compiles)
        _, k10 = per_query(search, queries, 10)
        _, k1000 = per_query(search, queries, 1000)
        print(f"{name:<32} {k10.mean():8.3f} {k1000.mean():8.3f}", flush=True)


def convert(workdir: Path, reference):
    """from_impact_index: seconds per million postings, by method"""
    from splade.engines.exhaustive import from_impact_index

    print("\nfrom_impact_index (impact-index index -> this format)")
    from_impact_index(workdir / "raw", workdir / "converted", method="numpy")
    for method in ("numpy", "iterator"):
        shutil.rmtree(workdir / "converted", ignore_errors=True)
        start, cpu = time.perf_counter(), time.process_time()
        converted = from_impact_index(
            workdir / "raw", workdir / "converted", method=method
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        same = all(
            np.array_equal(getattr(converted, name), getattr(reference, name))
            for name in ("offsets", "docids", "weights")
        )
        millions = converted.num_postings / 1e6
        print(
            f"  {method:<8} {wall:6.2f} s wall, {cpu:6.2f} s CPU for"
            f" {millions:.1f} M postings: {cpu / millions:.3f} CPU s per million"
            f" (same arrays as the builder's: {same})"
        )
    shutil.rmtree(workdir / "converted", ignore_errors=True)


# --- Main


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.exhaustive", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--budget", type=int, default=256, help="MiB, the exhaustive index builder's"
    )
    parser.add_argument(
        "--workdir", type=Path, help="default: /tmp/bench-exhaustive-DOCS"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="pisa, impact")
    parser.add_argument("--design", action="store_true")
    parser.add_argument(
        "--convert",
        action="store_true",
        help="times from_impact_index (both methods) on the impact-index index",
    )
    return parser


def main(argv=None):
    # (numba keeps its threads: --threads)
    common.one_thread(numba=False)
    args = parser().parse_args(argv)
    workdir = args.workdir or Path(f"/tmp/bench-exhaustive-{args.docs}")

    began = time.perf_counter()
    print(f"collection: {args.docs:,} documents, {args.queries:,} queries", flush=True)
    generate(workdir, args.docs, args.queries)
    print(f"  generated in {time.perf_counter() - began:.0f} s", flush=True)
    builds = {
        "exhaustive": ("exhaustive", {"memory_budget_mib": args.budget}),
    }
    if "pisa" not in args.skip:
        try:
            import pyterrier_pisa  # noqa: F401

            builds["pisa"] = ("pisa", {})
        except ImportError:
            print("pyterrier-pisa is not installed: no PISA reference")
    if "impact" not in args.skip:
        builds["raw"] = ("raw", {})
    stats = {}
    for name, (kind, parameters) in builds.items():
        print(f"  building {name}", flush=True)
        stats[name] = common.build(workdir, name, kind, parameters)

    from splade.engines.exhaustive import SparseIndex

    queries = common.load_queries(workdir)
    rows = []
    matrix = common.load_documents(workdir).tocsc()
    nnz = matrix.nnz
    scipy_size = (
        matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    ) / 2**20
    exact = measure("scipy CSC brute force", scipy_search(matrix), queries, rows)
    exact = [top[:10] for top in exact]
    del matrix
    index = SparseIndex.load(workdir / "exhaustive")
    searcher = index.searcher()
    measure(
        "exhaustive (this engine)",
        lambda t, w, k: searcher.search(t, w, k)[0],
        queries,
        rows,
        exact,
    )
    if stats.get("pisa"):
        search = common.open_search("pisa", workdir / "pisa")
        measure("PISA block-max MaxScore", search, queries, rows, exact)
    if stats.get("raw"):
        search = common.open_search("maxscore", workdir / "raw")
        measure("impact-index MaxScore", search, queries, rows, exact)

    print()
    print(
        f"{args.docs:,} documents ({nnz:,} postings, {nnz / args.docs:.1f} per"
        f" document), {args.queries:,} queries"
        f" ({queries.nnz / args.queries:.1f} terms per query);"
        " CPU ms/query, one thread"
    )
    header = (
        f"{'engine':<28} {'k=10 mean':>9} {'p95':>7} {'x scipy':>7}"
        f" {'k=1000 mean':>11} {'p95':>7} {'x scipy':>7} {'top-10':>6}"
    )
    print(header)
    print("-" * len(header))
    base = rows[0]
    for row in rows:
        print(
            f"{row['engine']:<28} {row['k10'][0]:>9.2f} {row['k10'][1]:>7.2f}"
            f" {row['k10'][0] / base['k10'][0]:>7.2f}"
            f" {row['k1000'][0]:>11.2f} {row['k1000'][1]:>7.2f}"
            f" {row['k1000'][0] / base['k1000'][0]:>7.2f} {row['top10']:>6.3f}"
        )
    by_name = {row["engine"]: row for row in rows}
    pisa = by_name.get("PISA block-max MaxScore")
    if pisa:
        ours = by_name["exhaustive (this engine)"]
        print(
            f"exhaustive / PISA: k=10 {ours['k10'][0] / pisa['k10'][0]:.2f},"
            f" k=1000 {ours['k1000'][0] / pisa['k1000'][0]:.2f}"
        )
    print()
    print(f"{'build':<12} {'CPU s':>8} {'peak RSS MiB':>12} {'size MiB':>9}")
    print(f"{'scipy (CSC)':<12} {'':>8} {'':>12} {scipy_size:>9.0f}")
    for name, stat in stats.items():
        if stat:
            extra = ""
            if name == "exhaustive":
                runs = (workdir / name / "runs").read_text()
                extra = f"  ({runs} runs, budget {args.budget} MiB)"
            print(
                f"{name:<12} {stat['cpu_s']:>8.1f} {stat['rss_mib']:>12.0f}"
                f" {stat['size_mib']:>9.0f}{extra}"
            )

    if args.threads > 1:
        print()
        for threads in (1, args.threads):
            searcher.search_batch(queries[:2], 10, threads=threads)  # compiles
            for k in (10, 1000):
                start = time.perf_counter()
                results = searcher.search_batch(queries, k, threads=threads)
                wall = time.perf_counter() - start
                print(
                    f"search_batch threads={threads} k={k}:"
                    f" {1000 * wall / len(results):.2f} wall ms/query"
                )
    if args.design:
        design(index, queries)
    if args.convert and stats.get("raw"):
        convert(workdir, index)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
