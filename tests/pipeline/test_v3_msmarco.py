"""splade_v3.yaml and splade_v3_idf.yaml end to end on the miniature MS MARCO
of tests/support/staging.py (slow), staged once with the other MS MARCO
recipes' (tests/support/shared_runs.py), with size overrides only: a small
masked language model made here stands for SPLADE++ SelfDistil (the first
stage and the initial model) and for CoCondenser, two small cross-encoders
for the teacher ensemble. The two recipes share one workspace: the
inference-free recipe reuses the first stage's index, the pool and every
teacher's scores, and computes its IDF table on the passages"""

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
    "model.base_hf_id={mlm}",
    "learner.optimization.steps_per_epoch=4",
    "learner.optimization.batch_size=4",
    "learner.negatives=4",
    "mining.first_stage={mlm}",
    "mining.teachers={teacher_a},{teacher_b}",
    "mining.rescale={teacher_a}",
    "mining.teacher_maxlen=64",
    "mining.query_count=30",
    "mining.topk=5",
    "mining.random=5",
    "mining.depth=30",
    "mining.requirements=duration=1h",
]

RECIPES = ["splade_v3", "splade_v3_idf"]


@pytest.fixture(scope="module")
def runs(msmarco_workspace):
    ws = msmarco_workspace
    return ws.home, run_msmarco_recipes(ws, RECIPES, SIZES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_end_to_end(runs, recipe):
    home, outcomes = runs
    check_msmarco_results(home, *outcomes[recipe])


def test_the_recipes_share_the_pool_and_the_teachers(runs):
    """Counted over the jobs of the two experiments (the workspace is shared
    with the other MS MARCO recipes)"""
    home, _ = runs
    jobs = set(experiment_jobs(home, "splade-v3"))
    jobs |= set(experiment_jobs(home, "splade-v3-idf"))
    tasks = [job.parent.name for job in jobs]
    assert tasks.count("splade.mining.minepool") == 1
    assert tasks.count("splade.mining.scorecandidates") == 2
    assert tasks.count("splade.mining.ensemblescores") == 1
    assert tasks.count("splade.encoders.idf.computeidf") == 1
