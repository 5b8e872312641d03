"""Exhaustive term-at-a-time engine (``splade/exhaustive.py``) against the
references, on a synthetic SPLADE-shaped collection

Collection: ``--docs`` documents of (at most) 120 distinct terms drawn from a
Zipf law of exponent 1.2 over 30,522 ranks (BERT's vocabulary; term id =
a fixed random permutation of the rank), ``--queries`` queries of 20
distinct terms drawn from a Zipf law of exponent 0.9 over the same ranks;
positive log-normal weights, larger for rarer terms (as SPLADE's).

Printed, measured in the same run on one thread: CPU milliseconds per query
(``time.process_time`` around each query: mean and p95) at k=10 and k=1000
for

- scipy brute force: CSC column slices ``D[:, terms] @ weights`` (all the
  scores), then ``np.argpartition`` and a sort of the top-k;
- the exhaustive engine (``Searcher.search``), index in memory;
- PISA block-max MaxScore (``pyterrier-pisa``, if installed): impacts
  ``int(100 w)`` as pyterrier-pisa's ``toks`` indexer stores them (postings
  whose impact is 0 dropped), query weights ``100 w``, stemmer none;
- impact-index MaxScore (exact; ``Index.search_maxscore``), index in memory;

with the ratio to scipy, the top-10 agreement with scipy's exact top-10,
each build's wall time, peak RSS (each build in its own process) and index
size; then, with ``--threads N`` > 1, the throughput of
``Searcher.search_batch`` on N threads; and, with ``--design``, the
measurements behind the engine's choices (top-k by heap or argpartition,
touched list or full scan); with ``--convert``, ``from_impact_index`` timed
by method on the impact-index index. Files go to ``--workdir`` (default
``/tmp/bench-exhaustive-DOCS``); a build already measured there is reused
(remove its ``NAME.build.json`` to measure it again).

    python bench/exhaustive.py --docs 100000 --threads 2 --design --convert
    python bench/exhaustive.py --docs 1000000 --threads 2 --design --convert

(about 1.5 and 12 minutes on 2 cores). pyterrier-pisa's own ``toks``
indexer inverts in Python; the PISA build here writes the same binary
collection with numpy, from the exhaustive index (term-major already).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# One thread everywhere (set before the libraries start their pools)
for _variable in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

VOCABULARY = 30522
DOC_TERMS, DOC_DRAWS, DOC_EXPONENT = 120, 400, 1.2
QUERY_TERMS, QUERY_DRAWS, QUERY_EXPONENT = 20, 60, 0.9
CHUNK = 20_000
PISA_SCALE = 100.0


# --- Collection


def zipf_cdf(exponent: float) -> np.ndarray:
    weights = np.arange(1, VOCABULARY + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def sample(rng, count, terms, draws, cdf, permutation, mean, sigma):
    """CSR arrays of ``count`` vectors: the first ``terms`` distinct ranks of
    ``draws`` Zipf draws each; weights log-normal, growing with the rank"""
    ranks = np.searchsorted(cdf, rng.random((count, draws)))
    ranks = np.minimum(ranks, VOCABULARY - 1)
    order = np.argsort(ranks, axis=1, kind="stable")
    ordered = np.take_along_axis(ranks, order, axis=1)
    first = np.ones_like(ordered, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    distinct = np.zeros_like(first)
    np.put_along_axis(distinct, order, first, axis=1)
    keep = distinct & (np.cumsum(distinct, axis=1) <= terms)
    rows, columns = np.nonzero(keep)
    kept = ranks[rows, columns]
    indptr = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=count), out=indptr[1:])
    # sort each vector by term id
    term_ids = permutation[kept].astype(np.int64)
    by_term = np.lexsort((term_ids, rows))
    kept, term_ids = kept[by_term], term_ids[by_term]
    weights = rng.lognormal(mean + 0.1 * np.log1p(kept), sigma).astype(np.float32)
    return indptr, term_ids.astype(np.uint32), weights


def generate(folder: Path, docs: int, queries: int, seed: int = 0):
    """Documents as raw CSR arrays (written by chunks: bounded memory),
    queries as a ``.npz``"""
    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(VOCABULARY)
    cdf = zipf_cdf(DOC_EXPONENT)
    pointers, total = [np.zeros(1, np.int64)], 0
    with (
        (folder / "indices.u32").open("wb") as findices,
        (folder / "data.f32").open("wb") as fdata,
    ):
        for start in range(0, docs, CHUNK):
            count = min(CHUNK, docs - start)
            indptr, terms, weights = sample(
                rng, count, DOC_TERMS, DOC_DRAWS, cdf, permutation, -1.3, 0.6
            )
            terms.tofile(findices)
            weights.tofile(fdata)
            pointers.append(indptr[1:] + total)
            total += int(indptr[-1])
    np.save(folder / "indptr.npy", np.concatenate(pointers))
    indptr, terms, weights = sample(
        rng,
        queries,
        QUERY_TERMS,
        QUERY_DRAWS,
        zipf_cdf(QUERY_EXPONENT),
        permutation,
        -0.8,
        0.5,
    )
    np.savez(folder / "queries.npz", indptr=indptr, indices=terms, data=weights)
    (folder / "done").write_text("")


def document_batches(folder: Path):
    """(first document, indptr, term ids, weights) by chunks"""
    indptr = np.load(folder / "indptr.npy")
    for start in range(0, indptr.shape[0] - 1, CHUNK):
        stop = min(start + CHUNK, indptr.shape[0] - 1)
        a, b = int(indptr[start]), int(indptr[stop])
        terms = np.fromfile(folder / "indices.u32", np.uint32, b - a, offset=4 * a)
        weights = np.fromfile(folder / "data.f32", np.float32, b - a, offset=4 * a)
        yield start, indptr[start : stop + 1] - a, terms, weights


def load_queries(folder: Path):
    with np.load(folder / "queries.npz") as data:
        return data["indptr"], data["indices"].astype(np.int64), data["data"]


def load_csc(folder: Path):
    import scipy.sparse as sp

    indptr = np.load(folder / "indptr.npy")
    indices = np.fromfile(folder / "indices.u32", np.uint32).astype(np.int32)
    data = np.fromfile(folder / "data.f32", np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), (indptr.shape[0] - 1, VOCABULARY))
    return matrix.tocsc()


# --- Builds (each in its own process)


def build_exhaustive(data: Path, out: Path, budget_mib: int):
    from splade.engines.exhaustive import IndexBuilder

    builder = IndexBuilder(
        out, VOCABULARY, memory_budget=budget_mib * 2**20, tmp_folder=out / "_runs"
    )
    for first, indptr, terms, weights in document_batches(data):
        builder.add_batch(first, indptr, terms, weights)
    builder.finish()
    return builder.runs


def build_pisa(data: Path, out: Path, exhaustive: Path):
    """PISA's binary collection (what pyterrier-pisa's toks indexer writes:
    impacts int(100 w), zeros dropped, terms in string order), written from
    the exhaustive index (term-major already), then compressed by PISA"""
    import pyterrier_pisa
    from pyterrier_pisa import _pisathon

    from splade.engines.exhaustive import SparseIndex

    index = SparseIndex.load(exhaustive, mmap=True)
    out.mkdir(parents=True, exist_ok=True)
    num_docs = index.num_docs
    lengths = np.zeros(num_docs, np.int64)
    terms = []
    with (
        (out / "inv.docs").open("wb") as fdocs,
        (out / "inv.freqs").open("wb") as ffreqs,
    ):
        np.array([1, num_docs], np.uint32).tofile(fdocs)
        for t in sorted(range(index.num_terms), key=str):
            a, b = index.offsets[t], index.offsets[t + 1]
            impacts = (index.weights[a:b] * np.float32(PISA_SCALE)).astype(np.uint32)
            keep = impacts > 0
            docs, impacts = index.docids[a:b][keep], impacts[keep]
            if docs.shape[0] == 0:
                continue
            terms.append(t)
            np.array([docs.shape[0]], np.uint32).tofile(fdocs)
            docs.tofile(fdocs)
            np.array([docs.shape[0]], np.uint32).tofile(ffreqs)
            impacts.tofile(ffreqs)
            np.add.at(lengths, docs, impacts)
    sizes = np.concatenate([[num_docs], lengths]).astype(np.uint32)
    sizes.tofile(out / "inv.sizes")
    (out / "fwd.documents").write_text("".join(f"{d}\n" for d in range(num_docs)))
    (out / "fwd.terms").write_text("".join(f"{t}\n" for t in terms))
    _pisathon.build_binlex(str(out / "fwd.documents"), str(out / "fwd.doclex"))
    _pisathon.build_binlex(str(out / "fwd.terms"), str(out / "fwd.termlex"))
    (out / "pt_meta.json").write_text(
        json.dumps({"type": "sparse_index", "format": "pisa", "stemmer": "none"})
    )
    pisa = pyterrier_pisa.PisaIndex(str(out), stemmer="none", threads=1)
    pisa.quantized(num_results=10)  # compresses, computes the block-max data
    for name in ("inv.docs", "inv.freqs", "inv.sizes"):  # intermediates
        (out / name).unlink()


def build_impact(data: Path, out: Path):
    import impact_index

    options = impact_index.BuilderOptions()
    options.in_memory_threshold = 128  # as xpmir's SparseRetrieverIndexBuilder
    builder = impact_index.IndexBuilder(str(out), options)
    for first, indptr, terms, weights in document_batches(data):
        terms = terms.astype(np.uint64)
        for i in range(indptr.shape[0] - 1):
            a, b = indptr[i], indptr[i + 1]
            builder.add(first + i, terms[a:b], weights[a:b])
    builder.build(False)


def build(workdir: Path, name: str, budget_mib: int):
    """Runs a build in a child process: wall seconds, peak RSS (MiB), size"""
    out = workdir / name
    stats_file = workdir / f"{name}.build.json"
    if stats_file.exists():
        return json.loads(stats_file.read_text())
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, __file__, "--build", name, "--workdir", str(workdir)]
    command += ["--budget", str(budget_mib)]
    start = time.perf_counter()
    with (workdir / f"{name}.build.log").open("wb") as log:
        status = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if status != 0:
        print(f"build of {name} failed (status {status})", file=sys.stderr)
        return None
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    child = json.loads((workdir / f"{name}.child.json").read_text())
    stats = {
        "seconds": seconds,
        "rss_mib": child.pop("rss_kib") / 1024,
        "size_mib": size / 2**20,
        **child,
    }
    stats_file.write_text(json.dumps(stats))
    return stats


def child_build(workdir: Path, name: str, budget_mib: int):
    data = workdir / "data"
    child = {}
    if name == "exhaustive":
        child["runs"] = build_exhaustive(data, workdir / name, budget_mib)
    elif name == "pisa":
        build_pisa(data, workdir / name, workdir / "exhaustive")
    elif name == "impact":
        build_impact(data, workdir / name)
    else:
        raise ValueError(name)
    child["rss_kib"] = peak_rss_kib()
    (workdir / f"{name}.child.json").write_text(json.dumps(child))


def peak_rss_kib() -> int:
    """Peak resident memory of this process (VmHWM; the ``ru_maxrss`` that
    ``wait4`` reports also counts the parent's memory at the fork)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


# --- Search


def per_query(search, queries, k):
    """(results, CPU ms per query) of ``search(terms, weights, k)``"""
    indptr, terms, weights = queries
    results, cpu = [], []
    for q in range(indptr.shape[0] - 1):
        a, b = indptr[q], indptr[q + 1]
        start = time.process_time()
        results.append(search(terms[a:b], weights[a:b], k))
        cpu.append(time.process_time() - start)
    return results, 1000 * np.array(cpu)


def scipy_search(matrix):
    def search(terms, weights, k):
        scores = matrix[:, terms] @ weights
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return top[scores[top] > 0]

    return search


def exhaustive_search(searcher):
    return lambda terms, weights, k: searcher.search(terms, weights, k)[0]


def pisa_search(folder: Path):
    import pyterrier_pisa
    from pyterrier_pisa import _pisathon

    index = pyterrier_pisa.PisaIndex(str(folder), stemmer="none", threads=1)
    retriever = index.quantized(num_results=1000, query_algorithm="block_max_maxscore")
    retriever.reset_retrieval_context()
    buffers = {}

    def search(terms, weights, k):
        if k not in buffers:
            buffers[k] = (
                np.empty(k, np.int32),
                np.empty(k, dtype=object),
                np.empty(k, np.int32),
                np.empty(k, np.float32),
            )
        qidxs, docnos, ranks, scores = buffers[k]
        toks = {
            str(t): float(w) * PISA_SCALE for t, w in zip(terms, weights, strict=True)
        }
        size = _pisathon.retrieve(
            retriever._ctxt,
            "block_max_maxscore",
            [(0, toks)],
            k=k,
            threads=1,
            query_weighted=1,
            pretokenised=True,
            result_qidxs=qidxs,
            result_docnos=docnos,
            result_ranks=ranks,
            result_scores=scores,
        )
        return np.array([int(d) for d in docnos[:size]], np.int64)

    return search


def impact_search(folder: Path):
    import impact_index

    index = impact_index.Index.load(str(folder), True)

    def search(terms, weights, k):
        query = {int(t): float(w) for t, w in zip(terms, weights, strict=True)}
        return np.array([r.docid for r in index.search_maxscore(query, k)], np.int64)

    return search


def agreement(results, exact):
    """Mean fraction of the exact top-10 found in the first 10 results"""
    values = [
        len(set(found[:10].tolist()) & set(top[:10].tolist())) / len(top[:10])
        for found, top in zip(results, exact, strict=True)
        if len(top)
    ]
    return float(np.mean(values))


def measure(name, search, queries, rows, exact=None):
    print(f"  searching with {name}", flush=True)
    indptr, terms, weights = queries
    search(terms[indptr[0] : indptr[1]], weights[indptr[0] : indptr[1]], 10)
    results, k10 = per_query(search, queries, 10)
    _, k1000 = per_query(search, queries, 1000)
    rows.append(
        {
            "engine": name,
            "k10": (float(k10.mean()), float(np.percentile(k10, 95))),
            "k1000": (float(k1000.mean()), float(np.percentile(k1000, 95))),
            "top10": 1.0 if exact is None else agreement(results, exact),
        }
    )
    return results


# --- Design measurements


# A bounded heap (the alternative to the engine's key buffer)
@njit(cache=True, inline="always")
def _worse(score_a, doc_a, score_b, doc_b):
    """Whether (score_a, doc_a) ranks after (score_b, doc_b)"""
    return score_a < score_b or (score_a == score_b and doc_a > doc_b)


@njit(cache=True)
def _sift_down(heap_s, heap_d, size, i):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(
            heap_s[right], heap_d[right], heap_s[left], heap_d[left]
        ):
            child = right
        if _worse(heap_s[child], heap_d[child], heap_s[i], heap_d[i]):
            heap_s[i], heap_s[child] = heap_s[child], heap_s[i]
            heap_d[i], heap_d[child] = heap_d[child], heap_d[i]
            i = child
        else:
            return


@njit(cache=True, inline="always")
def _heap_offer(heap_s, heap_d, size, k, score, doc):
    """Offers a candidate to a heap of the k best (worst at the root);
    returns the new size"""
    if size < k:
        i = size
        heap_s[i] = score
        heap_d[i] = doc
        while i > 0:
            parent = (i - 1) // 2
            if _worse(heap_s[i], heap_d[i], heap_s[parent], heap_d[parent]):
                heap_s[i], heap_s[parent] = heap_s[parent], heap_s[i]
                heap_d[i], heap_d[parent] = heap_d[parent], heap_d[i]
                i = parent
            else:
                break
        return size + 1
    if _worse(heap_s[0], heap_d[0], score, doc):
        heap_s[0] = score
        heap_d[0] = doc
        _sift_down(heap_s, heap_d, size, 0)
    return size


@njit(cache=True)
def _heap_sort(heap_s, heap_d, size):
    """Sorts the heap in place, best first"""
    n = size
    while n > 1:
        n -= 1
        heap_s[0], heap_s[n] = heap_s[n], heap_s[0]
        heap_d[0], heap_d[n] = heap_d[n], heap_d[0]
        _sift_down(heap_s, heap_d, n, 0)


@njit(cache=True)
def _select_touched(acc, touched, n, k, heap_s, heap_d):
    """Top-k of the listed documents (score > 0), resetting their
    accumulators (a document listed twice is seen once: its second reading
    is 0)"""
    size = 0
    for i in range(n):
        d = touched[i]
        s = acc[d]
        acc[d] = 0
        if s > 0:
            if size < k or s > heap_s[0] or (s == heap_s[0] and d < heap_d[0]):
                size = _heap_offer(heap_s, heap_d, size, k, s, d)
    _heap_sort(heap_s, heap_d, size)
    return size


@njit(cache=True)
def _select_all(acc, k, heap_s, heap_d):
    """Top-k of every document (score > 0), resetting the accumulator"""
    size = 0
    # documents are scanned in increasing order: a tie never displaces
    for d in range(acc.shape[0]):
        s = acc[d]
        if s > 0:
            acc[d] = 0
            if size < k or s > heap_s[0]:
                size = _heap_offer(heap_s, heap_d, size, k, s, d)
        elif s != 0:
            acc[d] = 0
    _heap_sort(heap_s, heap_d, size)
    return size


def design(index, queries):
    """Top-k selection (heap, argpartition or the engine's key buffer) and
    touched list against full scan"""
    from splade.engines.exhaustive import kernels as ex

    acc = np.zeros(index.num_docs, np.float32)
    # (room for every document: the list never fills up)
    touched = np.empty(2 * index.num_docs + 1, np.uint32)
    indptr, terms, weights = queries
    args = (index.offsets, index.docids, index.weights)

    def argpartition_select(n, k):
        listed = touched[:n]
        scores = acc[listed]
        acc[listed] = 0
        positive = scores > 0
        listed, scores = listed[positive], scores[positive]
        if scores.shape[0] > k:
            part = np.argpartition(-scores, k - 1)
            threshold = scores[part[k - 1]]
            # every document tied at the threshold competes on its id
            keep = scores >= threshold
            listed, scores = listed[keep], scores[keep]
        order = np.lexsort((listed, -scores))[:k]
        return listed[order], scores[order]

    print("\nDesign measurements (CPU ms/query, mean over the queries)")
    postings = np.array(
        [
            ex._postings_count(
                index.offsets,
                terms[indptr[q] : indptr[q + 1]],
                weights[indptr[q] : indptr[q + 1]],
            )
            for q in range(indptr.shape[0] - 1)
        ]
    )
    print(
        f"postings per query: mean {postings.mean():,.0f}, median"
        f" {np.median(postings):,.0f} ({postings.mean() / index.num_docs:.2f}"
        " x the number of documents)"
    )
    methods = {
        # name: (touched list?, selection)
        "list: heap": (True, "heap"),
        "list: argpartition": (True, "argpartition"),
        "list: key buffer, branch-free": (True, 2**40),
        "list: key buffer (engine)": (True, ex._WARMUP),
        "scan: heap": (False, "heap"),
        "scan: key buffer, branch-free": (False, 2**40),
        "scan: key buffer (engine)": (False, ex._WARMUP),
    }
    for k in (10, 1000):
        heap_s = np.empty(k, np.float32)
        heap_d = np.empty(k, np.int64)
        buffer = np.empty(ex._buffer_size(k), np.uint64)
        out_d = np.empty(k, np.int64)
        out_s = np.empty(k, np.float32)
        timings = {"accumulate, with list": [], "accumulate, no list": []}
        timings.update({name: [] for name in methods})
        for q in range(-1, indptr.shape[0] - 1):  # (query 0 twice: compiles)
            qt = terms[indptr[max(q, 0)] : indptr[max(q, 0) + 1]]
            qw = weights[indptr[max(q, 0)] : indptr[max(q, 0) + 1]]
            for name, (listed, select) in methods.items():
                start = time.process_time()
                n = ex._accumulate(*args, qt, qw, acc, touched, listed)
                middle = time.process_time()
                if select == "heap" and listed:
                    _select_touched(acc, touched, n, k, heap_s, heap_d)
                elif select == "heap":
                    _select_all(acc, k, heap_s, heap_d)
                elif select == "argpartition":
                    argpartition_select(n, k)
                elif listed:
                    warmup = select * k
                    ex._select_listed(acc, touched, n, k, buffer, out_d, out_s, warmup)
                else:
                    ex._select_scan(acc, k, buffer, out_d, out_s, select * k)
                end = time.process_time()
                if q >= 0:
                    kind = "with list" if listed else "no list"
                    timings[f"accumulate, {kind}"].append(middle - start)
                    timings[name].append(end - middle)
        print(f"k={k}:")
        for name, values in timings.items():
            print(f"  {name:<32} {1000 * np.mean(values):8.3f}")
    for ratio in (0.0, 0.25, 0.5, 1.0, 2.0, np.inf):
        searcher = ex.Searcher(index, dense_ratio=ratio)
        search = exhaustive_search(searcher)
        _, k10 = per_query(search, queries, 10)
        _, k1000 = per_query(search, queries, 1000)
        print(
            f"Searcher(dense_ratio={ratio}): k=10 {k10.mean():.3f},"
            f" k=1000 {k1000.mean():.3f} ms/query"
        )


def convert(workdir: Path, reference):
    """from_impact_index: seconds per million postings, by method"""
    from splade.engines.exhaustive import from_impact_index

    print("\nfrom_impact_index (impact-index index -> this format)")
    from_impact_index(workdir / "impact", workdir / "converted", method="numpy")
    for method in ("numpy", "iterator"):
        shutil.rmtree(workdir / "converted", ignore_errors=True)
        start, cpu = time.perf_counter(), time.process_time()
        converted = from_impact_index(
            workdir / "impact", workdir / "converted", method=method
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=int, default=256, help="MiB, builder")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="pisa, impact")
    parser.add_argument("--design", action="store_true")
    parser.add_argument(
        "--convert",
        action="store_true",
        help="times from_impact_index (both methods) on the impact-index index",
    )
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(f"/tmp/bench-exhaustive-{args.docs}")
    if args.build:
        child_build(workdir, args.build, args.budget)
        return

    began = time.perf_counter()
    print(f"collection: {args.docs:,} documents, {args.queries:,} queries", flush=True)
    generate(workdir / "data", args.docs, args.queries)
    print(f"  generated in {time.perf_counter() - began:.0f} s", flush=True)
    engines = ["exhaustive"]
    if "pisa" not in args.skip:
        try:
            import pyterrier_pisa  # noqa: F401

            engines.append("pisa")
        except ImportError:
            print("pyterrier-pisa is not installed: no PISA reference")
    if "impact" not in args.skip:
        engines.append("impact")
    builds = {}
    for name in engines:
        print(f"  building {name}", flush=True)
        builds[name] = build(workdir, name, args.budget)

    from splade.engines.exhaustive import SparseIndex

    queries = load_queries(workdir / "data")
    rows = []
    matrix = load_csc(workdir / "data")
    nnz = matrix.nnz
    scipy_size = (
        matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    ) / 2**20
    exact = measure("scipy CSC brute force", scipy_search(matrix), queries, rows)
    del matrix
    index = SparseIndex.load(workdir / "exhaustive")
    searcher = index.searcher()
    measure(
        "exhaustive (this engine)", exhaustive_search(searcher), queries, rows, exact
    )
    if "pisa" in engines and builds["pisa"]:
        measure(
            "PISA block-max MaxScore",
            pisa_search(workdir / "pisa"),
            queries,
            rows,
            exact,
        )
    if "impact" in engines and builds["impact"]:
        measure(
            "impact-index MaxScore",
            impact_search(workdir / "impact"),
            queries,
            rows,
            exact,
        )

    print()
    print(
        f"{args.docs:,} documents ({nnz:,} postings, {nnz / args.docs:.1f} per"
        f" document), {args.queries:,} queries"
        f" ({queries[1].shape[0] / args.queries:.1f} terms per query);"
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
    print(f"{'build':<12} {'wall s':>8} {'peak RSS MiB':>12} {'size MiB':>9}")
    print(f"{'scipy (CSC)':<12} {'':>8} {'':>12} {scipy_size:>9.0f}")
    for name, stats in builds.items():
        if stats:
            extra = (
                f"  ({stats['runs']} runs, budget {args.budget} MiB)"
                if "runs" in stats
                else ""
            )
            print(
                f"{name:<12} {stats['seconds']:>8.1f} {stats['rss_mib']:>12.0f}"
                f" {stats['size_mib']:>9.0f}{extra}"
            )

    if args.threads > 1:
        print()
        import scipy.sparse as sp

        indptr, terms, weights = queries
        batch = sp.csr_matrix(
            (weights, terms, indptr), (indptr.shape[0] - 1, VOCABULARY)
        )
        for threads in (1, args.threads):
            searcher.search_batch(batch[:2], 10, threads=threads)  # compiles
            for k in (10, 1000):
                start = time.perf_counter()
                results = searcher.search_batch(batch, k, threads=threads)
                wall = time.perf_counter() - start
                print(
                    f"search_batch threads={threads} k={k}:"
                    f" {1000 * wall / len(results):.2f} wall ms/query"
                )
    if args.design:
        design(index, queries)
    if args.convert and builds.get("impact"):
        convert(workdir, index)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
