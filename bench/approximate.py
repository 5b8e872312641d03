"""Approximate retrieval against exact search: the recall-latency curve of
each approximate engine, and of each lever, at 100k and 1M documents

On splade-mix (:mod:`bench.splade_mix`: real SPLADE vectors mixed to
``--docs`` documents, 1,000 real queries), in one run, each collection in
one process: mean CPU milliseconds per query at k=10 on one thread, and
recall@10 against the exact top-10 (the exhaustive engine's, exact by its
tests), for every search setting of

- the exhaustive engine (exact: the baseline, timed first and last), and
  the same with the query pruned to its heaviest terms before the search;
- Seismic (impact-index's port, the ``seismic`` engine) at the package's
  build settings, at the authors' tuned settings for SPLADE on MS MARCO
  (TusKANNy/seismic ``experiments/best_configs``), with other summary
  energies and centroid fractions, and with its k-NN graph (Bruch et al.,
  CIKM 2024: the results' neighbours are scored too, ``n_knn``);
- the ``pruned`` engine (:mod:`splade.engines.pruned`: posting lists cut to
  their highest weights, candidates rescored exactly);
- BMP's block-max pruning (``alpha`` < 1), at the smallest size only (its
  1M build takes over 15 GB).

For each engine and lever: the fastest setting reaching recall@10 0.95,
0.97 and 0.99, its speed-up over exact search, and the postings it reads
per query (the exhaustive engine reads every posting of the query terms);
for each collection, how close the exact top-10's last scores are and how
spread the queries' weight is (:func:`closeness`: why recall is hard to
keep as the collection grows).
Indices are built once under ``--workdir`` (each in its own process, like
:mod:`bench.retrieval_engines`, whose indices it shares); the measures of a
collection are kept in its ``approximate.json`` (remove it to measure
again). Writes the section ``## Approximate retrieval`` of BENCHMARKS.md
and ``bench/approximate.png``.

    nice -n 10 python -m bench.approximate --docs 100000,1000000 \\
        --workdir /tmp/splade-bench
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from bench import common

SECTION = "## Approximate retrieval"
TARGETS = (0.95, 0.97, 0.99)

#: Seismic's build settings: the package's defaults, the authors' tuned
#: configuration for SPLADE (coCondenser) on MS MARCO at recall 97%, memory
#: budget 1.5 (experiments/best_configs/msmarco-v1/splade-cocondenser/
#: mem_budget_1.5/recall_97.toml: its other settings, min_cluster_size 2,
#: doc_cut 15 and dotvbyte values, are not in impact-index's port)
SEISMIC_DEFAULT = {
    "n_postings": 4000,
    "centroid_fraction": 0.1,
    "summary_energy": 0.4,
    "max_fraction": 1.5,
}
SEISMIC_AUTHORS = {
    "n_postings": 4000,
    "centroid_fraction": 0.2,
    "summary_energy": 0.5,
    "max_fraction": 3.0,
}
SEISMIC_GRID = [
    {"query_cut": cut, "heap_factor": heap}
    for cut in (3, 4, 5, 6, 8, 10, 15, 20, 30)
    for heap in (1.0, 0.9, 0.8, 0.7)
]


def configurations(docs: int, smallest: bool) -> list:
    """(lever, index name, build kind, build parameters, search kind,
    search settings) of every curve measured on a collection"""
    found = []

    def seismic(lever, name, parameters, grid=SEISMIC_GRID):
        found.append((lever, name, "seismic", parameters, "seismic", grid))

    seismic("Seismic, package settings", "seismic", SEISMIC_DEFAULT)
    seismic("Seismic, authors' MS MARCO settings", "seismic-authors", SEISMIC_AUTHORS)
    seismic(
        "Seismic, summary energy 0.6",
        "seismic-energy0.6",
        {**SEISMIC_DEFAULT, "summary_energy": 0.6},
    )
    seismic(
        "Seismic, centroid fraction 0.2",
        "seismic-centroids0.2",
        {**SEISMIC_DEFAULT, "centroid_fraction": 0.2},
    )
    knn_grid = [
        {**setting, "n_knn": n}
        for setting in SEISMIC_GRID
        if setting["heap_factor"] >= 0.8 and setting["query_cut"] <= 10
        for n in (5, 10)
    ]
    seismic(
        "Seismic + k-NN graph (10 neighbours)",
        "seismic-knn10",
        {**SEISMIC_DEFAULT, "knn": 10},
        knn_grid,
    )
    pruned_grid = [
        {"candidates": c, "query_terms": q}
        for c in (20, 50, 100, 200, 500, 1000)
        for q in (0, 20)
    ]
    for postings in (1000, 2000, 5000, 10000, 20000):
        found.append(
            (
                f"pruned, {postings} postings per term",
                f"pruned{postings}",
                "pruned",
                {"postings": postings},
                "pruned",
                pruned_grid,
            )
        )
    found.append(
        (
            "exhaustive, query pruned",
            "exhaustive",
            "exhaustive",
            {},
            "exhaustive",
            [{"query_terms": m} for m in (5, 10, 15, 20, 30, 40)],
        )
    )
    if smallest:
        found.append(
            (
                "BMP blocks=16, reordered (block-max pruning)",
                "bmp16-bp",
                "bmp",
                {"block_size": 16, "reorder": True},
                "bmp",
                [{"alpha": a, "beta": 1.0} for a in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)],
            )
        )
    return found


def pruned_query(terms, weights, query_terms: int):
    """The ``query_terms`` heaviest terms of a query (0: all)"""
    if not query_terms or len(terms) <= query_terms:
        return terms, weights
    kept = np.sort(np.argsort(-weights, kind="stable")[:query_terms])
    return terms[kept], weights[kept]


#: The searchers opened, by (kind, folder): one at a time is kept
_OPENED = {}


def _searcher(kind: str, folder: Path):
    """The searcher of an index, kept while the following settings use it"""
    if (kind, folder) not in _OPENED:
        _OPENED.clear()
        if kind == "exhaustive":
            from splade.engines.exhaustive import SparseIndex

            _OPENED[kind, folder] = SparseIndex.load(folder).searcher()
        else:
            from splade.engines.pruned import PrunedSearcher

            _OPENED[kind, folder] = PrunedSearcher(folder)
    return _OPENED[kind, folder]


def opener(kind: str, folder: Path, settings: dict):
    """(search function, postings read by a query) of one setting"""
    settings = dict(settings)
    if kind == "exhaustive":
        searcher = _searcher(kind, folder)
        cut = settings.pop("query_terms", 0)

        def search(terms, weights, k):
            return searcher.search(*pruned_query(terms, weights, cut), k)[0]

        return search, lambda t, w: searcher.postings(*pruned_query(t, w, cut))
    if kind == "pruned":
        searcher = _searcher(kind, folder)
        candidates, cut = settings["candidates"], settings["query_terms"]
        lengths = np.diff(searcher.forward[0])
        average = float(lengths.mean())

        def search(terms, weights, k):
            return searcher.search(terms, weights, k, candidates, cut)[0]

        def read(terms, weights):
            # kept postings, and the forward vectors of the candidates
            return searcher.postings(terms, weights, cut) + candidates * average

        return search, read
    return common.open_search(kind, folder, **settings), None


def measure(
    folder: Path, label: str, docs: int, smallest: bool, budget: float, skip=()
):
    """Builds the indices, then measures every curve of a collection (but
    those of the indices named in ``skip``)"""
    results_file = folder / "approximate.json"
    if results_file.exists():
        return json.loads(results_file.read_text())
    configs = [c for c in configurations(docs, smallest) if c[1] not in skip]
    builds = {}
    for name, kind, parameters in [("exhaustive", "exhaustive", {})] + [
        (name, kind, parameters) for _, name, kind, parameters, _, _ in configs
    ]:
        if name in builds:
            continue
        if kind in ("seismic",):
            builds["raw"] = builds.get("raw") or common.build(folder, "raw", "raw")
        print(f"[{label}] building {name}", flush=True)
        builds[name] = common.build(folder, name, kind, parameters)
        print(f"[{label}]   {builds[name]}", flush=True)

    queries = common.load_queries(folder)
    from splade.engines.exhaustive import SparseIndex

    index = SparseIndex.load(folder / "exhaustive")
    total_postings = index.num_postings
    exact_searcher = index.searcher()

    def baseline():
        search = lambda t, w, k: exact_searcher.search(t, w, k)[0]  # noqa: E731
        search(*common.query(queries, 0), 10)
        results, cpu, wall = common.per_query(search, queries, 10)
        return results, common.milliseconds(cpu, wall)

    exact, first = baseline()
    exact = [np.asarray(r) for r in exact]
    postings = np.array(
        [exact_searcher.postings(*common.query(queries, q)) for q in range(len(exact))]
    )
    rows = []
    for lever, name, _, _, kind, grid in configs:
        if not builds.get(name):
            continue
        for settings in grid:
            search, read = opener(kind, folder / name, settings)
            search(*common.query(queries, 0), 10)
            results, cpu, wall = common.per_query(search, queries, 10, budget)
            row = {
                "lever": lever,
                "index": name,
                "settings": settings,
                "k10": common.milliseconds(cpu, wall),
                "recall": common.recall(results, exact),
                "queries": len(results),
            }
            if read is not None:
                row["read"] = float(
                    np.mean([read(*common.query(queries, q)) for q in range(20)])
                    / postings[:20].mean()
                )
            rows.append(row)
            print(f"[{label}] {json.dumps(row)}", flush=True)
            del search
    _OPENED.clear()
    _, last = baseline()
    measures = {
        "builds": builds,
        "baseline": [first, last],
        "postings": float(postings.mean()),
        "total_postings": int(total_postings),
        "num_docs": int(index.num_docs),
        "rows": rows,
    }
    results_file.write_text(json.dumps(measures))
    return measures


def closeness(tops, query_weights, heaviest=(10, 20)) -> dict:
    """Why recall is hard to keep: from each query's exact scores (best
    first, at least 11) and its weights, the relative gap between the 10th
    and 11th scores (median, and the share of queries where it is under
    1%: a document that an approximation scores 1% too low leaves the
    top-10), and the share of the query's weight held by its ``heaviest``
    terms (those Seismic's ``query_cut`` keeps)"""
    gaps = np.array(
        [(top[9] - top[10]) / top[9] for top in tops if len(top) > 10 and top[9] > 0]
    )
    found = {
        "median_gap": float(np.median(gaps)),
        "under_1pc": float(np.mean(gaps < 0.01)),
    }
    for count in heaviest:
        found[f"weight_{count}"] = float(
            np.mean([np.sort(w)[::-1][:count].sum() / w.sum() for w in query_weights])
        )
    return found


def near_ties(folder: Path) -> dict:
    """:func:`closeness` of a collection's queries (exact search)"""
    from splade.engines.exhaustive import SparseIndex

    queries = common.load_queries(folder)
    searcher = SparseIndex.load(folder / "exhaustive").searcher()
    tops, weights = [], []
    for q in range(queries.shape[0]):
        terms, values = common.query(queries, q)
        tops.append(np.sort(np.asarray(searcher.search(terms, values, 11)[1]))[::-1])
        weights.append(np.asarray(values, dtype=np.float64))
    return closeness(tops, weights)


# --- Report


def baseline_ms(measures) -> float:
    """Mean of the exact engine's two timings (first and last)"""
    return float(np.mean([b[0] for b in measures["baseline"]]))


def setting_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def best(rows, target):
    reached = [r for r in rows if r["recall"] >= target]
    return min(reached, key=lambda r: r["k10"][0]) if reached else None


def frontier(rows):
    """The rows no other row beats on both latency and recall"""
    ordered = sorted(rows, key=lambda r: (r["k10"][0], -r["recall"]))
    kept, top = [], -1.0
    for row in ordered:
        if row["recall"] > top:
            kept.append(row)
            top = row["recall"]
    return kept


def reads(row) -> str:
    """The postings a setting reads, relative to exact search's (when known)"""
    return f"{row['read']:.2f}" if "read" in row else "-"


def summary(measures) -> str:
    exact = baseline_ms(measures)
    lines = [
        "| engine, lever | "
        + " | ".join(
            f"recall@10 >= {t}: ms (speed-up; postings read, x exact's), setting"
            for t in TARGETS
        )
        + " |",
        "|---|" + "---|" * len(TARGETS),
    ]
    levers = dict.fromkeys(r["lever"] for r in measures["rows"])
    for lever in levers:
        rows = [r for r in measures["rows"] if r["lever"] == lever]
        cells = []
        for target in TARGETS:
            row = best(rows, target)
            if row is None:
                cells.append(f"not reached (best {max(r['recall'] for r in rows):.3f})")
                continue
            cells.append(
                f"{row['k10'][0]:.2f} ({exact / row['k10'][0]:.1f}x; {reads(row)}), "
                f"{setting_text(row['settings'])}"
            )
        lines.append(f"| {lever} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves(measures) -> str:
    exact = baseline_ms(measures)
    lines = [
        "| engine, lever | setting | ms mean | ms p95 | speed-up "
        "| postings read (x exact's) | recall@10 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    levers = dict.fromkeys(r["lever"] for r in measures["rows"])
    for lever in levers:
        rows = [r for r in measures["rows"] if r["lever"] == lever]
        for row in frontier(rows):
            if row["recall"] < 0.9:
                continue
            lines.append(
                f"| {lever} | {setting_text(row['settings'])} | {row['k10'][0]:.2f} "
                f"| {row['k10'][1]:.2f} | {exact / row['k10'][0]:.1f}x "
                f"| {reads(row)} | {row['recall']:.3f} |"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5.5))
    axes = np.atleast_1d(axes)
    for ax, (label, measures) in zip(axes, results.items(), strict=True):
        exact = baseline_ms(measures)
        ax.scatter([exact], [1.0], color="tab:red", marker="*", s=80, label="exact")
        levers = dict.fromkeys(r["lever"] for r in measures["rows"])
        for lever in levers:
            rows = frontier([r for r in measures["rows"] if r["lever"] == lever])
            ax.plot(
                [r["k10"][0] for r in rows],
                [r["recall"] for r in rows],
                marker="o",
                markersize=3,
                label=lever,
            )
        for speedup in (5,):
            ax.axvline(exact / speedup, color="gray", linestyle=":", linewidth=1)
        ax.axhline(0.97, color="gray", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("mean CPU ms per query (k=10, one thread)")
        ax.set_ylabel("recall@10 against exact search")
        ax.set_ylim(0.85, 1.005)
        ax.set_title(f"{label} (dotted: 5x faster than exact, recall 0.97)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.approximate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--docs", default="100000,1000000", help="comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/splade-bench"),
        help="collections, encodings (real/) and indices (default: /tmp/splade-bench)",
    )
    common.add_path(parser, "--data", common.DATA, "folder of the local collections")
    common.add_path(parser, "--model", common.MODEL, "SPLADE model (encodes them)")
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="CPU seconds per setting after which its timing stops "
        "(at least 200 queries; 0: all queries)",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated indices not built nor measured (e.g. "
        "seismic-authors,bmp16-bp; see configurations())",
    )
    parser.add_argument(
        "--skip-large",
        default="",
        help="comma-separated indices also skipped at the largest size",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=common.BENCHMARKS,
        help="the Markdown file whose section is written (default: BENCHMARKS.md)",
    )
    return parser


def main(argv=None):
    common.one_thread()
    arguments = parser()
    args = arguments.parse_args(argv)
    common.require_modules(arguments, "scipy", "matplotlib")
    sizes = sorted(int(d) for d in args.docs.split(","))
    folders = {n: args.workdir / f"mix-{n}-{args.queries}" for n in sizes}
    if not all(common.is_collection(f) for f in folders.values()):
        common.require(arguments, args.data, "data folder", "--data")
        common.require(arguments, args.model, "model", "--model")
    results = {}
    began = time.strftime("%Y-%m-%d")
    for docs, folder in folders.items():
        if not common.is_collection(folder):
            common.splade_mix(
                folder, docs, args.queries, args.workdir / "real", args.data, args.model
            )
        label = f"splade-mix {docs:,} documents"
        skip = {name for name in args.skip.split(",") if name}
        if docs == sizes[-1] and len(sizes) > 1:
            skip |= {name for name in args.skip_large.split(",") if name}
        results[label] = measure(
            folder, label, docs, docs == sizes[0], args.budget, skip
        )

    png = args.output.parent / "bench" / "approximate.png"
    plot(results, png)
    text = [
        SECTION,
        "",
        f"Run on {began} ({os.uname().machine}, 2 cores shared with other "
        "work, under `nice`); command, from the repository root:",
        "",
        f"    nice -n 10 {common.command_line('bench.approximate')}",
        "",
        "Mean CPU ms per query at k=10, one thread (`time.process_time`), "
        "recall@10 against the exact top-10; speed-ups against the exhaustive "
        "engine timed in the same process (mean of its timings before and "
        "after the others). See the docstring of `bench/approximate.py` for "
        "each engine and lever.",
        "",
    ]
    for (label, measures), folder in zip(
        results.items(), folders.values(), strict=True
    ):
        first, last = (b[0] for b in measures["baseline"])
        ties = near_ties(folder)
        text += [
            f"### {label}: exact search {baseline_ms(measures):.2f} ms "
            f"({first:.2f} first, {last:.2f} last)",
            "",
            f"The exact engine reads {measures['postings']:,.0f} postings per "
            f"query ({measures['postings'] / measures['num_docs']:.2f} per "
            f"document, {measures['postings'] / measures['total_postings']:.1%} "
            "of the index). Fastest setting of each engine and lever at each "
            "recall (postings read: relative to exact search's, for the "
            "engines of this package; `pruned` counts the candidates' forward "
            "vectors too; `-`: not known, as Seismic's). The exact 10th and "
            f"11th scores differ by {ties['median_gap']:.2%} (median; under 1% "
            f"for {ties['under_1pc']:.0%} of the queries), and a query's 10 "
            f"heaviest terms hold {ties['weight_10']:.0%} of its weight (20: "
            f"{ties['weight_20']:.0%}):",
            "",
            summary(measures),
            "",
            "Curves (settings that no other setting of the same engine beats "
            "on both latency and recall, recall@10 >= 0.9):",
            "",
            curves(measures),
            "",
        ]
    relative = os.path.relpath(png, args.output.parent)
    text += [f"![recall against latency]({relative})", ""]
    section = "\n".join(text)
    print(section)
    common.write_section(SECTION, section, args.output)


if __name__ == "__main__":
    main()
