"""Effectiveness on real collections given as local files (../shared/data)

Runs the package's own recipes (``splade/local_zeroshot.yaml``,
``splade/local_finetune.yaml``) through ``experimaestro run-experiment``,
then checks them against outside references in the same run:

- BM25: bm25s (Lucene's BM25 variant, same k1 and b, Snowball stemmer,
  English stop words) on the same documents and queries;
- SPLADE: the top-10 of our retrieval (impact-index) against a brute-force
  sparse dot product of vectors computed with plain ``transformers``
  (masked LM logits, log(1 + ReLU), max over tokens) with the same model and
  maximum lengths.

Prints the tables and writes them into BENCHMARKS.md (section "Local
collections"). Usage (about an hour on 2 CPU cores)::

    pip install -e ".[bench]"
    python -m bench.local_collections [--workdir DIR] [--no-write]
"""

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import ir_measures
import numpy as np
import pandas as pd

from bench import common

ROOT = common.ROOT
SECTION = "## Local collections"

#: collection -> (queries file, qrels file), in ../shared/data/<collection>
COLLECTIONS = {
    "cranfield": ("queries.tsv", "qrels.txt"),
    "cisi": ("queries.tsv", "qrels.txt"),
    "scifact": ("queries.test.tsv", "qrels.test.txt"),
}
MEASURES = ["nDCG@10", "RR@10", "R@100"]


def run_experiment(workdir: Path, recipe: str, xp_id: str, *overrides: str):
    """Runs a recipe; returns its results table and the wall-clock time"""
    command = [
        "experimaestro",
        "run-experiment",
        "--workdir",
        str(workdir),
        f"splade/{recipe}",
        "-c",
        f"id={xp_id}",
    ]
    for override in overrides:
        command += ["-c", override]
    print("+", " ".join(command), flush=True)
    start = time.time()
    log = workdir / f"{xp_id}.log"
    with log.open("w") as fp:
        status = subprocess.run(command, cwd=ROOT, stdout=fp, stderr=subprocess.STDOUT)
    elapsed = time.time() - start
    if status.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {status.returncode}): see {log}")
    results = max(
        (workdir / "experiments" / xp_id).rglob("results.csv"),
        key=lambda p: p.stat().st_mtime,
    )
    return pd.read_csv(results), elapsed


def read_tsv(path: Path) -> dict:
    with path.open(encoding="utf-8") as fp:
        return dict(line.rstrip("\n").split("\t", 1) for line in fp if line.strip())


def read_run(path: Path, depth: int) -> dict:
    """query id -> [(document id, score)] in rank order"""
    run = defaultdict(list)
    with path.open() as fp:
        for line in fp:
            qid, _, docid, _, score, _ = line.split()
            run[qid].append((docid, float(score)))
    return {qid: sorted(docs, key=lambda d: -d[1])[:depth] for qid, docs in run.items()}


def bm25s_ndcg(folder: Path, queries_file: str, qrels_file: str, k1, b) -> float:
    """nDCG@10 of bm25s with the given parameters (judged queries)"""
    import bm25s
    import Stemmer

    documents = read_tsv(folder / "docs.tsv")
    queries = read_tsv(folder / queries_file)
    qrels = list(ir_measures.read_trec_qrels(str(folder / qrels_file)))
    judged = {q.query_id for q in qrels if q.relevance > 0}
    queries = {q: t for q, t in queries.items() if q in judged and t.strip()}
    ids = list(documents)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(
        bm25s.tokenize(list(documents.values()), stopwords="en", stemmer=stemmer),
        show_progress=False,
    )
    tokens = bm25s.tokenize(list(queries.values()), stopwords="en", stemmer=stemmer)
    found, scores = retriever.retrieve(tokens, k=100, show_progress=False)
    run = [
        ir_measures.ScoredDoc(qid, ids[found[i, j]], float(scores[i, j]))
        for i, qid in enumerate(queries)
        for j in range(found.shape[1])
    ]
    ndcg = ir_measures.parse_measure("nDCG@10")
    return ir_measures.calc_aggregate([ndcg], qrels, run)[ndcg]


def splade_vectors(model_path: Path, texts, maxlen: int, batch_size=32):
    """SPLADE-max vectors with plain transformers (the reference of
    ``splade.encoders.transformers_splade_max``), as a CSR matrix"""
    import scipy.sparse as sp

    from splade.encoders import transformers_splade_max

    batches = transformers_splade_max(model_path, list(texts), maxlen, batch_size)
    return sp.vstack([sp.csr_matrix(batch.numpy()) for batch in batches]).tocsr()


def brute_force_agreement(folder, queries_file, run_path, model, qlen, dlen):
    """Compares our SPLADE top-10 with a brute-force dot product"""
    documents = read_tsv(folder / "docs.tsv")
    ids = [d for d, text in documents.items() if text.strip()]
    ours = read_run(run_path, 10)
    queries = {q: t for q, t in read_tsv(folder / queries_file).items() if q in ours}
    qids = list(queries)
    doc_vectors = splade_vectors(model, [documents[d] for d in ids], dlen)
    query_vectors = splade_vectors(model, [queries[q] for q in qids], qlen)
    scores = (query_vectors @ doc_vectors.T).toarray()
    same, overlap, score_diff = 0, [], 0.0
    for i, qid in enumerate(qids):
        top = np.argsort(-scores[i], kind="stable")[:10]
        reference = {ids[j]: scores[i, j] for j in top}
        mine = dict(ours[qid])
        # equal up to ties at the 10th score
        tenth = scores[i, top[-1]]
        ties = {ids[j] for j in np.flatnonzero(np.abs(scores[i] - tenth) < 1e-4)}
        agree = set(mine) - ties == set(reference) - ties
        same += agree
        overlap.append(len(set(mine) & set(reference)) / 10)
        for docid, score in mine.items():
            if docid in reference:
                score_diff = max(score_diff, abs(score - reference[docid]))
    return same / len(qids), float(np.mean(overlap)), score_diff, len(qids)


def recipe_values(yaml_file: Path) -> dict:
    """BM25 parameters and maximum lengths of a recipe"""
    from experimaestro.experiments.cli import ConfigurationLoader
    from experimaestro.utils.config import deep_merge, validate_attrs

    from splade.configuration import SPLADEConfiguration

    loader = ConfigurationLoader()
    loader.load(yaml_file)
    merged = {}
    for data in loader.yamls:
        deep_merge(merged, data)
    cfg = validate_attrs(SPLADEConfiguration, merged)
    return {
        "k1": cfg.bm25.k1,
        "b": cfg.bm25.b,
        "query_maxlen": cfg.model.query_maxlen,
        "document_maxlen": cfg.model.document_maxlen,
    }


def cell(column: str, value) -> str:
    if isinstance(value, float):
        if pd.isna(value):
            return "-"  # e.g. non-zeros of BM25
        return f"{value:.1f}" if column == "nonzeros_d" else f"{value:.4f}"
    return str(value)


def markdown(df: pd.DataFrame) -> str:
    columns = list(df.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        cells = [cell(column, v) for column, v in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finetune(args, zero_shot: pd.DataFrame):
    """Fine-tunes on SciFact train; the table's lines (markdown)"""
    finetuned, elapsed = run_experiment(
        args.workdir,
        "local_finetune.yaml",
        "splade-bench-finetune-scifact",
        "retrieval.evaluate_untrained=false",
    )
    finetuned = finetuned[["model"] + MEASURES + ["nonzeros_d"]]
    before = zero_shot[
        (zero_shot.collection == "scifact") & (zero_shot.model == "splade")
    ][MEASURES + ["nonzeros_d"]].assign(model="splade before fine-tuning (zero-shot)")
    finetuned = pd.concat([finetuned, before], ignore_index=True)
    return [
        "Hard negatives from the BM25 top-100, in-batch negatives, softmax",
        "cross-entropy; 200 steps of 16 queries; 50 training queries held",
        "out for validation (`splade/local_finetune.yaml`).",
        "",
        markdown(finetuned),
        "",
        f"Wall-clock time: {elapsed:.0f} s.",
    ]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.local_collections", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/splade-bench"),
        help="experimaestro's working directory (default: /tmp/splade-bench)",
    )
    common.add_path(parser, "--data", common.DATA, "folder of the local collections")
    common.add_path(parser, "--model", common.MODEL, "SPLADE model")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--skip-finetune",
        action="store_true",
        help="no fine-tuning run (about 30 s per training step on a 2-core CPU)",
    )
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    common.require_modules(arguments, "bm25s", "Stemmer", "pandas")
    common.require(arguments, args.data, "data folder", "--data")
    common.require(arguments, args.model, "model", "--model")
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, model = args.data.resolve(), args.model.resolve()

    # --- Zero-shot: BM25 and SPLADE on every collection
    rows, runs, times = [], {}, {}
    for name, (queries, qrels) in COLLECTIONS.items():
        folder = data / name
        df, times[name] = run_experiment(
            args.workdir,
            "local_zeroshot.yaml",
            f"splade-bench-zeroshot-{name}",
            f"data.local.documents={folder / 'docs.tsv'}",
            f"data.local.splits.test.queries={folder / queries}",
            f"data.local.splits.test.qrels={folder / qrels}",
            f"model.base_hf_id={model}",
        )
        for _, row in df.iterrows():
            rows.append(
                {
                    "collection": name,
                    "model": row["model"],
                    **{m: row[m] for m in MEASURES},
                    "nonzeros_d": row.get("nonzeros_d"),
                }
            )
            runs[name, row["model"]] = Path(row["run"])
    zero_shot = pd.DataFrame(rows)

    # --- Fine-tuning on SciFact train, evaluated on SciFact test
    # (the model before fine-tuning is the zero-shot row of SciFact)
    finetune_text = [
        "Not run (`--skip-finetune`): on this project's shared 2-core CPU a",
        "training step of `splade/local_finetune.yaml` took about 32 s (200",
        "steps: about 2 hours, plus indexing). Run it without the option, or",
        "on a GPU.",
    ]
    if not args.skip_finetune:
        finetune_text = finetune(args, zero_shot)

    # --- Outside references, same run
    values = recipe_values(ROOT / "splade" / "local_zeroshot.yaml")
    scifact = zero_shot[zero_shot.collection == "scifact"].set_index("model")
    ours_bm25 = float(scifact.loc["bm25", "nDCG@10"])
    reference_bm25 = bm25s_ndcg(
        data / "scifact", *COLLECTIONS["scifact"], values["k1"], values["b"]
    )
    same, overlap, score_diff, count = brute_force_agreement(
        data / "scifact",
        COLLECTIONS["scifact"][0],
        runs["scifact", "splade"],
        model,
        values["query_maxlen"],
        values["document_maxlen"],
    )

    command = common.command_line("bench.local_collections")
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}` (recipes `splade/local_zeroshot.yaml` and",
            "`splade/local_finetune.yaml` run by `experimaestro run-experiment`;",
            f"data in `{common.shown(args.data)}`, model `{common.shown(args.model)}`;",
            "2-core CPU machine, shared). Judged queries only (SciFact: test",
            "split; CISI: 76 of 112 queries). BM25: k1 "
            f"{values['k1']}, b {values['b']}.",
            "",
            "### Zero-shot (no training)",
            "",
            markdown(zero_shot),
            "",
            "Wall-clock time per collection (both models; tasks already"
            " finished in the --workdir are reused): "
            + ", ".join(f"{n} {t:.0f} s" for n, t in times.items())
            + ".",
            "",
            "### SPLADE fine-tuned on SciFact train, SciFact test",
            "",
            *finetune_text,
            "",
            "### Sanity against outside references (same run)",
            "",
            "| check | ours | reference | difference |",
            "|---|---|---|---|",
            f"| BM25 nDCG@10, SciFact test, vs bm25s (same k1, b) | {ours_bm25:.4f}"
            f" | {reference_bm25:.4f} | {ours_bm25 - reference_bm25:+.4f} |",
            f"| SPLADE top-10 = brute-force dot product ({count} queries) |"
            f" {same:.1%} of queries | mean overlap {overlap:.1%} |"
            f" max score difference {score_diff:.2e} |",
            "",
        ]
    )
    print(text)
    if not args.no_write:
        common.write_section(SECTION, text)


if __name__ == "__main__":
    main()
