"""Retrieval engines side by side: latency against recall@10, build cost

Measures, in one run, every engine of :mod:`splade.engines` (the exhaustive
engine, impact-index MaxScore and WAND, PISA, BMP, Seismic through
impact-index and through the authors' ``pyseismic-lsr``) and brute force
with scipy (the reference), through their public interfaces: index build
CPU time, peak memory of the build (each build runs in its own process),
index size, mean and p95 CPU milliseconds per query on one thread at k=10
and k=1000, and recall@10 against the exact top-10. Collections
(``--collections``):

- ``scifact``: ``DATA/scifact`` (5,183 documents, its 300 test queries)
  encoded by ``MODEL``;
- ``mix``: ``--docs`` documents mixed and thinned from the real SPLADE
  vectors of SciFact, Cranfield and CISI, with their real queries
  (:mod:`bench.splade_mix`): correlated vectors, as real collections have;
- ``synthetic``: ``--docs`` SPLADE-shaped random vectors (term ids
  Zipf-distributed over 30,522 BERT tokens, about 120 non-zeros per
  document, queries of about 20), for comparison.

Builds and results are kept under ``--workdir`` (an index is built again
when its ``build.json`` is removed or its parameters change;
``results.json`` holds the measures of a collection: remove it to measure
again). The tables, the goals and the scaling table are printed and written
in ``BENCHMARKS.md`` under ``## Retrieval engines`` (only that section is
replaced), with a plot ``bench/retrieval_engines.png``.

    nice -n 10 python -m bench.retrieval_engines --collections scifact,mix \\
        --docs 100000,1000000 --workdir /tmp/splade-bench
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np

from bench import common

MSMARCO = 8_841_823

# --- Collections


def synthetic(folder: Path, docs: int, queries: int, seed: int = 0):
    """Independent Zipf terms (bounded memory: chunks of documents)"""
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(common.VOCABULARY)
    documents = dict(draws=150, exponent=1.0, offset=2.0, mean=-1.2, sigma=0.6)
    chunks = [
        common.zipf_vectors(
            rng,
            min(common.CHUNK, docs - start),
            permutation=permutation,
            slope=0.08,
            **documents,
        )
        for start in range(0, docs, common.CHUNK)
    ]
    q = common.zipf_vectors(
        rng,
        queries,
        draws=20,
        exponent=0.8,
        offset=20.0,
        permutation=permutation,
        mean=-0.6,
        sigma=0.5,
        slope=0.08,
    )
    common.write_collection(folder, chunks, q)


def collection_folder(args, name: str, docs: int) -> tuple:
    """(folder, label) of a collection, made if needed"""
    cache = args.workdir / "real"
    if name == "scifact":
        folder = args.workdir / "scifact"
        if not common.is_collection(folder):
            documents = common.encoded(cache, args.data, args.model, name, "docs.tsv")
            queries = common.encoded(
                cache, args.data, args.model, name, "queries.test.tsv"
            )
            common.write_collection(folder, [documents], queries)
        return folder, "scifact (5,183 docs, 300 queries, splade-bert-tiny)"
    if name == "mix":
        folder = args.workdir / f"mix-{docs}-{args.queries}"
        if not common.is_collection(folder):
            common.splade_mix(folder, docs, args.queries, cache, args.data, args.model)
        return folder, f"splade-mix ({docs:,} docs, {args.queries:,} real queries)"
    folder = args.workdir / f"synthetic-{docs}-{args.queries}"
    if not common.is_collection(folder):
        synthetic(folder, docs, args.queries)
    return folder, f"synthetic ({docs:,} docs, {args.queries:,} queries)"


# --- Indices: name -> (kind of common.BUILDS, parameters)

#: Seismic's build parameters (--seismic-build), the same for both
#: implementations
SEISMIC = {
    "n_postings": 4000,
    "centroid_fraction": 0.1,
    "summary_energy": 0.4,
    "max_fraction": 1.5,
}


def indices():
    return {
        "exhaustive": ("exhaustive", {}),
        "raw": ("raw", {}),
        "compressed16": ("compressed", {"nbits": 16}),
        "pisa": ("pisa", {}),
        "bmp16": ("bmp", {"block_size": 16}),
        "bmp32": ("bmp", {"block_size": 32}),
        "bmp16-bp": ("bmp", {"block_size": 16, "reorder": True}),
        "bmp32-bp": ("bmp", {"block_size": 32, "reorder": True}),
        "seismic": ("seismic", dict(SEISMIC)),
        "pyseismic": ("pyseismic", dict(SEISMIC)),
    }


# --- Engines: name -> (index, kind of common.open_search, settings)

SEISMIC_GRID = [
    (20, 0.9),
    (10, 0.9),
    (10, 0.8),
    (8, 0.9),
    (7, 0.9),
    (6, 0.9),
    (5, 0.9),
    (4, 0.9),
    (3, 0.9),
]
BMP_SETTINGS = [(1.0, 1.0), (0.9, 1.0), (0.8, 1.0), (0.7, 1.0)]


def engines(available) -> dict:
    found = {}
    if "exhaustive" in available:
        found["exhaustive (exact)"] = ("exhaustive", "exhaustive", {})
    if "raw" in available:
        found["impact-index MaxScore (exact)"] = ("raw", "maxscore", {})
        found["impact-index WAND (exact)"] = ("raw", "wand", {})
    if "compressed16" in available:
        found["impact-index MaxScore, compressed 16 bits"] = (
            "compressed16",
            "maxscore",
            {},
        )
    if "pisa" in available:
        for label, algorithm in (
            ("PISA block-max MaxScore", "block_max_maxscore"),
            ("PISA block-max WAND", "block_max_wand"),
        ):
            found[label] = ("pisa", "pisa", {"algorithm": algorithm})
    for name in ("bmp16", "bmp32", "bmp16-bp", "bmp32-bp"):
        if name not in available:
            continue
        size = name[3:5]
        reordered = ", reordered" if name.endswith("-bp") else ""
        for alpha, beta in BMP_SETTINGS:
            label = f"BMP blocks={size}{reordered} alpha={alpha}"
            found[label] = (name, "bmp", {"alpha": alpha, "beta": beta})
        label = f"BMP blocks={size}{reordered} alpha=1.0, impact-index's searcher"
        found[label] = (name, "bmp", {"implementation": "impact-index"})
    for cut, heap in SEISMIC_GRID:
        settings = {"query_cut": cut, "heap_factor": heap}
        if "seismic" in available:
            label = f"Seismic (impact-index) query_cut={cut} heap_factor={heap}"
            found[label] = ("seismic", "seismic", settings)
        if "pyseismic" in available:
            label = f"Seismic (pyseismic) query_cut={cut} heap_factor={heap}"
            found[label] = ("pyseismic", "pyseismic", settings)
    return found


# --- Measures


def brute_force(folder: Path, queries, budget: float):
    """The exact top-10 of each query, and scipy's row"""
    matrix = common.load_documents(folder).tocsc()

    def search(terms, weights, k):
        scores = matrix[:, terms] @ weights
        kk = min(k, len(scores) - 1)
        top = np.argpartition(-scores, kk)[:kk]
        return top[np.argsort(-scores[top])]

    timings = {}
    for k in (10, 1000):
        _, cpu, wall = common.per_query(search, queries, k)
        timings[f"k{k}"] = common.milliseconds(cpu, wall)
    size = (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20
    exact = common.exact_tops(matrix, queries, 10)
    return exact, {
        "engine": "scipy brute force (exact)",
        "index": None,
        "size_mib": size,
        "recall": 1.0,
        **timings,
    }


def run(folder: Path, name: str, skip=(), k1000_queries=0, exclude=(), budget=0.0):
    """Builds every index, then measures every engine; returns the builds and
    the rows (kept in ``results.json``: remove it to measure again)"""
    results_file = folder / "results.json"
    if results_file.exists():
        return json.loads(results_file.read_text())
    builds = {}
    for index, (kind, parameters) in indices().items():
        if index in skip:
            continue
        print(f"[{name}] building {index}", flush=True)
        builds[index] = common.build(folder, index, kind, parameters)
        if builds[index]:
            print(f"[{name}]   {builds[index]}", flush=True)
    available = {b for b, v in builds.items() if v}

    queries = common.load_queries(folder)
    exact, reference = brute_force(folder, queries, budget)
    rows = [reference]
    for engine, (index, kind, settings) in engines(available).items():
        if any(part in engine for part in exclude):
            continue
        print(f"[{name}] searching with {engine}", flush=True)
        search = common.open_search(kind, folder / index, **settings)
        search(*common.query(queries, 0), 10)  # (warm-up)
        results, cpu, wall = common.per_query(search, queries, 10, budget)
        subset = queries[:k1000_queries] if k1000_queries else queries
        k1000_results, cpu1000, wall1000 = common.per_query(
            search, subset, 1000, budget
        )
        rows.append(
            {
                "engine": engine,
                "index": index,
                "size_mib": builds[index]["size_mib"],
                "k10": common.milliseconds(cpu, wall),
                "k1000": common.milliseconds(cpu1000, wall1000),
                "recall": common.recall(results, exact),
                "queries": [len(results), len(k1000_results)],
            }
        )
        print(f"[{name}]   {rows[-1]}", flush=True)
        del search
    results_file.write_text(json.dumps([builds, rows]))
    return builds, rows


# --- Report

EXACT = ("exhaustive", "impact-index MaxScore", "impact-index WAND")


def is_exact_engine(row) -> bool:
    return row["engine"].startswith(EXACT)


def is_approximate(row) -> bool:
    return row["engine"].startswith(("BMP", "Seismic"))


def table(builds, rows, reference_engine="exhaustive (exact)"):
    reference = next((r for r in rows if r["engine"] == reference_engine), rows[0])
    lines = [
        "| engine | index | build CPU s (wall) | build peak RSS MiB | index MiB "
        "| k=10 ms mean | k=10 ms p95 | k=1000 ms mean | k=1000 ms p95 "
        "| wall ms k=10 / k=1000 | speed-up vs exhaustive k=10 / k=1000 "
        "| recall@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        b = builds.get(row["index"]) or {}
        build_s = f"{b['cpu_s']:.1f} ({b['build_s']:.0f})" if b else "-"
        rss = f"{b['rss_mib']:.0f}" if b else "-"
        k10, k1000 = row["k10"], row["k1000"]
        speedup = (
            f"{reference['k10'][0] / k10[0]:.1f}x"
            f" / {reference['k1000'][0] / k1000[0]:.1f}x"
        )
        engine = row["engine"]
        timed_queries = row.get("queries")
        if timed_queries and timed_queries != [row.get("total")] * 2:
            if row.get("total") and min(timed_queries) < row["total"]:
                engine += f" ({timed_queries[0]} / {timed_queries[1]} queries)"
        lines.append(
            f"| {engine} | {row['index'] or 'CSC matrix'} | {build_s} "
            f"| {rss} | {row['size_mib']:.0f} | {k10[0]:.2f} | {k10[1]:.2f} "
            f"| {k1000[0]:.2f} | {k1000[1]:.2f} | {k10[2]:.1f} / {k1000[2]:.1f} "
            f"| {speedup} | {row['recall']:.3f} |"
        )
    return "\n".join(lines)


def best_approximate(rows, minimum=0.97):
    candidates = [r for r in rows if is_approximate(r) and r["recall"] >= minimum]
    return min(candidates, key=lambda r: r["k10"][0]) if candidates else None


def goals(label, rows, approximate_goal: bool) -> str:
    """Exact retrieval at most 0.5x PISA's latency (k=10 and k=1000); the
    best approximate setting with recall@10 >= 0.97 at least 5x faster than
    the fastest exact engine (the goal is set at 1M documents)"""
    by_name = {row["engine"]: row for row in rows}
    ours = by_name.get("exhaustive (exact)")
    pisa = [r for r in rows if r["engine"].startswith("PISA")]
    lines = [f"- **{label}**"]
    if ours and pisa:
        for k in ("k10", "k1000"):
            theirs = min(pisa, key=lambda r: r[k][0])
            ratio = ours[k][0] / theirs[k][0]
            verdict = "met" if ratio <= 0.5 else "**not met**"
            lines.append(
                f"  - exact at {k.replace('k', 'k=')}: exhaustive "
                f"{ours[k][0]:.2f} ms, {theirs['engine']} {theirs[k][0]:.2f} ms: "
                f"{ratio:.2f}x PISA's latency (goal <= 0.5x): {verdict}"
            )
    exact = [r for r in rows if is_exact_engine(r)]
    best = best_approximate(rows)
    if exact and best:
        fastest = min(exact, key=lambda r: r["k10"][0])
        speedup = fastest["k10"][0] / best["k10"][0]
        goal = ""
        if approximate_goal:
            verdict = "met" if speedup >= 5 else "**not met**"
            goal = f" (goal >= 5x): {verdict}"
        relation = (
            f"{speedup:.1f}x faster than"
            if speedup >= 1
            else f"{1 / speedup:.1f}x slower than"
        )
        lines.append(
            f"  - approximate, recall@10 >= 0.97: {best['engine']} (recall@10 "
            f"{best['recall']:.3f}) {best['k10'][0]:.2f} ms at k=10, "
            f"{relation} the fastest exact engine "
            f"({fastest['engine']}, {fastest['k10'][0]:.2f} ms){goal}"
        )
    elif exact:
        lines.append("  - approximate: no setting reached recall@10 >= 0.97")
    return "\n".join(lines)


def growth(small, large, ratio):
    """(factor, exponent) of a measure from the small to the large size"""
    if not small or not large or small <= 0 or large <= 0:
        return None, None
    factor = large / small
    return factor, float(np.log(factor) / np.log(ratio))


def scaling(kind, sizes, results) -> str:
    """Peak build memory, index size and latency at two sizes, their growth
    (as a power of the number of documents) and what it predicts for MS
    MARCO's 8.8M passages"""
    (small_n, (small_builds, small_rows)), (large_n, (large_builds, large_rows)) = sizes
    ratio = large_n / small_n
    target = MSMARCO / large_n
    lines = [
        f"| {kind} | at {small_n:,} | at {large_n:,} | growth (x, exponent) "
        f"| predicted at {MSMARCO:,} |",
        "|---|---:|---:|---:|---:|",
    ]

    def line(name, small, large, unit, digits=0):
        factor, exponent = growth(small, large, ratio)
        if factor is None:
            return
        predicted = large * target**exponent
        lines.append(
            f"| {name} ({unit}) | {small:.{digits}f} | {large:.{digits}f} "
            f"| {factor:.1f}x, n^{exponent:.2f} | {predicted:.{digits}f} |"
        )

    for index in indices():
        small, large = small_builds.get(index), large_builds.get(index)
        if small and large:
            line(f"{index} build peak RSS", small["rss_mib"], large["rss_mib"], "MiB")
            line(f"{index} build CPU", small["cpu_s"], large["cpu_s"], "s", 1)
            line(f"{index} size", small["size_mib"], large["size_mib"], "MiB")
    small_by_name = {r["engine"]: r for r in small_rows}
    best = best_approximate(large_rows)
    chosen = ["exhaustive (exact)", "impact-index MaxScore (exact)"]
    chosen += ["PISA block-max MaxScore", "scipy brute force (exact)"]
    chosen += [best["engine"]] if best else []
    latencies = {}
    for row in large_rows:
        if row["engine"] in chosen and row["engine"] in small_by_name:
            for k in ("k10", "k1000"):
                small = small_by_name[row["engine"]][k][0]
                line(
                    f"{row['engine']} {k.replace('k', 'k=')}", small, row[k][0], "ms", 2
                )
                latencies[row["engine"], k] = (small, row[k][0])
    # where the exhaustive engine stops being the fastest exact engine
    notes = []
    for other in ("PISA block-max MaxScore", "impact-index MaxScore (exact)"):
        for k in ("k10", "k1000"):
            ours = latencies.get(("exhaustive (exact)", k))
            theirs = latencies.get((other, k))
            if not ours or not theirs:
                continue
            _, ours_exp = growth(*ours, ratio)
            _, theirs_exp = growth(*theirs, ratio)
            if ours_exp <= theirs_exp:
                notes.append(
                    f"{other} at {k.replace('k', 'k=')}: grows at least as fast "
                    f"(n^{theirs_exp:.2f} against n^{ours_exp:.2f}): no crossing"
                )
                continue
            crossing = large_n * (theirs[1] / ours[1]) ** (1 / (ours_exp - theirs_exp))
            notes.append(
                f"{other} at {k.replace('k', 'k=')}: latencies grow as "
                f"n^{ours_exp:.2f} (exhaustive) and n^{theirs_exp:.2f}: they "
                f"would cross at about {crossing:.2g} documents"
            )
    text = "\n".join(lines)
    if notes:
        text += "\n\nWhere the exhaustive engine stops being faster, " + (
            "extrapolating these powers: " + "; ".join(notes) + "."
        )
    return text


def plot(results, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5.5))
    axes = np.atleast_1d(axes)
    families = {
        "exhaustive": ("tab:red", "*"),
        "scipy": ("black", "x"),
        "impact-index": ("tab:gray", "s"),
        "PISA": ("tab:blue", "D"),
        "BMP blocks=16, reordered": ("tab:cyan", "^"),
        "BMP blocks=32, reordered": ("tab:pink", "v"),
        "BMP blocks=16": ("tab:green", "^"),
        "BMP blocks=32": ("tab:olive", "v"),
        "Seismic (impact-index)": ("tab:purple", "o"),
        "Seismic (pyseismic)": ("tab:orange", "o"),
    }
    for ax, (name, (_, rows)) in zip(axes, results.items(), strict=True):
        seen = set()
        for row in rows:
            family = next(f for f in families if row["engine"].startswith(f))
            color, marker = families[family]
            ax.scatter(
                row["k10"][0],
                row["recall"],
                color=color,
                marker=marker,
                label=None if family in seen else family,
                s=60 if row["engine"].startswith("exhaustive") else 30,
            )
            seen.add(family)
        ax.set_xscale("log")
        ax.set_xlabel("mean CPU ms per query (k=10, one thread)")
        ax.set_ylabel("recall@10 against exact search")
        ax.set_ylim(max(0.5, ax.get_ylim()[0]), 1.01)
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrieval_engines",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--docs", default="100000,1000000", help="comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--collections", default="scifact,mix", help="scifact, mix, synthetic"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/splade-bench"),
        help="collections, encodings (real/) and indices (default: /tmp/splade-bench)",
    )
    common.add_path(parser, "--data", common.DATA, "folder of the local collections")
    common.add_path(parser, "--model", common.MODEL, "SPLADE model (encodes them)")
    parser.add_argument(
        "--output",
        type=Path,
        default=common.BENCHMARKS,
        help="the Markdown file whose section is written (default: BENCHMARKS.md)",
    )
    parser.add_argument(
        "--skip",
        default="compressed16",
        help="indices not built, comma-separated, among: " + ", ".join(indices()),
    )
    parser.add_argument(
        "--skip-large",
        default="",
        help="indices not built at the largest size of a collection",
    )
    parser.add_argument(
        "--k1000-queries",
        type=int,
        default=0,
        help="time k=1000 on the first N queries only (0: all)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="CPU seconds per engine and k after which the timing stops "
        "(at least 200 queries; 0: all queries)",
    )
    parser.add_argument(
        "--seismic-build",
        default=json.dumps(SEISMIC),
        help="Seismic's build parameters (JSON)",
    )
    parser.add_argument(
        "--exclude",
        default="",
        help="engines not measured: comma-separated parts of their names "
        "(e.g. 'WAND,alpha=0.9')",
    )
    return parser


def main(argv=None):
    common.one_thread()
    arguments = parser()
    args = arguments.parse_args(argv)
    skipped = set(args.skip.split(","))
    common.require_modules(
        arguments,
        "scipy",
        "matplotlib",
        *(["pyterrier_pisa"] if "pisa" not in skipped else []),
        *(["seismic"] if "pyseismic" not in skipped else []),
    )
    SEISMIC.update(json.loads(args.seismic_build))
    names = args.collections.split(",")
    sizes = [int(d) for d in args.docs.split(",")]
    # what the collections are made of, unless they were already made
    needed = [
        folder
        for name in names
        for docs in (sizes if name != "scifact" else [0])
        if name != "synthetic"
        for folder in [
            args.workdir
            / ("scifact" if name == "scifact" else f"mix-{docs}-{args.queries}")
        ]
        if not common.is_collection(folder)
    ]
    if needed:
        common.require(arguments, args.data, "data folder", "--data")
        common.require(arguments, args.model, "model", "--model")

    results, by_kind = {}, {}
    exclude = [part for part in args.exclude.split(",") if part]
    for name in names:
        for docs in sizes if name != "scifact" else [0]:
            folder, label = collection_folder(args, name, docs)
            skip = set(args.skip.split(","))
            if docs == max(sizes):
                skip |= set(args.skip_large.split(","))
            stats = common.collection_stats(folder)
            results[label] = run(
                folder, label, skip, args.k1000_queries, exclude, args.budget
            )
            results[label][1][0]["stats"] = stats
            total = common.load_queries(folder).shape[0]
            for row in results[label][1]:
                row["total"] = total
            if name != "scifact":
                by_kind.setdefault(name, []).append((docs, results[label]))
            print(f"\n### {label}: {stats}\n\n{table(*results[label])}\n", flush=True)

    png = args.output.parent / "bench" / "retrieval_engines.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(results, png)
    section = [
        "## Retrieval engines",
        "",
        f"Command: `nice -n 10 {common.command_line('bench.retrieval_engines')}` "
        f"(one thread, {os.uname().machine}, 2 cores shared with other work). "
        f"Seismic's build parameters: `{json.dumps(SEISMIC)}` (both "
        "implementations).",
        "",
    ]
    section += [report_notes(args)]
    for label, (builds, rows) in results.items():
        section += [f"### {label}: {rows[0]['stats']}", "", table(builds, rows), ""]
    relative = os.path.relpath(png, args.output.parent)
    section += [f"![latency against recall@10]({relative})", ""]
    section += ["### Against the goals", ""]
    largest = {
        label
        for kind, items in by_kind.items()
        for label in results
        if kind == "mix" and str(f"{max(d for d, _ in items):,} docs") in label
    }
    section += [
        goals(label.split(":")[0], rows, label in largest)
        for label, (_, rows) in results.items()
    ]
    section.append("")
    for kind, items in by_kind.items():
        if len(items) >= 2:
            items = sorted(items, key=lambda item: item[0])
            section += [
                f"### How they grow ({kind}, {items[0][0]:,} to {items[-1][0]:,} "
                "documents)",
                "",
                scaling(kind, [items[0], items[-1]], results),
                "",
            ]
    text = "\n".join(section)
    print(text)
    common.write_section("## Retrieval engines", text, args.output)


def report_notes(args) -> str:
    k1000 = (
        f"k=1000 is timed on the first {args.k1000_queries} queries. "
        if args.k1000_queries
        else ""
    )
    return (
        "Latencies are CPU milliseconds per query of the process "
        "(`time.process_time`), one query at a time: the machine was shared, "
        "so wall times (also given) include waits for a core. " + k1000 + ""
        "Recall@10 is against the exact top-10 (scipy brute force). Build "
        "times and peak RSS are those of one process per index; PISA's and "
        "BMP's indices are converted from the exhaustive index, impact-index's "
        "Seismic from the raw impact-index index (add their build time), "
        "pyseismic builds from the vectors. PISA stores int(100 w) and counts "
        "query weights int(100 q) (`splade/engines/pisa/index.py`); BMP stores "
        "int(s w) with the largest s for which no score overflows its 16-bit counter "
        "(`splade/engines/bmp/index.py`). An engine marked (n / m queries) "
        "was timed on the first n queries at k=10 and m at k=1000 (its "
        "recall@10 on those n), having used its CPU budget "
        f"({args.budget:.0f} s).\n"
    )


if __name__ == "__main__":
    main()
