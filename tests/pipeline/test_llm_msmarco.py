"""splade_llm.yaml (Lion-SP-1B-like) and splade_llm_topk.yaml (LACONIC-like)
end to end on the miniature MS MARCO of tests/support/staging.py (slow),
staged once with the other MS MARCO recipes' (tests/support/shared_runs.py),
with size overrides only: a small Llama causal LM of the collection's words
stands for Llama-3.2-1B / Llama-3-8B. The whole chain of the recipes runs:
MNTP adaptation on the passages (with LoRA), the ranking training with LoRA
(bidirectional attention, gradient checkpointing), the index and the
evaluations on MS MARCO dev and TREC DL 2019 / 2020"""

import pandas as pd
import pytest
from conftest import failure_report, run
from shared_runs import MSMARCO_GROUP, experiment_jobs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(MSMARCO_GROUP)]

#: Terms kept per document by splade_llm_topk.yaml in the test
TOP_K = 8

#: Size overrides (the recipes' values otherwise)
SIZES = [
    "model.base_hf_id={llama}",
    "model.query_maxlen=16",
    "model.document_maxlen=64",
    "model.lambda_warmup_steps=5",
    "model.mntp.steps=4",
    "model.mntp.batch_size=8",
    "model.mntp.maxlen=64",
    # the staged collection has 2,000 of the 8.8M passages that its
    # datamaestro definition counts (the passages MNTP draws from)
    "model.mntp.max_documents=2000",
    "model.mntp.requirements=duration=1h",
    "learner.optimization.max_epochs=2",
    "learner.optimization.steps_per_epoch=4",
    "learner.optimization.batch_size=4",
    "learner.optimization.num_warmup_steps=2",
    "learner.validation_interval=1",
    "learner.num_workers=0",
    "data.validation_size=20",
    "bm25.validation_topk=20",
    "indexation.batch_size=64",
    "retrieval.topk=100",
    "retrieval.efficiency_queries=10",
]

#: recipe -> (experiment id, its own overrides): the top-k of the
#: documents (512 in the recipe) cut to 8 terms, below what the small model's
#: documents have, so that the test sees it bite
RECIPES = {
    "splade_llm": ("splade-llm", []),
    "splade_llm_topk": (
        "splade-llm-topk",
        ["data.train_count={triples}", f"model.topk.document={TOP_K}"],
    ),
}


@pytest.fixture(scope="module")
def runs(msmarco_workspace):
    ws = msmarco_workspace
    outcomes = {}
    for recipe, (_, overrides) in RECIPES.items():
        command = ["experimaestro", "run-experiment", f"splade/{recipe}.yaml"]
        for option in SIZES + overrides:
            command += ["-c", option.format(**ws.values)]
        log = ws.home / f"{recipe}.log"
        outcomes[recipe] = run(command, ws.env, log, timeout=1800), log
    return ws.home, outcomes


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_end_to_end(runs, recipe):
    home, outcomes = runs
    code, log = outcomes[recipe]
    assert code == 0, failure_report(home, log)
    text = log.read_text(errors="replace")
    df = pd.read_csv(text.split("Saved results in ")[1].split()[0])
    tests = {"msmarco_dev", "trec2019", "trec2020"}
    for model in ("bm25", "splade"):
        rows = df[df["model"] == model]
        assert set(rows["dataset"]) == tests, (model, df)
        for measure in ("RR@10", "nDCG@10", "R@1000", "AP"):
            assert rows[measure].between(0, 1).all(), (model, measure)
    splade = df[df["model"] == "splade"]
    assert (splade["nonzeros_d"] > 0).all() and (splade["latency_ms"] > 0).all()
    # MNTP adapted the model that the ranking training started from
    tasks = [job.parent.name for job in experiment_jobs(home, RECIPES[recipe][0])]
    assert tasks.count("splade.mntp.mntpadaptation") == 1
    assert tasks.count("xpm_torch.learner.learner") == 1
    assert not (home / "network.log").exists()


def test_top_k_bounds_the_document_vectors(runs):
    """splade_llm_topk.yaml keeps at most its top-k terms per document,
    where splade_llm.yaml's vectors of the same model size have more"""
    home, outcomes = runs
    nonzeros = {}
    for recipe, (code, log) in outcomes.items():
        assert code == 0, failure_report(home, log)
        text = log.read_text(errors="replace")
        df = pd.read_csv(text.split("Saved results in ")[1].split()[0])
        nonzeros[recipe] = df[df["model"] == "splade"]["nonzeros_d"]
    assert (nonzeros["splade_llm_topk"] <= TOP_K).all(), nonzeros
    assert (nonzeros["splade_llm"] > TOP_K).all(), nonzeros
