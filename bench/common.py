"""What the benchmarks share: paths of ``../shared``, collections of sparse
vectors (files, the Zipf generator, splade-mix), per-query timers, builds in
a child process, and the BENCHMARKS.md section writer

A collection folder holds the documents as CSR arrays written chunk by
chunk (``indptr.npy``, ``indices.u32``, ``data.f32``: bounded memory at a
million documents) and the queries as a scipy ``queries.npz``.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

#: The repository's root (commands run from there)
ROOT = Path(__file__).resolve().parents[1]
#: ``../shared``: offline data and models, beside the repository
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
MODEL = SHARED / "models" / "splade-bert-tiny"
BENCHMARKS = ROOT / "BENCHMARKS.md"
#: BERT's vocabulary (term ids of the SPLADE vectors)
VOCABULARY = 30522
#: Documents per chunk when reading or writing a collection
CHUNK = 50_000


# --- Arguments


def shown(path: Path) -> str:
    """A path as ``--help`` states it: relative to the repository's root
    when below its parent (``../shared/...``)"""
    try:
        return os.path.relpath(path, ROOT) if ROOT.parent in path.parents else str(path)
    except ValueError:  # (another drive)
        return str(path)


def add_path(parser: argparse.ArgumentParser, flag: str, default: Path, what: str):
    """A data folder or model argument, its default stated in ``--help``"""
    parser.add_argument(
        flag,
        type=Path,
        default=default,
        help=f"{what} (default: {shown(default)})",
    )


def require(parser: argparse.ArgumentParser, path: Path, what: str, flag: str):
    """Stops with a clear message (before any work) when ``path`` is absent"""
    if not Path(path).exists():
        parser.error(
            f"{what} not found: {path} (give it with {flag}; the default is "
            f"{shown(Path(path))} when the repository sits beside ../shared)"
        )


def require_modules(
    parser: argparse.ArgumentParser, *modules: str, extras: str = "bench"
):
    """Stops with a clear message (before any work) when a module a
    benchmark imports is not installed (the ``bench`` extra of
    pyproject.toml declares them; ``extras``: those to install)"""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        parser.error(
            f"missing Python modules: {', '.join(missing)} (install the "
            f"benchmarks' dependencies: pip install -e '.[{extras}]')"
        )


def one_thread(numba: bool = True):
    """One thread in every library that starts a pool of its own (rayon,
    OpenMP, MKL and, with ``numba``, numba): call it first in ``main``,
    before they are imported; build processes started afterwards inherit
    it"""
    variables = ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
    for variable in variables + (["NUMBA_NUM_THREADS"] if numba else []):
        os.environ[variable] = "1"


# --- Collections (files)


def write_collection(folder: Path, chunks, queries: Optional[sp.csr_matrix]):
    """Writes a collection: ``chunks`` of documents (CSR matrices, in order)
    and the queries (None: written afterwards, :func:`write_queries`)"""
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
    if queries is not None:
        write_queries(folder, queries)


def write_queries(folder: Path, queries: sp.csr_matrix):
    sp.save_npz(folder / "queries.npz", sp.csr_matrix(queries))


def is_collection(folder: Path) -> bool:
    return (folder / "queries.npz").exists() and (folder / "indptr.npy").exists()


def iter_chunks(
    folder: Path, chunk: int = CHUNK
) -> Iterator[Tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The documents of a collection, chunk by chunk: (first document,
    indptr, term ids (uint32), weights (float32))"""
    indptr = np.load(folder / "indptr.npy")
    for start in range(0, len(indptr) - 1, chunk):
        stop = min(start + chunk, len(indptr) - 1)
        a, b = int(indptr[start]), int(indptr[stop])
        terms = np.fromfile(folder / "indices.u32", np.uint32, b - a, offset=4 * a)
        weights = np.fromfile(folder / "data.f32", np.float32, b - a, offset=4 * a)
        yield start, indptr[start : stop + 1] - a, terms, weights


def load_documents(folder: Path) -> sp.csr_matrix:
    """The documents of a collection, as one CSR matrix"""
    indptr = np.load(folder / "indptr.npy")
    indices = np.fromfile(folder / "indices.u32", np.uint32).astype(np.int32)
    data = np.fromfile(folder / "data.f32", np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, VOCABULARY))


def load_queries(folder: Path) -> sp.csr_matrix:
    """The queries of a collection (CSR, term ids sorted in each row)"""
    queries = sp.load_npz(folder / "queries.npz").tocsr()
    queries.sort_indices()
    return queries


def query(queries: sp.csr_matrix, q: int) -> Tuple[np.ndarray, np.ndarray]:
    """(term ids int64, weights float32) of a query"""
    a, b = queries.indptr[q], queries.indptr[q + 1]
    return queries.indices[a:b].astype(np.int64), queries.data[a:b]


def collection_stats(folder: Path) -> str:
    indptr = np.load(folder / "indptr.npy")
    queries = sp.load_npz(folder / "queries.npz")
    return (
        f"{indptr[-1] / (len(indptr) - 1):.0f} non-zeros per document, "
        f"{queries.nnz / queries.shape[0]:.1f} per query"
    )


# --- The Zipf generator (SPLADE-shaped random vectors)


def zipf_vectors(
    rng: np.random.Generator,
    count: int,
    *,
    draws: int,
    exponent: float,
    permutation: np.ndarray,
    mean: float,
    sigma: float,
    offset: float = 1.0,
    max_terms: Optional[int] = None,
    slope: float = 0.1,
) -> sp.csr_matrix:
    """``count`` sparse vectors over ``len(permutation)`` terms: each draws
    ``draws`` ranks from a Zipf law (probability of rank ``r``, from 0,
    proportional to ``(r + offset) ** -exponent``), keeps the first
    ``max_terms`` distinct ones (all when None), and maps a rank to the term
    id ``permutation[rank]``; weights are log-normal, of mean
    ``mean + slope * log(1 + rank)`` (rarer terms weigh more, as SPLADE's
    learned weights do) and deviation ``sigma``. Term ids are sorted in
    each row."""
    vocabulary = len(permutation)
    cdf = np.cumsum((np.arange(vocabulary, dtype=np.float64) + offset) ** -exponent)
    cdf /= cdf[-1]
    ranks = np.minimum(np.searchsorted(cdf, rng.random((count, draws))), vocabulary - 1)
    # the distinct ranks of each row, in draw order
    order = np.argsort(ranks, axis=1, kind="stable")
    ordered = np.take_along_axis(ranks, order, axis=1)
    first = np.ones_like(ordered, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    distinct = np.zeros_like(first)
    np.put_along_axis(distinct, order, first, axis=1)
    if max_terms is not None:
        distinct &= np.cumsum(distinct, axis=1) <= max_terms
    rows, columns = np.nonzero(distinct)
    kept = ranks[rows, columns]
    indptr = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=count), out=indptr[1:])
    term_ids = permutation[kept].astype(np.int64)
    by_term = np.lexsort((term_ids, rows))
    kept, term_ids = kept[by_term], term_ids[by_term]
    weights = rng.lognormal(mean + slope * np.log1p(kept), sigma).astype(np.float32)
    return sp.csr_matrix(
        (weights, term_ids.astype(np.int32), indptr), shape=(count, vocabulary)
    )


# --- splade-mix: real SPLADE vectors mixed to any number of documents

#: The local collections whose documents and queries are encoded
MIX_SOURCES = ("scifact", "cranfield", "cisi")
NEIGHBOURS = 20
JITTER = 0.1
SHARE = 0.5


def read_texts(path: Path) -> List[str]:
    with path.open(encoding="utf-8") as fp:
        return [line.rstrip("\n").split("\t", 1)[-1] for line in fp if line.strip()]


def encode(model: Path, texts, maxlen=256, batch_size=16) -> sp.csr_matrix:
    """SPLADE-max vectors of the texts (sorted by length for less padding,
    returned in the given order), with the reference encoder
    (``splade.encoders.transformers_splade_max``), one torch thread"""
    import torch

    from splade.encoders import transformers_splade_max

    torch.set_num_threads(1)
    order = np.argsort([len(t) for t in texts], kind="stable")
    sorted_texts = [texts[i] for i in order]
    batches = transformers_splade_max(model, sorted_texts, maxlen, batch_size)
    rows = sp.vstack([sp.csr_matrix(b.numpy()) for b in batches]).tocsr()
    matrix = rows[np.argsort(order)]
    matrix.sort_indices()
    return matrix.astype(np.float32)


def encoded(cache: Path, data: Path, model: Path, name: str, texts: str):
    """The vectors of ``data/<name>/<texts>`` (``docs.tsv`` or a queries
    file), encoded once and cached as ``cache/<name>-<texts>.npz``
    (documents: ``<name>-docs.npz``)"""
    cache.mkdir(parents=True, exist_ok=True)
    stem = "docs" if texts == "docs.tsv" else texts
    path = cache / f"{name}-{stem}.npz"
    if not path.exists():
        start = time.process_time()
        matrix = encode(model, read_texts(data / name / texts))
        sp.save_npz(path, matrix)
        print(
            f"encoded {matrix.shape[0]} texts of {name}/{texts} in "
            f"{time.process_time() - start:.0f} CPU s",
            flush=True,
        )
    return sp.load_npz(path).tocsr()


def real_vectors(cache: Path, data: Path, model: Path):
    """(documents, collection number of each document, queries): the real
    vectors of :data:`MIX_SOURCES`"""
    docs, owners, queries = [], [], []
    for number, name in enumerate(MIX_SOURCES):
        docs.append(encoded(cache, data, model, name, "docs.tsv"))
        owners.append(np.full(docs[-1].shape[0], number, np.int32))
        queries.append(encoded(cache, data, model, name, "queries.tsv"))
    return sp.vstack(docs).tocsr(), np.concatenate(owners), sp.vstack(queries).tocsr()


def neighbours(docs: sp.csr_matrix, owners: np.ndarray, count=NEIGHBOURS):
    """The ``count`` documents of largest dot product with each document,
    within its collection (itself excluded)"""
    result = np.zeros((docs.shape[0], count), np.int64)
    for owner in np.unique(owners):
        members = np.flatnonzero(owners == owner)
        block = docs[members]
        scores = (block @ block.T).toarray()
        np.fill_diagonal(scores, -np.inf)
        top = np.argpartition(-scores, count, axis=1)[:, :count]
        result[members] = members[top]
    return result


def mix(rng, docs: sp.csr_matrix, near: np.ndarray, count: int) -> sp.csr_matrix:
    """``count`` documents, each mixing a real document and a neighbour"""
    first = rng.integers(0, docs.shape[0], count)
    second = near[first, rng.integers(0, near.shape[1], count)]
    share = rng.uniform(SHARE, 1.0, count)
    pair = sp.vstack([docs[first], docs[second]]).tocoo()
    rows = pair.row % count
    # terms of the first kept with probability share, of the second with
    # probability 1 - share
    from_first = pair.row < count
    keep = rng.random(len(rows)) < np.where(from_first, share[rows], 1 - share[rows])
    rows, terms, values = rows[keep], pair.col[keep], pair.data[keep]
    # a term kept from both: the larger weight (sort by row, term, weight and
    # keep the last of each row and term)
    keys = rows.astype(np.int64) * VOCABULARY + terms
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    last = np.ones(len(keys), bool)
    last[:-1] = keys[1:] != keys[:-1]
    keys, values = keys[last], values[last]
    values = values * rng.lognormal(0.0, JITTER, len(values)).astype(np.float32)
    rows, terms = np.divmod(keys, VOCABULARY)
    matrix = sp.csr_matrix(
        (values.astype(np.float32), (rows, terms)), shape=(count, VOCABULARY)
    )
    matrix.sort_indices()
    return matrix


def splade_mix(
    folder: Path, docs_count: int, queries_count: int, cache: Path, data, model
):
    """Writes splade-mix (see :mod:`bench.splade_mix`): ``docs_count``
    mixed documents, a seeded sample of ``queries_count`` real queries (the
    same whatever the number of documents)"""
    docs, owners, queries = real_vectors(cache, data, model)
    rng = np.random.default_rng(0)
    near = neighbours(docs, owners)
    chunks = (
        mix(rng, docs, near, min(CHUNK, docs_count - start))
        for start in range(0, docs_count, CHUNK)
    )
    chosen = np.random.default_rng(1).choice(
        queries.shape[0], min(queries_count, queries.shape[0]), False
    )
    write_collection(folder, chunks, queries[np.sort(chosen)])


# --- Timers


def milliseconds(cpu: Sequence[float], wall: Sequence[float]):
    """(mean CPU ms, p95 CPU ms, mean wall ms) per query"""
    cpu = np.asarray(cpu) * 1000
    return float(cpu.mean()), float(np.percentile(cpu, 95)), 1000 * float(np.mean(wall))


def per_query(
    search: Callable,
    queries: sp.csr_matrix,
    k: int,
    budget: float = 0.0,
    least=200,
    clock: Callable[[], float] = time.process_time,
):
    """Runs ``search(term ids, weights, k)`` on each query, one at a time:
    (results, CPU seconds per query, wall seconds per query)

    The CPU time of the process (``clock``: ``time.process_time``) is the
    latency on an idle core; the wall time also counts waits for a core of a
    shared machine. With a ``budget`` (CPU seconds), timing stops once it is
    spent and at least ``least`` queries were timed.
    """
    cpu, wall, results = [], [], []
    spent = 0.0
    for q in range(queries.shape[0]):
        if budget and q >= least and spent > budget:
            break
        terms, weights = query(queries, q)
        start, start_cpu = time.perf_counter(), clock()
        results.append(search(terms, weights, k))
        cpu.append(clock() - start_cpu)
        wall.append(time.perf_counter() - start)
        spent += cpu[-1]
    return results, cpu, wall


def exact_tops(matrix: sp.csc_matrix, queries: sp.csr_matrix, k: int = 10):
    """The exact top-k of each query (scipy brute force, documents with a
    score > 0, ties broken by the smaller document id)"""
    tops = []
    for q in range(queries.shape[0]):
        terms, weights = query(queries, q)
        scores = matrix[:, terms] @ weights
        kk = min(k, len(scores))
        top = np.argpartition(-scores, kk - 1)[:kk]
        top = top[np.lexsort((top, -scores[top]))]
        tops.append(top[scores[top] > 0])
    return tops


def recall(results, exact: Sequence[np.ndarray], k: int = 10) -> float:
    """Mean fraction of the exact top-k found in the first k results (over
    the queries whose exact top-k is not empty)"""
    values = [
        len(set(np.asarray(found[:k]).tolist()) & set(top[:k].tolist())) / len(top[:k])
        for found, top in zip(results, exact, strict=False)
        if len(top)
    ]
    return float(np.mean(values))


# --- Index builds, each in a child process


def peak_rss_kib() -> int:
    """Peak resident memory of this process since its exec (VmHWM; the
    ``ru_maxrss`` of a child also counts the pages it shared with its parent
    before the exec)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def build_exhaustive(data: Path, out: Path, memory_budget_mib: int = 512):
    """The exhaustive engine's index (bounded memory)"""
    from splade.engines.exhaustive import IndexBuilder

    builder = IndexBuilder(out, VOCABULARY, memory_budget=memory_budget_mib * 2**20)
    for first, indptr, terms, weights in iter_chunks(data):
        builder.add_batch(first, indptr, terms, weights)
    builder.finish()
    (out / "runs").write_text(str(builder.runs))


def build_impact_index(data: Path, out: Path):
    """impact-index's index (what xpmir's ``SparseRetrieverIndexBuilder``
    builds: the MaxScore and WAND engines search it, the Seismic engine
    converts it)"""
    import impact_index

    options = impact_index.BuilderOptions()
    options.in_memory_threshold = 128  # as xpmir's SparseRetrieverIndexBuilder
    builder = impact_index.IndexBuilder(str(out), options)
    for first, indptr, terms, weights in iter_chunks(data):
        terms = terms.astype(np.uint64)
        for i in range(len(indptr) - 1):
            a, b = indptr[i], indptr[i + 1]
            builder.add(first + i, terms[a:b], weights[a:b])
    builder.build(False)


def build_compressed(raw: Path, out: Path, nbits: int = 16):
    """impact-index's compression (the MaxScore engine's ``compression``)"""
    import impact_index

    index = impact_index.Index.load(str(raw), False)
    index.compress(str(out), block_size=128, nbits=nbits, in_memory=False)


def build_pisa(exhaustive: Path, out: Path, scale: float = 100.0):
    """The PISA engine's conversion (:func:`splade.engines.pisa.index.write_index`)"""
    from splade.engines.exhaustive import SparseIndex
    from splade.engines.pisa.index import write_index

    write_index(SparseIndex.load(exhaustive, mmap=True), out, scale=scale)


def build_bmp(exhaustive: Path, out: Path, block_size: int = 32, reorder=False):
    """The BMP engine's conversion (:func:`splade.engines.bmp.index.write_index`),
    with ``reorder``: documents ordered by recursive graph bisection
    (:func:`splade.engines.bmp.bisection_order`), as ``bmp.reorder`` does"""
    from splade.engines.bmp import bisection_order
    from splade.engines.bmp.index import write_index
    from splade.engines.exhaustive import SparseIndex

    out.mkdir(parents=True, exist_ok=True)
    index = SparseIndex.load(exhaustive, mmap=True)
    order = None
    if reorder:
        order = bisection_order(index, out / "bisection", block_size)
        shutil.rmtree(out / "bisection")
    write_index(index, out / "index.bmp", block_size=block_size, order=order)


def build_seismic(raw: Path, out: Path, **parameters):
    """impact-index's Seismic port (the Seismic engine's conversion):
    ``n_postings``, ``centroid_fraction``, ``summary_energy``,
    ``max_fraction``, ``knn``"""
    import impact_index

    out.mkdir(parents=True, exist_ok=True)
    impact_index.Index.load(str(raw), False).to_seismic(str(out), **parameters)


def build_pyseismic(data: Path, out: Path, knn: int = 0, **parameters):
    """The authors' package (pyseismic-lsr), one thread; with ``knn``, its
    k-NN graph (``build_knn``: neighbours found with the index itself)"""
    import seismic

    dataset = seismic.SeismicDataset(VOCABULARY)
    for first, indptr, terms, weights in iter_chunks(data):
        ids = [str(first + i) for i in range(len(indptr) - 1)]
        dataset.add_documents_by_id(ids, terms.astype(np.int64), weights, indptr)
    index = seismic.SeismicIndex.build_from_dataset(
        dataset, **parameters, num_threads=1
    )
    del dataset
    out.mkdir(parents=True, exist_ok=True)
    index.save(str(out / "index"))
    if knn:
        index.build_knn(knn)
        index.save_knn(str(out / "knn"))


def build_pruned(exhaustive: Path, out: Path, postings: int = 2000):
    """The pruned engine's conversion (:func:`splade.engines.pruned.write_index`)"""
    from splade.engines.exhaustive import SparseIndex
    from splade.engines.pruned import write_index

    write_index(SparseIndex.load(exhaustive, mmap=True), out, postings)


#: Index kinds: name -> (build function, what it reads: ``data`` (the
#: collection) or the kind of another index)
BUILDS = {
    "exhaustive": (build_exhaustive, "data"),
    "raw": (build_impact_index, "data"),
    "compressed": (build_compressed, "raw"),
    "pisa": (build_pisa, "exhaustive"),
    "bmp": (build_bmp, "exhaustive"),
    "seismic": (build_seismic, "raw"),
    "pyseismic": (build_pyseismic, "data"),
    "pruned": (build_pruned, "exhaustive"),
}


def build(folder: Path, name: str, kind: str, parameters: Optional[dict] = None):
    """Builds the index ``folder/name`` of kind ``kind`` (:data:`BUILDS`)
    from the collection in ``folder`` (or the index it reads), in a child
    process (``python -m bench.common``), and returns its measures, kept in
    ``folder/name/build.json``: CPU and wall seconds, peak RSS (MiB), size
    (MiB) and the parameters. An index whose ``build.json`` has the same
    parameters is not built again. None if the build failed."""
    parameters = parameters or {}
    out = folder / name
    if (out / "build.json").exists():
        stats = json.loads((out / "build.json").read_text())
        if stats.get("parameters", {}) == parameters:
            return stats
    shutil.rmtree(out, ignore_errors=True)
    source = BUILDS[kind][1]
    source = folder if source == "data" else folder / source
    command = [sys.executable, "-m", "bench.common", kind, str(source), str(out)]
    command.append(json.dumps(parameters))
    start = time.perf_counter()
    log = folder / f"{name}.log"
    with log.open("w") as fp:
        process = subprocess.Popen(
            command, stdout=fp, stderr=subprocess.STDOUT, cwd=ROOT
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        print(f"build of {out} failed (status {status}): see {log}", flush=True)
        return None
    rss = out / "peak_rss_kib"
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    stats = {
        "build_s": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mib": int(rss.read_text()) / 1024,
        "size_mib": (size - rss.stat().st_size) / 2**20,
        "parameters": parameters,
    }
    (out / "build.json").write_text(json.dumps(stats))
    return stats


def _build_child(argv):
    """``python -m bench.common KIND SOURCE OUT PARAMETERS``: one build"""
    kind, source, out, parameters = argv
    function, _ = BUILDS[kind]
    out = Path(out)
    function(Path(source), out, **json.loads(parameters))
    out.mkdir(parents=True, exist_ok=True)
    (out / "peak_rss_kib").write_text(str(peak_rss_kib()))


# --- Searches: (term ids, weights, k) -> document ids


def as_dict(terms: np.ndarray, weights: np.ndarray) -> dict:
    return dict(zip(terms.tolist(), weights.tolist(), strict=True))


def open_search(kind: str, folder: Path, **settings) -> Callable:
    """The search function of an index built by :func:`build`, through the
    engine's public interface: ``(term ids, weights, k) -> document ids``

    :param kind: ``exhaustive``, ``maxscore`` or ``wand`` (on a ``raw`` or
        ``compressed`` index), ``pisa``, ``bmp``, ``seismic``, ``pyseismic``,
        ``pruned``
    :param settings: the engine's search settings (``algorithm`` of PISA;
        ``alpha``, ``beta`` and ``implementation`` of BMP; ``query_cut``,
        ``heap_factor`` and ``n_knn`` of Seismic; ``candidates`` and
        ``query_terms`` of pruned)
    """
    if kind == "exhaustive":
        from splade.engines.exhaustive import SparseIndex

        searcher = SparseIndex.load(folder).searcher(**settings)
        return lambda terms, weights, k: searcher.search(terms, weights, k)[0]
    if kind in ("maxscore", "wand"):
        import impact_index

        index = impact_index.Index.load(str(folder), True)
        method = getattr(index, f"search_{kind}")
        return lambda terms, weights, k: [
            r.docid for r in method(as_dict(terms, weights), k)
        ]
    if kind == "pisa":
        from splade.engines.pisa.index import PisaSearcher

        searcher = PisaSearcher(folder)
        return lambda terms, weights, k: searcher.search(
            as_dict(terms, weights), k, **settings
        )[0]
    if kind == "bmp":
        from splade.engines.bmp.index import Searcher

        implementation = settings.pop("implementation", "bmp")
        searcher = Searcher(folder / "index.bmp", implementation)
        return lambda terms, weights, k: searcher.search(
            as_dict(terms, weights), k, **settings
        )[0]
    if kind == "seismic":
        import impact_index

        searcher = impact_index.SeismicSearcher(str(folder))
        return lambda terms, weights, k: [
            r.docid for r in searcher.search(as_dict(terms, weights), k, **settings)
        ]
    if kind == "pruned":
        from splade.engines.pruned import PrunedSearcher

        searcher = PrunedSearcher(folder)
        return lambda terms, weights, k: searcher.search(terms, weights, k, **settings)[
            0
        ]
    if kind == "pyseismic":
        import seismic

        index = seismic.SeismicIndex.load(str(folder / "index.index.seismic"))
        if settings.get("n_knn"):
            index.load_knn(str(folder / "knn.knn.seismic"), settings["n_knn"])
        string = seismic.get_seismic_string()
        cut, heap = settings["query_cut"], settings["heap_factor"]
        n_knn = settings.get("n_knn", 0)
        return lambda terms, weights, k: [
            int(doc)
            for _, _, doc in index.search(
                "q", terms.astype(str).astype(string), weights, k, cut, heap, n_knn
            )
        ]
    raise ValueError(f"unknown engine {kind!r}")


# --- Timers of torch code (CPU or GPU)


def synchronize(device: str):
    """Waits for the device's kernels (CUDA runs them asynchronously)"""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def median_time(function: Callable, device: str, repeat: int = 3) -> float:
    """Median wall seconds of ``function()`` over ``repeat`` calls, after a
    warm-up call (kernels compiled, caches filled)"""
    import statistics

    function()
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- BENCHMARKS.md


def write_section(title: str, text: str, path: Path = BENCHMARKS):
    """Replaces the section ``title`` (a ``## `` heading, up to the next
    one) of ``path`` with ``text`` (which starts with the heading), or
    appends it; the rest of the file is kept"""
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(content):
        content = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", content)
    else:
        content = content.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(content.rstrip("\n") + "\n")
    print(f"Written in the section {title!r} of {path}", file=sys.stderr)


def command_line(module: str) -> str:
    """The command that ran this benchmark, as BENCHMARKS.md shows it"""
    import shlex

    return " ".join(["python -m", module, *map(shlex.quote, sys.argv[1:])])


if __name__ == "__main__":
    _build_child(sys.argv[1:])
