"""Zero-shot on BEIR: test collections with their own documents, each indexed
once (BM25 and SPLADE), and the BEIR-13 average

The dry run of splade/beir.yaml builds the task graph of the 13 collections
offline. The runs (marked slow) stage BEIR datasets in datamaestro's own data
folder of a new HOME (tests/staging.py), so that nothing is downloaded, and
run ``experimaestro run-experiment`` on them.
"""

import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import (
    ROOT,
    SCIFACT,
    SHARED,
    SPLADE_INDEX_TASK,
    SPLADE_TINY,
    failure_report,
    load,
    needs_scifact,
    run,
    user_environment,
)
from dryrun import dataset_id, dry_run, of_type
from staging import stage_beir, stage_beir_from_tsv
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


# --- Runs on staged BEIR datasets


def results(home: Path, experiment: str) -> pd.DataFrame:
    (path,) = (home / f"experiments/splade/experiments/{experiment}").glob(
        "current/results/results.csv"
    )
    return pd.read_csv(path)


def prepared_home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    return home


@pytest.mark.slow
@needs_scifact
def test_zero_shot_on_two_staged_beir_collections(tmp_path):
    """splade/beir.yaml restricted to SciFact and a second collection
    (Cranfield staged as SCIDOCS), splade-bert-tiny zero-shot: SciFact's
    figures are those of splade/local_zeroshot.yaml on the same files
    (BENCHMARKS.md, "Local collections"), the average row is the mean"""
    home = prepared_home(tmp_path)
    datadir = home / "datamaestro"
    stage_beir_from_tsv(datadir, "scifact", SCIFACT)
    stage_beir_from_tsv(datadir, "scidocs", SHARED / "data" / "cranfield")
    env = user_environment(home)
    command = ["experimaestro", "run-experiment", str(BEIR)]
    options = [
        "data.tests_only=scifact,scidocs",
        f"model.base_hf_id={SPLADE_TINY}",
        # as splade/local_zeroshot.yaml
        "model.query_maxlen=64",
        "retrieval.measures=nDCG@10,RR@10,R@100,R@1000",
    ]
    log = home / "run.log"
    code = run(command + [x for o in options for x in ("-c", o)], env, log, 3600)
    assert code == 0, failure_report(home, log)
    assert not (home / "network.log").exists()

    df = results(home, "splade-beir").set_index(["dataset", "model"])
    scifact = df.loc["scifact"]
    assert scifact.loc["bm25", "nDCG@10"] == pytest.approx(0.6840, abs=5e-4)
    assert scifact.loc["splade", "nDCG@10"] == pytest.approx(0.6436, abs=5e-4)
    for model in ("bm25", "splade"):
        average = df.loc[("BEIR-13 (2 of 13)", model)]
        for measure in ("nDCG@10", "R@100"):
            expected = (
                df.loc[("scifact", model), measure]
                + df.loc[("scidocs", model), measure]
            ) / 2
            assert average[measure] == pytest.approx(expected)
    # one SPLADE index per collection
    indices = list((home / "experiments/splade/jobs").glob(f"{SPLADE_INDEX_TASK}/*"))
    assert len(indices) == 2


def debug_as_beir(datadir: Path, name: str, start: int, count: int):
    """Stages the BEIR dataset ``name`` made of debug documents and test
    queries (whose relevant documents are among them)"""
    from splade.debug_data import DebugCollectionSpec, generate

    collection = generate(DebugCollectionSpec())
    documents = collection.documents[start : start + count]
    ids = {docid for docid, _ in documents}
    qrels = [
        (qid, docid, rel)
        for qid, docid, rel in collection.qrels["test"]
        if docid in ids and rel > 0
    ]
    judged = {qid for qid, _, _ in qrels}
    queries = {qid: text for qid, text in collection.queries["test"] if qid in judged}
    stage_beir(
        datadir,
        name,
        ((docid, "", text) for docid, text in documents),
        queries,
        {"test": qrels},
    )
    return len(queries)


@pytest.mark.slow
def test_a_training_recipe_with_the_beir_tests(tmp_path):
    """debug.yaml plus _beir.yaml (a YAML file of three lines): the trained
    checkpoint is evaluated on the debug test queries and on each staged
    BEIR collection, each with its own index"""
    home = prepared_home(tmp_path)
    datadir = home / "datamaestro"
    assert debug_as_beir(datadir, "arguana", 0, 400) > 5
    assert debug_as_beir(datadir, "scidocs", 1000, 400) > 5
    recipe = ROOT / "splade" / "debug_beir_test.yaml"
    recipe.write_text(
        "id: splade-debug-beir\nimports: [debug.yaml, _beir.yaml]\n"
        "title: debug\ndescription: debug + BEIR\n"
    )
    try:
        env = user_environment(home)
        command = ["experimaestro", "run-experiment", str(recipe)]
        options = ["-c", "data.tests_only=debug,arguana,scidocs"]
        log = home / "run.log"
        assert run(command + options, env, log, 3600) == 0, failure_report(home, log)
    finally:
        recipe.unlink()
    df = results(home, "splade-debug-beir").set_index(["dataset", "model"])
    for key in ("debug", "arguana", "scidocs", "BEIR-13 (2 of 13)"):
        for model in ("bm25", "splade"):
            assert 0 <= df.loc[(key, model), "nDCG@10"] <= 1, (key, model)
    # trained once, three SPLADE indices (debug documents, two BEIR corpora)
    jobs = home / "experiments/splade/jobs"
    assert len(list(jobs.glob("xpm_torch.learner.learner/*"))) == 1
    assert len(list(jobs.glob(f"{SPLADE_INDEX_TASK}/*"))) == 3
    # the model learned on the debug collection helps on its documents
    assert (
        df.loc[("arguana", "splade"), "nDCG@10"]
        > df.loc[("arguana", "bm25"), "nDCG@10"]
    )
