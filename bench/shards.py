"""The merge of sharded exhaustive indices (``indexation.shards``,
splade/engines/exhaustive/shards.py): its time against the index build, on
SPLADE-shaped random vectors (:func:`bench.common.zipf_vectors`; no
encoding: the encoding of a shard is what runs at once on several GPUs)

    python -m bench.shards --docs 1000000 --shards 4

Builds the index of all the documents (one task's), the index of each shard
(documents of a slice, as each shard task does after encoding), merges the
shards' indices and checks that the result is the same, file for file.

With ``--encode N``, it also times the encoding of N documents of the
debug collection with ``--model`` by one process, then by ``--shards``
processes at once (a slice each), as shard tasks on one machine would (on a
CPU, they share its cores; on N GPUs, each would have its own):

    python -m bench.shards --docs 200000 --shards 2 --encode 512
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from splade.engines.exhaustive import IndexBuilder, from_csr
from splade.engines.exhaustive.shards import merge, shard_range


def vectors(docs: int, terms: int, per_doc: int, seed: int = 0):
    """``docs`` vectors of the distinct terms of ``per_doc`` Zipf draws
    (exponent 1.1) over ``terms`` terms, log-normal weights"""
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(terms)
    chunks = [
        common.zipf_vectors(
            rng,
            min(common.CHUNK, docs - start),
            draws=per_doc,
            exponent=1.1,
            offset=2.0,
            permutation=permutation,
            mean=-0.5,
            sigma=0.6,
            slope=0.0,
        )
        for start in range(0, docs, common.CHUNK)
    ]
    import scipy.sparse as sp

    return sp.vstack(chunks).tocsr()


def encode(model: str, first: int, last: int, threads: int, maxlen: int):
    """Encodes the debug documents [first, last) (in a child process)"""
    import torch
    from datamaestro_ir.data import SimpleTextItem

    from splade.debug_data import DebugCollectionSpec, generate
    from splade.models import load_encoders

    torch.set_num_threads(threads)
    documents = generate(DebugCollectionSpec()).documents
    texts = [text for _, text in documents]
    texts = (texts * (last // len(texts) + 1))[first:last]
    encoder, _ = load_encoders(model, document_maxlen=maxlen)
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            batch = texts[start : start + 64]
            encoder([{"text_item": SimpleTextItem(t)} for t in batch])


def encoding_times(model: str, count: int, shards: int, maxlen: int):
    """Wall times of the encoding of ``count`` documents by one process
    (every core), and by ``shards`` processes at once (their share of the
    cores each)"""
    import multiprocessing
    import os

    cores = len(os.sched_getaffinity(0))
    context = multiprocessing.get_context("spawn")
    times = []
    for parts in (1, shards):
        processes = [
            context.Process(
                target=encode,
                args=(
                    model,
                    *shard_range(count, part, parts, 64),
                    max(cores // parts, 1),
                    maxlen,
                ),
            )
            for part in range(parts)
        ]
        start = time.perf_counter()
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        times.append(time.perf_counter() - start)
    return times


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shards", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--terms", type=int, default=30522)
    parser.add_argument("--per-doc", type=int, default=120, help="Zipf draws")
    parser.add_argument(
        "--encode",
        type=int,
        default=0,
        help="documents encoded by one process, then by --shards at once "
        "(default: 0, no encoding)",
    )
    common.add_path(parser, "--model", common.MODEL, "SPLADE model (with --encode)")
    parser.add_argument("--maxlen", type=int, default=256)
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    if args.encode:
        common.require(arguments, args.model, "model", "--model")

    if args.encode:
        one, sharded = encoding_times(args.model, args.encode, args.shards, args.maxlen)
        print(
            f"encoding {args.encode} documents: {one:.1f} s by one process,"
            f" {sharded:.1f} s by {args.shards} at once ({one / sharded:.2f}x)"
        )

    matrix = vectors(args.docs, args.terms, args.per_doc)
    print(f"{args.docs:,} documents, {matrix.nnz:,} postings, {args.shards} shards")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        from_csr(matrix, folder / "whole")
        whole = time.perf_counter() - start

        shard_times, folders = [], []
        for shard in range(args.shards):
            first, last = shard_range(args.docs, shard, args.shards, 256)
            folders.append(folder / f"shard-{shard}")
            start = time.perf_counter()
            builder = IndexBuilder(folders[-1])
            builder.add_batch(
                first, matrix.indptr[first : last + 1], matrix.indices, matrix.data
            )
            builder.finish()
            shard_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        merge(folders, folder / "merged")
        merged = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (folder / "merged").iterdir())
        same = all(
            (folder / "merged" / name).read_bytes()
            == (folder / "whole" / name).read_bytes()
            for name in ("offsets.npy", "docids.npy", "weights.npy", "meta.json")
        )

    print("| step | seconds |")
    print("|---|---|")
    print(f"| index of all the documents (one task) | {whole:.1f} |")
    print(f"| index of a shard (longest of {args.shards}) | {max(shard_times):.1f} |")
    print(
        f"| merge of the {args.shards} shards ({size / 2**20:.0f} MiB) | {merged:.1f} |"
    )
    print(f"\nmerged index identical to one task's: {same}")


if __name__ == "__main__":
    main()
