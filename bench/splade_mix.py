"""A large benchmark collection made of real SPLADE vectors (``splade-mix``)

Independent Zipf-distributed terms (``synthetic`` in
:mod:`bench.retrieval_engines`) miss what block-based engines and document
reordering rely on: real documents share groups of terms (topics), and the
weights of a document are correlated. This collection keeps that structure
while reaching a million documents:

1. the documents and queries of ``DATA/{scifact,cranfield,cisi}`` (8,043
   documents, 1,446 queries) are encoded by ``MODEL`` (SPLADE-max, 256
   tokens at most; cached under ``WORKDIR/real``: about 10 CPU minutes
   once);
2. each generated document mixes a random real document ``a`` with one of
   its 20 nearest documents ``b`` (largest dot product, same collection):
   each term of ``a`` is kept with probability ``p`` (drawn uniformly in
   ``[0.5, 1]`` for the document), each term of ``b`` with probability
   ``1 - p`` (a term kept from both weighs ``max(w_a, w_b)``);
3. every weight is multiplied by a log-normal jitter (sigma 0.1), so that
   no two documents are the same.

The thinning keeps the number of non-zeros and the distribution of the
weights close to the real documents' (this command prints both). Each
real document has about ``docs / 8,043`` variants: near neighbours, more
of them than a real collection has (methods that follow neighbours, such as
Seismic's k-NN graph, gain from it).

Queries are the real queries (a seeded sample of ``--queries`` of them,
the same for every number of documents), so that query lengths and weights
are those of the model. Documents are in a random order (no locality, as a
collection in crawl order would have some).

    python -m bench.splade_mix --docs 100000 --workdir /tmp/splade-bench
"""

import argparse
from pathlib import Path

import numpy as np

from bench import common


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.splade_mix", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/splade-bench"),
        help="where the encodings (real/) and the collection "
        "(mix-DOCS-QUERIES/) are written (default: /tmp/splade-bench)",
    )
    common.add_path(parser, "--data", common.DATA, "folder of the local collections")
    common.add_path(parser, "--model", common.MODEL, "SPLADE model (encodes them)")
    return parser


def main(argv=None):
    args = parser().parse_args(argv)
    for path, what, flag in (
        (args.data, "data", "--data"),
        (args.model, "model", "--model"),
    ):
        common.require(parser(), path, what, flag)
    cache = args.workdir / "real"
    docs, _, queries = common.real_vectors(cache, args.data, args.model)
    print(
        f"real: {docs.shape[0]} documents ({docs.nnz / docs.shape[0]:.0f} "
        f"non-zeros), {queries.shape[0]} queries "
        f"({queries.nnz / queries.shape[0]:.1f} non-zeros)"
    )
    folder = args.workdir / f"mix-{args.docs}-{args.queries}"
    common.splade_mix(folder, args.docs, args.queries, cache, args.data, args.model)
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
