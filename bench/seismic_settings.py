"""Seismic search settings beyond the grid of ``retrieval_engines.py``, on
an index that it built (search only): mean CPU ms per query at k=10, one
thread, and recall@10 against the exact top-10 (the exhaustive engine's,
exact by ``tests/unit/test_exhaustive.py``, timed in the same process as the
baseline)

    python bench/seismic_settings.py /tmp/splade-bench/mix-1000000-1000 \\
        20:0.8,30:0.8,30:0.7
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import retrieval_engines as engines  # noqa: E402 (one thread, set at import)
import scipy.sparse as sp  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collection", type=Path, help="folder of the collection")
    parser.add_argument("settings", help="query_cut:heap_factor, comma-separated")
    args = parser.parse_args()
    from splade.engines.exhaustive import SparseIndex

    grid = [
        (int(cut), float(heap))
        for cut, heap in (s.split(":") for s in args.settings.split(","))
    ]
    queries = sp.load_npz(args.collection / "queries.npz").tocsr()
    queries.sort_indices()
    searcher = SparseIndex.load(args.collection / "exhaustive").searcher()
    warm = queries.indices[: queries.indptr[1]].astype(np.int64)
    searcher.search(warm, queries.data[: queries.indptr[1]], 10)  # (compiles)
    exact, cpu = [], 0.0
    for q in range(queries.shape[0]):
        a, b = queries.indptr[q], queries.indptr[q + 1]
        terms = queries.indices[a:b].astype(np.int64)
        start = time.process_time()
        ids, scores = searcher.search(terms, queries.data[a:b], 10)
        cpu += time.process_time() - start
        exact.append(np.asarray(ids)[np.asarray(scores) > 0])
    # the baseline, timed in the same process
    row = {"engine": "exhaustive (exact)", "k10_ms": round(1000 * cpu / len(exact), 2)}
    print(json.dumps({**row, "recall": 1.0}), flush=True)
    for name, (_, opener) in engines.searchers(
        args.collection, {"seismic"}, grid
    ).items():
        results, k10 = engines.timed(opener(), queries, 10)
        row = {"engine": name, "k10_ms": round(k10[0], 2)}
        row["recall"] = round(engines.recall10(results, exact), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
