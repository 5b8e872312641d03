"""Seismic search settings beyond the grid of :mod:`bench.retrieval_engines`,
on an index that it built (search only): mean CPU ms per query at k=10, one
thread, and recall@10 against the exact top-10 (the exhaustive engine's,
exact by its tests, timed in the same process as the baseline)

    python -m bench.seismic_settings /tmp/splade-bench/mix-1000000-1000 \\
        20:0.8,30:0.8,30:0.7
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import common


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seismic_settings",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "collection",
        type=Path,
        help="folder of a collection where bench.retrieval_engines built the "
        "exhaustive and seismic indices",
    )
    parser.add_argument(
        "settings", help="query_cut:heap_factor[:n_knn], comma-separated"
    )
    parser.add_argument(
        "--index", default="seismic", help="the Seismic index (default: seismic)"
    )
    return parser


def main(argv=None):
    common.one_thread()
    arguments = parser()
    args = arguments.parse_args(argv)
    for index in ("exhaustive", args.index):
        common.require(
            arguments, args.collection / index / "build.json", f"{index} index", "--"
        )
    grid = [
        dict(zip(("query_cut", "heap_factor", "n_knn"), values, strict=False))
        for values in (
            [int(v) if i != 1 else float(v) for i, v in enumerate(s.split(":"))]
            for s in args.settings.split(",")
        )
    ]
    queries = common.load_queries(args.collection)
    from splade.engines.exhaustive import SparseIndex

    searcher = SparseIndex.load(args.collection / "exhaustive").searcher()
    searcher.search(*common.query(queries, 0), 10)  # (compiles)
    exact, cpu = [], 0.0
    for q in range(queries.shape[0]):
        terms, weights = common.query(queries, q)
        start = time.process_time()
        ids, scores = searcher.search(terms, weights, 10)
        cpu += time.process_time() - start
        exact.append(np.asarray(ids)[np.asarray(scores) > 0])
    # the baseline, timed in the same process
    row = {"engine": "exhaustive (exact)", "k10_ms": round(1000 * cpu / len(exact), 2)}
    print(json.dumps({**row, "recall": 1.0}), flush=True)
    kind = "pyseismic" if args.index.startswith("pyseismic") else "seismic"
    for settings in grid:
        search = common.open_search(kind, args.collection / args.index, **settings)
        search(*common.query(queries, 0), 10)
        results, cpu, wall = common.per_query(search, queries, 10)
        name = " ".join(f"{key}={value}" for key, value in settings.items())
        row = {"engine": f"Seismic {name}", "k10_ms": round(1000 * np.mean(cpu), 2)}
        row["recall"] = round(common.recall(results, exact), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
