"""Encoding throughput: documents per second of the package's index-builder
encoding path, against a plain transformers loop and sentence-transformers'
SparseEncoder, on the same SPLADE model, texts, batch size and threads

    python -m bench.encoding [--docs 2000] [--batch-size 32] [--threads 1]

The systems encode the same blocks of documents one after the other, in an
order that changes from block to block, so that the load of a shared machine
weighs on all of them alike; the time of a system is the sum over blocks.
Every system gives dense SPLADE-max vectors (vocabulary size) of the
documents truncated to ``--maxlen`` tokens; the largest difference with the
package's vectors is reported.

- package: the document encoder of ``splade.models.splade_model`` called as
  ``SparseRetrieverIndexBuilder`` calls it
  (``AbstractSparseRetrieverIndexBuilder.encode_documents``: records in,
  numpy vectors out), with an index batch of one block; a
  ``splade.encoders.SpladeMaxEncoder`` encodes at most ``--batch-size`` x
  ``--maxlen`` tokens at once;
- xpmir SpladeTextEncoder: xpmir's encoder (the same parameters), called the
  same way with index batches of ``--batch-size`` documents (a block at once
  would need block x maxlen x vocabulary floats, three times);
- transformers loop: ``AutoModelForMaskedLM``, batches of ``--batch-size``
  documents in collection order, log(1 + ReLU(logits)), masked max;
- sentence-transformers: ``SparseEncoder`` (fill-mask transformer +
  ``SpladePooling("max")``), ``encode_document`` of each block with
  ``batch_size=--batch-size`` (it sorts the block by length).

The table goes to the section ``## Encoding throughput`` of BENCHMARKS.md
(the rest of the file is kept).
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from bench import common

SECTION = "## Encoding throughput"


def read_documents(path: Path, count: int):
    texts = []
    with path.open(encoding="utf-8") as fp:
        for line in fp:
            if len(texts) >= count:
                break
            _, text = line.rstrip("\n").split("\t", 1)
            texts.append(text)
    return texts


class ListQueue(list):
    """What the index builder's encoding step puts vectors in"""

    def put(self, item):
        self.append(item)


def package_encoders(model: Path, maxlen: int):
    """The package's document encoder and xpmir's SpladeTextEncoder with the
    same parameters, both with the weights of ``model``"""
    from splade.models import load_encoders

    (ours, _), (upstream, _) = (
        load_encoders(model, upstream=upstream, document_maxlen=maxlen)
        for upstream in (False, True)
    )
    return ours, upstream


def index_builder_system(encoder, index_batch: int):
    """Encodes as SparseRetrieverIndexBuilder does, ``index_batch`` documents
    per call of the encoder"""
    from datamaestro_ir.data import SimpleTextItem
    from xpmir.index.sparse import AbstractSparseRetrieverIndexBuilder

    def encode(texts, first_id):
        queue = ListQueue()
        records = [
            (first_id + ix, {"id": str(first_id + ix), "text_item": SimpleTextItem(t)})
            for ix, t in enumerate(texts)
        ]
        for start in range(0, len(records), index_batch):
            AbstractSparseRetrieverIndexBuilder.encode_documents(
                records[start : start + index_batch], encoder, queue
            )
        return [encoded.value for encoded in queue]

    return encode


def transformers_system(model: Path, maxlen: int, batch_size: int):
    """The reference loop (``splade.encoders.transformers_splade_max``),
    batches of ``batch_size`` documents in collection order"""
    from splade.encoders import transformers_splade_max

    def encode(texts, first_id):
        batches = transformers_splade_max(model, texts, maxlen, batch_size)
        return [vector for batch in batches for vector in batch.numpy()]

    return encode


def sentence_transformers_system(model: Path, maxlen: int, batch_size: int):
    from splade.encoders import load_sparse_encoder

    encoder = load_sparse_encoder(model, maxlen)

    def encode(texts, first_id):
        vectors = encoder.encode_document(
            texts,
            batch_size=batch_size,
            convert_to_tensor=True,
            convert_to_sparse_tensor=False,
            show_progress_bar=False,
        )
        return list(vectors.numpy())

    return encode


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.encoding", description=__doc__.split("\n\n")[0]
    )
    common.add_path(parser, "--model", common.MODEL, "SPLADE model")
    common.add_path(
        parser, "--documents", common.DATA / "scifact" / "docs.tsv", "documents (TSV)"
    )
    parser.add_argument("--docs", type=int, default=2000, help="first N documents")
    parser.add_argument("--block", type=int, default=256, help="documents per block")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--maxlen", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["xpmir", "transformers", "sentence-transformers"],
        help="leave a reference system out (repeatable)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=common.BENCHMARKS,
        help="the Markdown file whose section is written (default: BENCHMARKS.md)",
    )
    parser.add_argument("--no-write", action="store_true")
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    if "sentence-transformers" not in args.skip:
        common.require_modules(arguments, "sentence_transformers")
    common.require(arguments, args.model, "model", "--model")
    common.require(arguments, args.documents, "documents", "--documents")

    import numpy as np
    import torch
    import transformers

    from splade.encoders import SpladeMaxEncoder

    torch.set_num_threads(args.threads)
    texts = read_documents(args.documents, args.docs)

    ours, upstream = package_encoders(args.model, args.maxlen)
    is_fast = isinstance(ours, SpladeMaxEncoder)
    if is_fast:
        ours.max_tokens = args.batch_size * args.maxlen
    index_batch = args.block if is_fast else args.batch_size
    how = f"`{type(ours).__name__}`, index batch {index_batch}"
    if is_fast:
        how += f", at most {ours.max_tokens} tokens at once"
    systems = {"package": (index_builder_system(ours, index_batch), how)}
    if "xpmir" not in args.skip:
        systems["xpmir"] = (
            index_builder_system(upstream, args.batch_size),
            f"xpmir `SpladeTextEncoder`, index batch {args.batch_size}",
        )
    if "transformers" not in args.skip:
        systems["transformers"] = (
            transformers_system(args.model, args.maxlen, args.batch_size),
            f"`AutoModelForMaskedLM` loop, batch {args.batch_size}, collection order",
        )
    if "sentence-transformers" not in args.skip:
        import sentence_transformers

        systems["sentence-transformers"] = (
            sentence_transformers_system(args.model, args.maxlen, args.batch_size),
            f"`SparseEncoder.encode_document` {sentence_transformers.__version__}, "
            f"batch {args.batch_size}",
        )

    names = list(systems)
    seconds = dict.fromkeys(names, 0.0)
    difference = dict.fromkeys(names, 0.0)
    with torch.inference_mode():
        for name in names:  # warm-up
            systems[name][0](texts[:2], 0)
        blocks = range(0, len(texts), args.block)
        for number, start in enumerate(blocks):
            block = texts[start : start + args.block]
            order = names[number % len(names) :] + names[: number % len(names)]
            vectors = {}
            for name in order:
                begin = time.perf_counter()
                vectors[name] = np.stack(systems[name][0](block, start))
                seconds[name] += time.perf_counter() - begin
            for name in names:
                difference[name] = max(
                    difference[name],
                    float(np.abs(vectors[name] - vectors["package"]).max()),
                )
            print(
                f"block {number + 1}/{len(blocks)}: "
                + ", ".join(f"{n} {seconds[n]:.1f}s" for n in names),
                file=sys.stderr,
            )

    speed = {name: len(texts) / seconds[name] for name in names}
    command = common.command_line("bench.encoding")
    rows = [
        "| system | how it encodes | docs/s | package / system | max abs diff |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        rows.append(
            f"| {name} | {systems[name][1]} | {speed[name]:.2f} "
            f"| {speed['package'] / speed[name]:.2f}x | {difference[name]:.1e} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command (from the repository root, in the venv): `{command}`",
            "",
            f"{len(texts)} documents of `{args.documents.name}` "
            f"(first ones), model `{args.model.name}`, at most {args.maxlen} "
            f"tokens, batches of {args.batch_size} documents, blocks of "
            f"{args.block}, {args.threads} torch thread(s), CPU "
            f"({platform.machine()}, {os.cpu_count()} cores, load average "
            f"{load:.1f} at the end), torch {torch.__version__}, transformers "
            f"{transformers.__version__}; inference mode. See the docstring of "
            "`bench/encoding.py` for what each system does.",
            "",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        common.write_section(SECTION, text, args.output)


if __name__ == "__main__":
    main()
