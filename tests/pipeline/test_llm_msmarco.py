"""splade_llm.yaml (Lion-SP-1B-like) end to end on the miniature MS MARCO of
tests/support/staging.py (slow), staged once with the other MS MARCO
recipes' (tests/support/shared_runs.py), with size overrides only: a small
Llama causal LM of the collection's words stands for Llama-3.2-1B. The
whole chain of the recipe runs: MNTP adaptation on the passages (with
LoRA), the ranking training with LoRA (bidirectional attention, gradient
checkpointing), the index and the evaluations on MS MARCO dev and TREC DL
2019 / 2020. (splade_llm_topk.yaml, which imports it, and its top-k:
tests/unit/test_llm_recipes.py and tests/unit/test_decoder_encoder.py)"""

import pytest
from shared_runs import (
    MSMARCO_GROUP,
    MSMARCO_SIZES,
    check_msmarco_results,
    experiment_jobs,
    run_msmarco_recipes,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(MSMARCO_GROUP)]

#: Size overrides (the recipes' values otherwise)
SIZES = [
    *MSMARCO_SIZES,
    "model.base_hf_id={llama}",
    "model.mntp.steps=4",
    "model.mntp.batch_size=8",
    "model.mntp.maxlen=64",
    # the staged collection has 2,000 of the 8.8M passages that its
    # datamaestro definition counts (the passages MNTP draws from)
    "model.mntp.max_documents=2000",
    "model.mntp.requirements=duration=1h",
    "learner.optimization.steps_per_epoch=4",
    "learner.optimization.batch_size=4",
]

RECIPES = {"splade_llm": "splade-llm"}


@pytest.fixture(scope="module")
def runs(msmarco_workspace):
    ws = msmarco_workspace
    return ws.home, run_msmarco_recipes(ws, RECIPES, SIZES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_end_to_end(runs, recipe):
    home, outcomes = runs
    check_msmarco_results(home, *outcomes[recipe])
    # MNTP adapted the model that the ranking training started from
    tasks = [job.parent.name for job in experiment_jobs(home, RECIPES[recipe])]
    assert tasks.count("splade.mntp.mntpadaptation") == 1
    assert tasks.count("xpm_torch.learner.learner") == 1
