"""A large benchmark collection made of real SPLADE vectors (``splade-mix``)

Independent Zipf-distributed terms (``synthetic`` in
``bench/retrieval_engines.py``) miss what block-based engines and document
reordering rely on: real documents share groups of terms (topics), and the
weights of a document are correlated. This collection keeps that structure
while reaching a million documents:

1. the documents and queries of ``../shared/data/{scifact,cranfield,cisi}``
   (8,043 documents, 1,446 queries) are encoded by
   ``../shared/models/splade-bert-tiny`` (SPLADE-max, 256 tokens at most;
   cached under ``WORKDIR/real``: about 10 CPU minutes once);
2. each generated document mixes a random real document ``a`` with one of
   its ``NEIGHBOURS`` nearest documents ``b`` (largest dot product, same
   collection): each term of ``a`` is kept with probability ``p`` (drawn
   uniformly in ``[SHARE, 1]`` for the document), each term of ``b`` with
   probability ``1 - p`` (a term kept from both weighs ``max(w_a, w_b)``);
3. every weight is multiplied by a log-normal jitter (sigma ``JITTER``), so
   that no two documents are the same.

The thinning keeps the number of non-zeros and the distribution of the
weights close to the real documents' (``python bench/splade_mix.py``
prints both).

Queries are the real queries (a seeded sample of ``--queries`` of them,
the same for every number of documents), so that query lengths and weights
are those of the model. Documents are in
a random order (no locality, as a collection in crawl order would have
some).

    python bench/splade_mix.py --docs 100000 --workdir /tmp/splade-mix
"""

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "splade-bert-tiny"
COLLECTIONS = {
    "scifact": ["queries.tsv"],
    "cranfield": ["queries.tsv"],
    "cisi": ["queries.tsv"],
}
VOCABULARY = 30522
NEIGHBOURS = 20
JITTER = 0.1
SHARE = 0.5
CHUNK = 50_000


def read_texts(path: Path):
    with path.open(encoding="utf-8") as fp:
        return [line.rstrip("\n").split("\t", 1)[-1] for line in fp if line.strip()]


def encode(texts, maxlen=256, batch_size=16) -> sp.csr_matrix:
    """SPLADE-max vectors of the texts (sorted by length for less padding,
    returned in the given order)"""
    import torch

    from splade.encoders import transformers_splade_max

    torch.set_num_threads(1)
    order = np.argsort([len(t) for t in texts], kind="stable")
    sorted_texts = [texts[i] for i in order]
    batches = transformers_splade_max(MODEL, sorted_texts, maxlen, batch_size)
    rows = sp.vstack([sp.csr_matrix(b.numpy()) for b in batches]).tocsr()
    matrix = rows[np.argsort(order)]
    matrix.sort_indices()
    return matrix.astype(np.float32)


def real_vectors(workdir: Path):
    """(documents, collection of each document, queries): the real vectors,
    encoded once and cached"""
    folder = workdir / "real"
    folder.mkdir(parents=True, exist_ok=True)
    docs, queries, owners = [], [], []
    for number, (name, query_files) in enumerate(COLLECTIONS.items()):
        data = SHARED / "data" / name
        cache = folder / f"{name}-docs.npz"
        if not cache.exists():
            start = time.process_time()
            matrix = encode(read_texts(data / "docs.tsv"))
            sp.save_npz(cache, matrix)
            print(
                f"encoded {matrix.shape[0]} {name} documents in "
                f"{time.process_time() - start:.0f} CPU s",
                flush=True,
            )
        docs.append(sp.load_npz(cache).tocsr())
        owners.append(np.full(docs[-1].shape[0], number, np.int32))
        for query_file in query_files:
            cache = folder / f"{name}-{query_file}.npz"
            if not cache.exists():
                sp.save_npz(cache, encode(read_texts(data / query_file)))
            queries.append(sp.load_npz(cache).tocsr())
    return (
        sp.vstack(docs).tocsr(),
        np.concatenate(owners),
        sp.vstack(queries).tocsr(),
    )


def real_collection(workdir: Path, name: str, query_file: str):
    """(documents, queries) of one real collection, encoded once and cached
    (``scifact`` with ``queries.test.tsv``: the 300 test queries)"""
    real_vectors(workdir)
    folder = workdir / "real"
    cache = folder / f"{name}-{query_file}.npz"
    if not cache.exists():
        sp.save_npz(cache, encode(read_texts(SHARED / "data" / name / query_file)))
    return sp.load_npz(folder / f"{name}-docs.npz").tocsr(), sp.load_npz(cache).tocsr()


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


def generate(folder: Path, docs_count: int, queries_count: int, workdir: Path):
    """Writes the collection as ``bench/retrieval_engines.py`` reads it:
    ``indptr.npy``, ``indices.u32``, ``data.f32`` and ``queries.npz``"""
    docs, owners, queries = real_vectors(workdir)
    rng = np.random.default_rng(0)
    near = neighbours(docs, owners)
    folder.mkdir(parents=True, exist_ok=True)
    with (
        (folder / "indices.u32").open("wb") as fi,
        (folder / "data.f32").open("wb") as fd,
    ):
        indptr, total = [np.zeros(1, np.int64)], 0
        for start in range(0, docs_count, CHUNK):
            chunk = mix(rng, docs, near, min(CHUNK, docs_count - start))
            chunk.indices.astype(np.uint32).tofile(fi)
            chunk.data.astype(np.float32).tofile(fd)
            indptr.append(chunk.indptr[1:].astype(np.int64) + total)
            total += chunk.nnz
    np.save(folder / "indptr.npy", np.concatenate(indptr))
    write_queries(folder, queries, queries_count)


def write_queries(folder: Path, queries: sp.csr_matrix, count: int):
    """A seeded sample of the real queries, the same whatever the number of
    documents"""
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(queries.shape[0], min(count, queries.shape[0]), False))
    sp.save_npz(folder / "queries.npz", queries[chosen])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/splade-bench"))
    args = parser.parse_args()
    docs, owners, queries = real_vectors(args.workdir)
    print(
        f"real: {docs.shape[0]} documents ({docs.nnz / docs.shape[0]:.0f} "
        f"non-zeros), {queries.shape[0]} queries "
        f"({queries.nnz / queries.shape[0]:.1f} non-zeros)"
    )
    folder = args.workdir / f"splade-mix-{args.docs}-{args.queries}"
    generate(folder, args.docs, args.queries, args.workdir)
    indptr = np.load(folder / "indptr.npy")
    weights = np.fromfile(folder / "data.f32", np.float32)
    print(
        f"{folder}: {indptr[-1] / (len(indptr) - 1):.0f} non-zeros per document; "
        f"weights: mean {weights.mean():.3f}, median {np.median(weights):.3f}, "
        f"max {weights.max():.2f} (real: mean {docs.data.mean():.3f}, median "
        f"{np.median(docs.data):.3f}, max {docs.data.max():.2f})"
    )


if __name__ == "__main__":
    main()
