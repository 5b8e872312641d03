"""Retrieval engines side by side: latency against recall@10, build cost

Measures, in one run, every engine of ``splade/engines.py`` (the exhaustive
engine, impact-index MaxScore and WAND, PISA, BMP, Seismic through
impact-index and through the authors' ``pyseismic-lsr``) and brute force
with scipy (the reference): index build CPU time, peak memory of the build
(each build runs in its own process), index size, mean and p95 CPU
milliseconds per query on one thread at k=10 and k=1000, and recall@10
against the exact top-10. Collections (``--collections``):

- ``scifact``: ``../shared/data/scifact`` (5,183 documents, its 300 test
  queries) encoded by ``../shared/models/splade-bert-tiny``;
- ``mix``: ``--docs`` documents mixed and thinned from the real SPLADE
  vectors of SciFact, Cranfield and CISI, with their real queries
  (``bench/splade_mix.py``): correlated vectors, as real collections have;
- ``synthetic``: ``--docs`` SPLADE-shaped random vectors (term ids
  Zipf-distributed over 30,522 BERT tokens, about 120 non-zeros per
  document, queries of about 20), the earlier collection, for comparison.

Builds and results are kept under ``--workdir`` (a build is redone when its
``build.json`` is removed or its parameters change; ``results.json`` holds
the measures of a collection: remove it to measure again). The tables, the
goals and the scaling table are printed and written in ``BENCHMARKS.md``
under ``## Retrieval engines`` (only that section is replaced), with a plot
``bench/retrieval_engines.png``.

    nice -n 10 python bench/retrieval_engines.py --collections scifact,mix \\
        --docs 100000,1000000 --workdir /tmp/splade-bench
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# One thread everywhere (set before the libraries start their pools)
for variable in (
    "RAYON_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
):
    os.environ[variable] = "1"

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
VOCABULARY = 30522
CHUNK = 50_000
MSMARCO = 8_841_823

# --- Collections


def zipf_probabilities(exponent: float, offset: float = 2.0) -> np.ndarray:
    ranks = np.arange(VOCABULARY, dtype=np.float64) + offset
    weights = ranks**-exponent
    return weights / weights.sum()


def sample_vectors(rng, count, draws, probabilities, permutation, mean, sigma):
    """``count`` sparse vectors: ``draws`` term draws (duplicates merged) each"""
    cumulative = np.cumsum(probabilities)
    ranks = np.searchsorted(cumulative, rng.random((count, draws)) * cumulative[-1])
    ranks = np.minimum(ranks, VOCABULARY - 1)
    keys = np.unique(np.arange(count)[:, None] * VOCABULARY + ranks)
    rows, ranks = np.divmod(keys, VOCABULARY)
    # rarer terms weigh more (as SPLADE's learned weights do)
    scale = mean + 0.08 * np.log1p(ranks)
    values = rng.lognormal(scale, sigma).astype(np.float32)
    matrix = sp.csr_matrix(
        (values, (rows, permutation[ranks])), shape=(count, VOCABULARY)
    )
    matrix.sort_indices()
    return matrix


def write_vectors(folder: Path, chunks, queries: sp.csr_matrix):
    """The collection's files: ``indptr.npy``, ``indices.u32``, ``data.f32``
    (documents, written chunk by chunk) and ``queries.npz``"""
    folder.mkdir(parents=True, exist_ok=True)
    with (
        (folder / "indices.u32").open("wb") as fi,
        (folder / "data.f32").open("wb") as fd,
    ):
        indptr, total = [np.zeros(1, np.int64)], 0
        for chunk in chunks:
            chunk.indices.astype(np.uint32).tofile(fi)
            chunk.data.astype(np.float32).tofile(fd)
            indptr.append(chunk.indptr[1:].astype(np.int64) + total)
            total += chunk.nnz
    np.save(folder / "indptr.npy", np.concatenate(indptr))
    sp.save_npz(folder / "queries.npz", queries.tocsr())


def synthetic(folder: Path, docs: int, queries: int, seed: int = 0):
    """Independent Zipf terms (bounded memory: chunks of documents)"""
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(VOCABULARY)
    doc_p = zipf_probabilities(1.0)
    chunks = [
        sample_vectors(
            rng, min(CHUNK, docs - start), 150, doc_p, permutation, -1.2, 0.6
        )
        for start in range(0, docs, CHUNK)
    ]
    q = sample_vectors(
        rng, queries, 20, zipf_probabilities(0.8, 20), permutation, -0.6, 0.5
    )
    write_vectors(folder, chunks, q)


def scifact(folder: Path, workdir: Path):
    """SciFact and its 300 test queries, encoded by splade-bert-tiny"""
    from splade_mix import real_collection

    docs, queries = real_collection(workdir, "scifact", "queries.test.tsv")
    write_vectors(folder, [docs], queries)


def mix(folder: Path, docs: int, queries: int, workdir: Path):
    from splade_mix import generate

    generate(folder, docs, queries, workdir)


def iter_chunks(folder: Path, chunk=CHUNK):
    """(first document, indptr, term ids, weights), chunk by chunk"""
    indptr = np.load(folder / "indptr.npy")
    for start in range(0, len(indptr) - 1, chunk):
        stop = min(start + chunk, len(indptr) - 1)
        a, b = int(indptr[start]), int(indptr[stop])
        terms = np.fromfile(folder / "indices.u32", np.uint32, b - a, offset=4 * a)
        weights = np.fromfile(folder / "data.f32", np.float32, b - a, offset=4 * a)
        yield start, indptr[start : stop + 1] - a, terms, weights


def load_matrix(folder: Path) -> sp.csc_matrix:
    indptr = np.load(folder / "indptr.npy")
    indices = np.fromfile(folder / "indices.u32", np.uint32).astype(np.int32)
    data = np.fromfile(folder / "data.f32", np.float32)
    return sp.csr_matrix(
        (data, indices, indptr), shape=(len(indptr) - 1, VOCABULARY)
    ).tocsc()


# --- Index builds (each in its own process: see build())

#: Seismic's build parameters (--seismic-build), the same for both
#: implementations
SEISMIC = {
    "n_postings": 4000,
    "centroid_fraction": 0.1,
    "summary_energy": 0.4,
    "max_fraction": 1.5,
}


def build_exhaustive(data: Path, out: Path):
    from splade.engines.exhaustive import IndexBuilder

    builder = IndexBuilder(out, VOCABULARY, memory_budget=512 * 2**20)
    for first, indptr, terms, weights in iter_chunks(data):
        builder.add_batch(first, indptr, terms, weights)
    builder.finish()


def build_raw(data: Path, out: Path):
    import impact_index

    options = impact_index.BuilderOptions()
    options.in_memory_threshold = 128  # as xpmir's SparseRetrieverIndexBuilder
    builder = impact_index.IndexBuilder(str(out), options)
    for first, indptr, terms, weights in iter_chunks(data):
        terms = terms.astype(np.uint64)
        for i in range(len(indptr) - 1):
            builder.add(
                first + i,
                terms[indptr[i] : indptr[i + 1]],
                weights[indptr[i] : indptr[i + 1]],
            )
    builder.build(False)


def build_compressed(raw: Path, out: Path):
    import impact_index

    index = impact_index.Index.load(str(raw), False)
    index.compress(str(out), block_size=128, nbits=16, in_memory=False)


def build_pisa(exhaustive: Path, out: Path):
    """The engine's conversion (splade/pisa.py), from the exhaustive index"""
    from splade.engines.exhaustive import SparseIndex
    from splade.engines.pisa.index import write_index

    write_index(SparseIndex.load(exhaustive, mmap=True), out, scale=100.0)


def bmp_builder(block_size: int):
    def build_bmp(exhaustive: Path, out: Path):
        """The engine's conversion (splade/workarounds/bmp.py)"""
        from splade.engines.bmp.index import write_index
        from splade.engines.exhaustive import SparseIndex

        out.mkdir(parents=True, exist_ok=True)
        index = SparseIndex.load(exhaustive, mmap=True)
        write_index(index, out / "index.bmp", block_size=block_size)

    return build_bmp


def bmp_reordered_builder(block_size: int):
    def build_bmp(workdir: Path, out: Path):
        """The engine's conversion with bmp.reorder (documents ordered by
        impact-index's recursive graph bisection, from the raw index: the
        engine builds a temporary one)"""
        import impact_index

        from splade.engines.bmp.index import write_index
        from splade.engines.exhaustive import SparseIndex

        out.mkdir(parents=True, exist_ok=True)
        raw = impact_index.Index.load(str(workdir / "raw"), False)
        reordered = raw.reorder(
            str(out / "bisection"), nbits=16, in_memory=False, leaf_size=block_size
        )
        order = np.asarray(reordered.reorder_map(), np.int64)
        del reordered
        shutil.rmtree(out / "bisection")
        index = SparseIndex.load(workdir / "exhaustive", mmap=True)
        write_index(index, out / "index.bmp", block_size=block_size, order=order)

    return build_bmp


def build_seismic(raw: Path, out: Path):
    """impact-index's Seismic port (what the engine converts)"""
    import impact_index

    out.mkdir(parents=True, exist_ok=True)
    index = impact_index.Index.load(str(raw), False)
    index.to_seismic(str(out), **SEISMIC)


def build_pyseismic(data: Path, out: Path):
    """The authors' package (pyseismic-lsr 0.5.4), one thread"""
    import seismic

    dataset = seismic.SeismicDataset(VOCABULARY)
    for first, indptr, terms, weights in iter_chunks(data):
        ids = [str(first + i) for i in range(len(indptr) - 1)]
        dataset.add_documents_by_id(ids, terms.astype(np.int64), weights, indptr)
    index = seismic.SeismicIndex.build_from_dataset(dataset, **SEISMIC, num_threads=1)
    del dataset
    out.mkdir(parents=True, exist_ok=True)
    index.save(str(out / "index"))


BUILDERS = {
    "exhaustive": (build_exhaustive, "data"),
    "raw": (build_raw, "data"),
    "compressed16": (build_compressed, "raw"),
    "pisa": (build_pisa, "exhaustive"),
    "bmp16": (bmp_builder(16), "exhaustive"),
    "bmp32": (bmp_builder(32), "exhaustive"),
    "bmp16-bp": (bmp_reordered_builder(16), "data"),
    "bmp32-bp": (bmp_reordered_builder(32), "data"),
    "seismic": (build_seismic, "raw"),
    "pyseismic": (build_pyseismic, "data"),
}
#: builds whose parameters come from --seismic-build
PARAMETERS = {"seismic": SEISMIC, "pyseismic": SEISMIC}


def build(workdir: Path, name: str):
    """Runs a build in a child process; returns CPU and wall seconds, peak
    RSS (MiB) and index size (MiB)"""
    out = workdir / name
    parameters = PARAMETERS.get(name, {})
    if (out / "build.json").exists():  # measured by an earlier run
        stats = json.loads((out / "build.json").read_text())
        if stats.get("parameters", {}) == parameters:
            return stats
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    log = workdir / f"{name}.log"
    with log.open("w") as fp:
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--build",
                name,
                "--workdir",
                str(workdir),
                "--seismic-build",
                json.dumps(SEISMIC),
            ],
            stdout=fp,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        print(f"build of {name} failed (status {status}): see {log}", file=sys.stderr)
        return None
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    size -= (out / "peak_rss_kib").stat().st_size
    stats = {
        "build_s": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mib": int((out / "peak_rss_kib").read_text()) / 1024,
        "size_mib": size / 2**20,
        "parameters": parameters,
    }
    (out / "build.json").write_text(json.dumps(stats))
    return stats


# --- Search: name -> (index, opener); an opener returns (query, k) -> ids

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


def searchers(workdir: Path, available, seismic_grid=SEISMIC_GRID):
    import impact_index

    def exhaustive():
        from splade.engines.exhaustive import SparseIndex

        searcher = SparseIndex.load(workdir / "exhaustive").searcher()
        return lambda terms, weights, k: searcher.search(terms, weights, k)[0]

    def impact(name, method):
        def open_():
            index = impact_index.Index.load(str(workdir / name), True)
            search = getattr(index, method)

            def run(terms, weights, k):
                query = dict(zip(terms.tolist(), weights.tolist(), strict=True))
                return [r.docid for r in search(query, k)]

            return run

        return open_

    def pisa(algorithm):
        def open_():
            from splade.engines.pisa.index import PisaSearcher

            searcher = PisaSearcher(workdir / "pisa")

            def run(terms, weights, k):
                query = dict(zip(terms.tolist(), weights.tolist(), strict=True))
                return searcher.search(query, k, algorithm)[0]

            return run

        return open_

    def bmp(name, alpha, beta, implementation="bmp"):
        def open_():
            from splade.engines.bmp.index import Searcher

            searcher = Searcher(workdir / name / "index.bmp", implementation)

            def run(terms, weights, k):
                query = dict(zip(terms.tolist(), weights.tolist(), strict=True))
                return searcher.search(query, k, alpha, beta)[0]

            return run

        return open_

    def seismic_port(query_cut, heap_factor):
        def open_():
            searcher = impact_index.SeismicSearcher(str(workdir / "seismic"))

            def run(terms, weights, k):
                query = dict(zip(terms.tolist(), weights.tolist(), strict=True))
                found = searcher.search(
                    query, top_k=k, query_cut=query_cut, heap_factor=heap_factor
                )
                return [r.docid for r in found]

            return run

        return open_

    def pyseismic(query_cut, heap_factor):
        def open_():
            import seismic

            path = workdir / "pyseismic" / "index.index.seismic"
            index = seismic.SeismicIndex.load(str(path))
            kind = seismic.get_seismic_string()

            def run(terms, weights, k):
                found = index.search(
                    "q",
                    terms.astype(str).astype(kind),
                    weights.astype(np.float32),
                    k,
                    query_cut,
                    heap_factor,
                )
                return [int(doc) for _, _, doc in found]

            return run

        return open_

    engines = {}
    if "exhaustive" in available:
        engines["exhaustive (exact)"] = ("exhaustive", exhaustive)
    if "raw" in available:
        engines["impact-index MaxScore (exact)"] = (
            "raw",
            impact("raw", "search_maxscore"),
        )
        engines["impact-index WAND (exact)"] = ("raw", impact("raw", "search_wand"))
    if "compressed16" in available:
        engines["impact-index MaxScore, compressed 16 bits"] = (
            "compressed16",
            impact("compressed16", "search_maxscore"),
        )
    if "pisa" in available:
        engines["PISA block-max MaxScore"] = ("pisa", pisa("block_max_maxscore"))
        engines["PISA block-max WAND"] = ("pisa", pisa("block_max_wand"))
    for name in ("bmp16", "bmp32", "bmp16-bp", "bmp32-bp"):
        if name not in available:
            continue
        size = name[3:5]
        reordered = ", reordered" if name.endswith("-bp") else ""
        for alpha, beta in BMP_SETTINGS:
            label = f"BMP blocks={size}{reordered} alpha={alpha}"
            engines[label] = (name, bmp(name, alpha, beta))
        label = f"BMP blocks={size}{reordered} alpha=1.0, impact-index's searcher"
        engines[label] = (name, bmp(name, 1.0, 1.0, "impact-index"))
    for cut, heap in seismic_grid:
        if "seismic" in available:
            label = f"Seismic (impact-index) query_cut={cut} heap_factor={heap}"
            engines[label] = ("seismic", seismic_port(cut, heap))
        if "pyseismic" in available:
            label = f"Seismic (pyseismic) query_cut={cut} heap_factor={heap}"
            engines[label] = ("pyseismic", pyseismic(cut, heap))
    return engines


def milliseconds(cpu, wall):
    cpu = np.array(cpu) * 1000
    return float(cpu.mean()), float(np.percentile(cpu, 95)), 1000 * np.mean(wall)


#: CPU seconds after which an engine's timing stops (at least
#: MIN_QUERIES queries are timed): --budget
BUDGET = {"seconds": 0.0}
MIN_QUERIES = 200


def timed(search, queries, k):
    """Results, and per-query milliseconds: (CPU mean, CPU p95, wall mean)

    The CPU time of the process is the latency on an idle core; the wall
    time also counts waits for a core of the shared machine. A slow engine
    is timed on the first queries only (``BUDGET``).
    """
    cpu, wall, results = [], [], []
    for q in range(queries.shape[0]):
        if BUDGET["seconds"] and q >= MIN_QUERIES and sum(cpu) > BUDGET["seconds"]:
            break
        a, b = queries.indptr[q], queries.indptr[q + 1]
        terms, weights = queries.indices[a:b].astype(np.int64), queries.data[a:b]
        start, start_cpu = time.perf_counter(), time.process_time()
        results.append(search(terms, weights, k))
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return results, milliseconds(cpu, wall)


def recall10(results, exact_tops):
    """Mean fraction of the exact top-10 (documents with a positive score)
    found in the first 10 results"""
    values = [
        len(set(np.asarray(found[:10]).tolist()) & set(top.tolist())) / len(top)
        for found, top in zip(results, exact_tops, strict=True)
        if len(top)
    ]
    return float(np.mean(values))


def brute_force(workdir: Path, queries):
    """The exact top-10 of each query, and scipy's timings"""
    matrix = load_matrix(workdir)
    exact, timings = [], {}
    for k in (10, 1000):
        cpu, wall = [], []
        for q in range(queries.shape[0]):
            a, b = queries.indptr[q], queries.indptr[q + 1]
            terms, weights = queries.indices[a:b], queries.data[a:b]
            start, start_cpu = time.perf_counter(), time.process_time()
            scores = matrix[:, terms] @ weights
            kk = min(k, len(scores) - 1)
            top = np.argpartition(-scores, kk)[:kk]
            top = top[np.argsort(-scores[top])]
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start)
            if k == 10:
                exact.append(top[scores[top] > 0])
        timings[f"k{k}"] = milliseconds(cpu, wall)
    size = (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20
    return exact, {
        "engine": "scipy brute force (exact)",
        "index": None,
        "size_mib": size,
        "recall": 1.0,
        **timings,
    }


def run(workdir: Path, name: str, skip=(), k1000_queries: int = 0, exclude=()):
    """Builds every index, then measures every engine; returns the builds and
    the rows (kept in ``results.json``: remove it to measure again)"""
    results_file = workdir / "results.json"
    if results_file.exists():
        return json.loads(results_file.read_text())
    builds = {}
    for builder in BUILDERS:
        if builder in skip:
            continue
        print(f"[{name}] building {builder}", flush=True)
        builds[builder] = build(workdir, builder)
        if builds[builder]:
            print(f"[{name}]   {builds[builder]}", flush=True)
    available = {b for b, v in builds.items() if v}

    queries = sp.load_npz(workdir / "queries.npz").tocsr()
    queries.sort_indices()
    exact, reference = brute_force(workdir, queries)
    rows = [reference]
    for engine, (index, opener) in searchers(workdir, available).items():
        if any(part in engine for part in exclude):
            continue
        print(f"[{name}] searching with {engine}", flush=True)
        search = opener()
        a, b = queries.indptr[0], queries.indptr[1]
        search(queries.indices[a:b].astype(np.int64), queries.data[a:b], 10)
        results, k10 = timed(search, queries, 10)
        subset = queries[:k1000_queries] if k1000_queries else queries
        k1000_results, k1000 = timed(search, subset, 1000)
        rows.append(
            {
                "engine": engine,
                "index": index,
                "size_mib": builds[index]["size_mib"],
                "k10": k10,
                "k1000": k1000,
                "recall": recall10(results, exact[: len(results)]),
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

    for index in BUILDERS:
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


def write_section(markdown: Path, section: str):
    """Replaces (or appends) the ``## Retrieval engines`` section"""
    title = "## Retrieval engines"
    text = markdown.read_text() if markdown.exists() else "# Benchmarks\n"
    if title in text:
        before, after = text.split(title, 1)
        rest = after.find("\n## ")
        after = after[rest + 1 :] if rest >= 0 else ""
        text = before + section.rstrip() + "\n\n" + after
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    markdown.write_text(text)


def collection_folder(args, name: str, docs: int) -> tuple:
    """(folder, label) of a collection, made if needed"""
    if name == "scifact":
        folder = args.workdir / "scifact"
        if not (folder / "queries.npz").exists():
            scifact(folder, args.workdir)
        return folder, "scifact (5,183 docs, 300 queries, splade-bert-tiny)"
    if name == "mix":
        folder = args.workdir / f"mix-{docs}-{args.queries}"
        if not (folder / "queries.npz").exists():
            mix(folder, docs, args.queries, args.workdir)
        return folder, f"splade-mix ({docs:,} docs, {args.queries:,} real queries)"
    folder = args.workdir / f"synthetic-{docs}-{args.queries}"
    if not (folder / "queries.npz").exists():
        synthetic(folder, docs, args.queries)
    return folder, f"synthetic ({docs:,} docs, {args.queries:,} queries)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default="100000,1000000", help="comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--collections", default="scifact,mix", help="scifact, mix, synthetic"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/splade-bench"))
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument(
        "--skip",
        default="compressed16",
        help="indices not built, comma-separated, among: " + ", ".join(BUILDERS),
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
        f"(at least {MIN_QUERIES} queries; 0: all queries)",
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
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SEISMIC.update(json.loads(args.seismic_build))
    BUDGET["seconds"] = args.budget

    if args.build:  # child process: one index build
        function, source = BUILDERS[args.build]
        source = args.workdir if source == "data" else args.workdir / source
        function(source, args.workdir / args.build)
        # Peak RSS of this process since its exec (the rusage of a child
        # counts the pages that it shared with its parent before the exec)
        status = Path("/proc/self/status").read_text()
        peak = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        (args.workdir / args.build / "peak_rss_kib").write_text(peak.split()[1])
        return

    # What the run imports (the bench extra), checked before any work
    skipped = set(args.skip.split(","))
    needed = {"matplotlib": "matplotlib"}
    needed |= {"pyterrier_pisa": "pyterrier-pisa"} if "pisa" not in skipped else {}
    needed |= {"seismic": "pyseismic-lsr"} if "pyseismic" not in skipped else {}
    if missing := [p for m, p in needed.items() if importlib.util.find_spec(m) is None]:
        sys.exit(f"Missing {', '.join(missing)}: pip install -e '.[bench]'")

    command = "nice -n 10 python bench/retrieval_engines.py " + " ".join(sys.argv[1:])
    sizes = [int(d) for d in args.docs.split(",")]
    results, by_kind = {}, {}
    for name in args.collections.split(","):
        for docs in sizes if name != "scifact" else [0]:
            folder, label = collection_folder(args, name, docs)
            skip = set(args.skip.split(","))
            if docs == max(sizes):
                skip |= set(args.skip_large.split(","))
            indptr = np.load(folder / "indptr.npy")
            queries = sp.load_npz(folder / "queries.npz")
            stats = (
                f"{indptr[-1] / (len(indptr) - 1):.0f} non-zeros per document, "
                f"{queries.nnz / queries.shape[0]:.1f} per query"
            )
            exclude = [part for part in args.exclude.split(",") if part]
            results[label] = run(folder, label, skip, args.k1000_queries, exclude)
            results[label][1][0]["stats"] = stats
            for row in results[label][1]:
                row["total"] = queries.shape[0]
            if name != "scifact":
                by_kind.setdefault(name, []).append((docs, results[label]))
            print(f"\n### {label}: {stats}\n\n{table(*results[label])}\n", flush=True)

    png = args.output.parent / "bench" / "retrieval_engines.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(results, png)
    section = [
        "## Retrieval engines",
        "",
        f"Command: `{command}` (one thread, {os.uname().machine}, 2 cores "
        "shared with other work). Seismic's build parameters: "
        f"`{json.dumps(SEISMIC)}` (both implementations).",
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
    write_section(args.output, "\n".join(section))
    print("\n".join(section))
    print(f"Written in {args.output} and {png}")


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
        "query weights int(100 q) (`splade/pisa.py`); BMP stores int(s w) "
        "with the largest s for which no score overflows its 16-bit counter "
        "(`splade/workarounds/bmp.py`). An engine marked (n / m queries) "
        "was timed on the first n queries at k=10 and m at k=1000 (its "
        "recall@10 on those n), having used its CPU budget "
        f"({args.budget:.0f} s).\n"
    )


if __name__ == "__main__":
    main()
