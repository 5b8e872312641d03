"""Zero-shot on BEIR, run (slow): BEIR datasets are staged in datamaestro's
own data folder of a new HOME (tests/support/staging.py), so that nothing is
downloaded, and ``experimaestro run-experiment`` runs on them (the dry runs of
splade/beir.yaml: tests/unit/test_beir.py)"""

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
    needs_scifact,
    run,
    user_environment,
)
from shared_runs import GROUP, experiment_jobs
from staging import stage_beir_from_tsv

BEIR = ROOT / "splade" / "beir.yaml"


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


@pytest.mark.slow
@pytest.mark.xdist_group(GROUP)
def test_a_training_recipe_with_the_beir_tests(debug_workspace, debug_beir_run):
    """debug.yaml plus _beir.yaml (a YAML file of three lines), in the
    workspace of the debug run (tests/support/shared_runs.py), where two BEIR
    collections of debug documents are staged: the trained checkpoint (the
    debug run's, reused) is evaluated on the debug test queries and on each
    BEIR collection, each with its own index"""
    home = debug_workspace.home
    df = results(home, "splade-debug-beir").set_index(["dataset", "model"])
    for key in ("debug", "arguana", "scidocs", "BEIR-13 (2 of 13)"):
        for model in ("bm25", "splade"):
            assert 0 <= df.loc[(key, model), "nDCG@10"] <= 1, (key, model)
    # trained once, three SPLADE indices (debug documents, two BEIR corpora)
    jobs = experiment_jobs(home, "splade-debug-beir")
    tasks = [job.parent.name for job in jobs]
    assert tasks.count("xpm_torch.learner.learner") == 1
    assert tasks.count(SPLADE_INDEX_TASK) == 3
    # the model learned on the debug collection helps on its documents
    assert (
        df.loc[("arguana", "splade"), "nDCG@10"]
        > df.loc[("arguana", "bm25"), "nDCG@10"]
    )
    assert not (home / "network.log").exists()
