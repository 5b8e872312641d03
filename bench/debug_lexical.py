"""BM25 on the embedded debug collection over a tokenizer's pieces: the
lexical score a SPLADE model on that vocabulary starts from

The debug collection (:mod:`splade.debug_data`) is written with made-up
words. A model whose vocabulary is those words (the generated BERT and
Llama) matches them whole; a pretrained tokenizer cuts them into pieces
that other made-up words share, which lowers what lexical matching alone
reaches. This prints BM25's RR@10 and nDCG@10 on the test queries with
whitespace words (the debug run's ``bm25`` row) and with each tokenizer
given.

    python -m bench.debug_lexical --tokenizer ../shared/models/smollm2-135m
"""

import argparse
from pathlib import Path

import numpy as np

from bench import common

SMOLLM2 = common.SHARED / "models" / "smollm2-135m"


def bm25_run(documents, queries, analyze):
    """BM25 (Lucene's IDF, the k1 and b of the debug run's ``bm25``
    section) of every document for every query: qid -> {docid: score}
    (positive scores only)"""
    import scipy.sparse as sp

    from splade.configuration import BM25

    k1, b = BM25().k1, BM25().b

    vocabulary = {}
    rows, columns = [], []
    for row, (_, text) in enumerate(documents):
        for token in analyze(text):
            rows.append(row)
            columns.append(vocabulary.setdefault(token, len(vocabulary)))
    counts = sp.csr_matrix(
        (np.ones(len(rows)), (rows, columns)), (len(documents), len(vocabulary))
    )
    counts.sum_duplicates()
    from splade.encoders.idf import bm25_idf

    idf = bm25_idf(len(documents), np.diff(counts.tocsc().indptr))
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    norm = k1 * (1 - b + b * lengths / lengths.mean())
    weights = counts.copy()
    row_of = np.repeat(np.arange(len(documents)), np.diff(counts.indptr))
    weights.data = idf[counts.indices] * counts.data * (k1 + 1)
    weights.data /= counts.data + norm[row_of]
    run = {}
    for qid, text in queries:
        terms = [vocabulary[t] for t in analyze(text) if t in vocabulary]
        query = np.bincount(terms, minlength=len(vocabulary))
        scores = weights @ query
        run[qid] = {documents[i][0]: float(scores[i]) for i in np.flatnonzero(scores)}
    return run


def evaluate(collection, analyze, split="test"):
    """RR@10 and nDCG@10 of BM25 with ``analyze`` on ``split``"""
    import ir_measures
    from ir_measures import RR, nDCG

    qrels = {}
    for qid, docid, relevance in collection.qrels[split]:
        qrels.setdefault(qid, {})[docid] = relevance
    run = bm25_run(collection.documents, collection.queries[split], analyze)
    found = ir_measures.calc_aggregate([RR @ 10, nDCG @ 10], qrels, run)
    return {"RR@10": found[RR @ 10], "nDCG@10": found[nDCG @ 10]}


def pieces_shared(collection, tokenize):
    """(made-up words, mean pieces per word, words that share a piece with
    another made-up word)"""
    groups = collection.document_words + collection.query_words
    words = sorted({w for group in groups for w in group})
    split = {w: tokenize(" " + w) for w in words}
    owners = {}
    for word, pieces in split.items():
        for piece in set(pieces):
            owners.setdefault(piece, set()).add(word)
    sharing = sum(any(len(owners[p]) > 1 for p in pieces) for pieces in split.values())
    return len(words), float(np.mean([len(p) for p in split.values()])), sharing


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.debug_lexical", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        action="append",
        help="a Hugging Face tokenizer's folder, repeatable (default: "
        "../shared/models/smollm2-135m)",
    )
    return parser


def main(argv=None):
    arguments = parser()
    args = arguments.parse_args(argv)
    common.require_modules(arguments, "scipy")
    tokenizers = args.tokenizer or [SMOLLM2]
    for folder in tokenizers:
        common.require(arguments, folder, "tokenizer", "--tokenizer")
    from transformers import AutoTokenizer

    from splade.debug_data import generate

    collection = generate()
    found = evaluate(collection, lambda text: text.lower().split())
    print(
        "| analysis | RR@10 | nDCG@10 | pieces per made-up word "
        "| words sharing a piece |"
    )
    print("|---|---:|---:|---:|---:|")
    print(
        f"| whitespace words | {found['RR@10']:.4f} | {found['nDCG@10']:.4f} | 1 | 0 |"
    )
    for folder in tokenizers:
        tokenize = AutoTokenizer.from_pretrained(folder).tokenize
        found = evaluate(collection, tokenize)
        words, pieces, sharing = pieces_shared(collection, tokenize)
        print(
            f"| {common.shown(folder)} pieces | {found['RR@10']:.4f} | "
            f"{found['nDCG@10']:.4f} | {pieces:.2f} | {sharing} of {words} |"
        )


if __name__ == "__main__":
    main()
