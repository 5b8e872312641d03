"""Zero-shot on BEIR: test collections with their own documents, each indexed
once (BM25 and SPLADE), and the BEIR-13 average

The dry run of splade/beir.yaml builds the task graph of the 13 collections
offline (the runs on staged BEIR datasets: tests/pipeline/test_beir_runs.py).
"""

import pandas as pd
import pytest
from conftest import (
    ROOT,
    load,
)
from dryrun import dataset_id, dry_run, of_type
from xpmir.evaluation import Evaluate
from xpmir.index.bow import BOWSparseRetrieverIndexBuilder
from xpmir.index.sparse import AbstractSparseRetrieverIndexBuilder

from splade.requirements import collection_requirements
from splade.results import ResultsTable

BEIR = ROOT / "splade" / "beir.yaml"
BEIR_13 = [
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "touche2020",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
    "quora",
]


def test_dry_run_indexes_each_collection_once(tmp_path):
    """13 collections, each with its BM25 and SPLADE index, nothing
    downloaded (the network is refused in the test process)"""
    cfg = load(BEIR)
    assert list(cfg.data.tests) == BEIR_13
    assert cfg.data.averages == {"BEIR-13": BEIR_13}
    tasks = dry_run(cfg, tmp_path)
    bm25 = of_type(tasks, BOWSparseRetrieverIndexBuilder)
    splade = of_type(tasks, AbstractSparseRetrieverIndexBuilder)
    assert len(bm25) == len(splade) == 13
    documents = {dataset_id(index.documents) for index in splade}
    assert documents == {dataset_id(index.documents) for index in bm25}
    assert len(documents) == 13
    evaluations = of_type(tasks, Evaluate)
    assert len(evaluations) == 26  # BM25 and SPLADE on each
    for evaluation in evaluations:
        index = evaluation.retriever.index
        assert index.documents is evaluation.dataset.documents
        measures = {(m.identifier, m.cutoff) for m in evaluation.measures}
        assert {("nDCG", 10), ("R", 100)} <= measures
    (encoder,) = {index.encoder.encoder.config.hf_id for index in splade}
    assert encoder == "naver/splade-cocondenser-ensembledistil"


def test_large_collections_ask_for_more():
    """The launcher requirements of the 4 to 5M-document collections (and
    NQ's 2.7M) are theirs; the others use those of the sections"""
    cfg = load(BEIR)
    large = {"nq", "hotpotqa", "dbpedia-entity", "fever", "climate-fever"}
    assert set(cfg.data.test_requirements) == large
    defaults = collection_requirements(cfg)
    assert defaults.bm25 == cfg.bm25.requirements
    assert defaults.indexation == cfg.indexation.requirements
    assert defaults.retrieval == cfg.retrieval.requirements
    for key in BEIR_13:
        required = collection_requirements(cfg, key)
        for section in ("bm25", "indexation", "retrieval"):
            value, default = getattr(required, section), getattr(defaults, section)
            assert (value != default) == (key in large), (key, section)
            assert value.startswith(
                "duration=" + ("12h" if key in large else "2h")
            ) or (section == "indexation")


def test_collections_on_the_same_documents_share_their_indices(tmp_path):
    """MS MARCO dev and TREC DL have the same documents: one index each"""
    cfg = load(ROOT / "splade" / "normal_DistilMSE.yaml")
    tasks = dry_run(cfg, tmp_path)
    assert len(of_type(tasks, AbstractSparseRetrieverIndexBuilder)) == 1
    assert len(of_type(tasks, BOWSparseRetrieverIndexBuilder)) == 1
    assert len(of_type(tasks, Evaluate)) == 6


def test_a_selection_of_tests(tmp_path):
    cfg = load(BEIR, "data.tests_only=scifact,nfcorpus")
    tasks = dry_run(cfg, tmp_path)
    keys = {e.__xpm__.tags()["dataset"] for e in of_type(tasks, Evaluate)}
    assert keys == {"scifact", "nfcorpus"}
    assert len(of_type(tasks, AbstractSparseRetrieverIndexBuilder)) == 2


def test_average_rows():
    """The average of a model over the collections it was evaluated on, with
    how many of them when some are missing"""
    table = ResultsTable(["nDCG@10"], {"avg": ["a", "b", "c"]})
    rows = pd.DataFrame(
        [
            {"dataset": "a", "model": "bm25", "nDCG@10": 0.2},
            {"dataset": "b", "model": "bm25", "nDCG@10": 0.4},
            {"dataset": "c", "model": "bm25", "nDCG@10": 0.6},
            {"dataset": "a", "model": "splade", "nDCG@10": 0.5},
            {"dataset": "b", "model": "splade", "nDCG@10": 0.7},
        ]
    )
    averages = table._average_rows(rows).set_index("model")
    assert averages.loc["bm25", "dataset"] == "avg"
    assert averages.loc["bm25", "nDCG@10"] == pytest.approx(0.4)
    assert averages.loc["splade", "dataset"] == "avg (2 of 3)"
    assert averages.loc["splade", "nDCG@10"] == pytest.approx(0.6)
