"""Exports any index the package built: ``python -m splade.export INDEX OUT``

``INDEX`` is an index folder of the exhaustive engine (``meta.json``), an
impact-index index folder (converted first, in a temporary folder), or the
task folder of the experimaestro task that built either (``params.json``):
the documents' ids then come from the task's document store, and the term
names from its tokenizer. Examples::

    # the index of an experiment (its path is in the experiment's summary)
    python -m splade.export \\
        ~/experiments/splade/jobs/splade.engines.exhaustiveindexbuilder/<id>/index \\
        /tmp/export --formats anserini,ciff,opensearch
    # with queries, encoded by the model
    python -m splade.export INDEX /tmp/export --model MODEL_FOLDER \\
        --queries dev=queries.dev.tsv

``docs/exporting.md`` says how each engine reads the files.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

__all__ = ["main", "open_index"]

logger = logging.getLogger("splade.export")


def _task_folder(path: Path) -> Optional[Path]:
    for folder in [path, *path.parents][:3]:
        if (folder / "params.json").is_file():
            return folder
    return None


def open_index(path: Path, scratch: Path) -> Tuple[object, Optional[object]]:
    """The postings of an index folder or of an index builder's task folder
    (term-major), and the task's configuration (None for a bare folder)"""
    from splade.engines.exhaustive import SparseIndex, from_impact_index

    path = Path(path).resolve()
    task = None
    folder = _task_folder(path)
    if folder is not None:
        from experimaestro.core.serialization import from_task_dir

        task = from_task_dir(folder)
        if path == folder:
            path = Path(task.index_path)
    if (path / "meta.json").is_file():
        return SparseIndex.load(path, mmap=True), task
    if not path.is_dir():
        raise SystemExit(f"{path}: no such index folder")
    try:
        return from_impact_index(path, scratch), task
    except Exception as error:
        raise SystemExit(
            f"{path}: neither an exhaustive index (meta.json) nor an"
            f" impact-index index ({error})"
        ) from error


def _task_tokens(task) -> Optional[List[Optional[str]]]:
    """The tokens of the tokenizer of an index builder's encoder"""
    try:
        model_id = task.encoder.tokenizer.tokenizer.model_id
    except AttributeError:
        return None
    try:
        return _tokens(model_id)
    except Exception as error:  # e.g. a hub id, offline
        logger.warning("Cannot load the tokenizer %s (%s)", model_id, error)
        return None


def _tokens(model: str) -> List[Optional[str]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return list(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))


def _queries(files: Dict[str, Path], model: Path, args) -> Dict[str, list]:
    from splade.export.tasks import encode_queries
    from splade.local_files import read_queries
    from splade.models import load_encoders

    _, encoder = load_encoders(
        model,
        architecture=args.architecture,
        query_maxlen=args.query_maxlen,
    )
    from datamaestro_ir.data import SimpleTextItem

    queries = {}
    for name, path in files.items():
        records = [
            {"id": qid, "text_item": SimpleTextItem(text)}
            for _, qid, text in read_queries(Path(path))
        ]
        queries[name] = encode_queries(encoder, records, args.batch_size)
        logger.info("%s: %d queries encoded", name, len(records))
    return queries


def parse(argv=None):
    from splade.export import FORMATS

    parser = argparse.ArgumentParser(
        prog="python -m splade.export",
        description="Exports a SPLADE index (and queries) to other engines' formats",
    )
    parser.add_argument("index", type=Path, help="index folder or its task folder")
    parser.add_argument("output", type=Path, help="export folder (created)")
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"comma-separated formats among {', '.join(FORMATS)} (default: all)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=100.0,
        help="integer weights are round(scale * w) (anserini, ciff; default 100)",
    )
    parser.add_argument(
        "--terms",
        choices=["tokens", "ids"],
        default="tokens",
        help="name terms by their tokens (default; needs a tokenizer) or ids",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="Hugging Face folder of the model: its tokenizer names the terms,"
        " and it encodes --queries",
    )
    parser.add_argument(
        "--query-model",
        type=Path,
        help="a separate query encoder (e.g. Efficient SPLADE's -query model)",
    )
    parser.add_argument(
        "--architecture",
        default="max",
        help="model.architecture of the query side (max, doc; default max)",
    )
    parser.add_argument(
        "--queries",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="queries to encode (TSV id<TAB>text or BEIR queries.jsonl);"
        " repeat for several sets",
    )
    parser.add_argument("--query-maxlen", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--docids",
        type=Path,
        help="external document ids, one per line in index order (default:"
        " those of the task's document store, else the internal numbers)",
    )
    parser.add_argument(
        "--text",
        action="store_true",
        help="also write the documents' text (from the task's document store)",
    )
    parser.add_argument("--index-name", default="splade")
    parser.add_argument("--field", default="splade")
    parser.add_argument(
        "--size", type=int, default=1000, help="documents per OpenSearch query"
    )
    args = parser.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown:
        parser.error(f"--formats: unknown {unknown} (known: {', '.join(FORMATS)})")
    files = {}
    for item in args.queries:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            parser.error(f"--queries {item}: expected NAME=FILE with an existing file")
        files[name] = Path(path)
    args.queries = files
    if files and not (args.model or args.query_model):
        parser.error("--queries needs --model (or --query-model) to encode them")
    return args


def main(argv=None):
    from splade.export import Collection, export
    from splade.export.tasks import StoreIds

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse(argv)
    scratch = Path(tempfile.mkdtemp(prefix="splade-export-"))
    try:
        index, task = open_index(args.index, scratch / "index")
        logger.info("Index: %s", index)
        docids = None
        if args.docids:
            docids = args.docids.read_text().splitlines()
            if len(docids) < index.num_docs:
                raise SystemExit(
                    f"--docids: {len(docids)} ids for {index.num_docs} documents"
                )
        elif task is not None and getattr(task, "documents", None) is not None:
            docids = StoreIds(task.documents, index.num_docs)
        else:
            logger.warning("No document ids: the internal numbers are written")
        tokens = None
        if args.terms == "tokens":
            if args.model or args.query_model:
                tokens = _tokens(str(args.model or args.query_model))
            elif task is not None:
                tokens = _task_tokens(task)
            if tokens is None:
                logger.warning("No tokenizer: terms are named by their ids")
        queries = {}
        if args.queries:
            queries = _queries(args.queries, args.query_model or args.model, args)
        texts = None
        if args.text:
            if not isinstance(docids, StoreIds):
                raise SystemExit("--text: the index's task folder has no documents")
            texts = docids.texts
        collection = Collection(
            index, docids=docids, tokens=tokens, queries=queries, texts=texts
        )
        manifest = export(
            collection,
            args.output,
            args.formats,
            scale=args.scale,
            index_name=args.index_name,
            field=args.field,
            size=args.size,
        )
        for name, written in manifest["formats"].items():
            logger.info("%s: %s", name, {k: v for k, v in written.items()})
        logger.info("Written in %s (export.json describes it)", args.output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
