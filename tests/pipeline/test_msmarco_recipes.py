"""Every MS MARCO recipe, end to end, on a miniature MS MARCO

A miniature MS MARCO passage collection (tests/support/staging.py: 2,000
passages, train / dev / dev.small / TREC DL 2019 and 2020 queries with their
judgements, Hofstätter's teacher file, the id triples, the cross-encoder
scores of the hard negatives) is staged in datamaestro's own data folder of
a new HOME (tests/support/shared_runs.py, shared with test_v3_msmarco.py),
so that the recipes' dataset ids prepare offline; each recipe then runs
through ``experimaestro run-experiment`` with size overrides only (a small
masked language model and cross-encoder made here, a few steps), and its
results table is checked. The recipes share one workspace, two of them
running at a time: what they have in common (the BM25 indices of the
collection, the validation collection...) runs once. The recipes that
import normal_DistilMSE.yaml's test collections are evaluated on MS MARCO
dev only: its own run evaluates all three."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from conftest import ROOT, run
from shared_runs import (
    MSMARCO_GROUP,
    MSMARCO_SIZES,
    MSMARCO_TESTS,
    check_msmarco_results,
    experiment_jobs,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(MSMARCO_GROUP)]

#: The test collections of the recipes
TESTS = MSMARCO_TESTS

#: The recipes that import normal_DistilMSE.yaml's test collections
#: (``data.tests``: the three of :data:`TESTS`, which its own run
#: evaluates) are evaluated on MS MARCO dev only
#: (``data.tests_only=msmarco_dev``): 10 evaluation jobs fewer
INHERITED_TESTS = "data.tests_only=msmarco_dev"

#: recipe -> its own size overrides
RECIPES = {
    "normal_DistilMSE": [],
    "normal": ["data.train_count={triples}"],
    "normal_doc": ["data.train_count={triples}"],
    "small": [
        "indexation.max_docs=1000",
        "data.test_sizes.msmarco_dev=20",
        INHERITED_TESTS,
    ],
    "splade_pp_ed": [INHERITED_TESTS],
    "splade_pp_sd": [
        "mining.teacher={cross_encoder}",
        "mining.teacher_maxlen=64",
        "mining.query_count=40",
        "mining.topk=10",
        "mining.requirements=duration=1h",
        INHERITED_TESTS,
    ],
    "efficient_splade_v": ["model.query_hf_id={mlm}", INHERITED_TESTS],
    "efficient_splade_vi_bt": ["model.query_hf_id={mlm}", INHERITED_TESTS],
}


def evaluated_collections(recipe: str) -> set:
    """The test collections that the run of ``recipe`` evaluates"""
    return {"msmarco_dev"} if INHERITED_TESTS in RECIPES[recipe] else TESTS


#: Size overrides of every recipe
COMMON = [
    *MSMARCO_SIZES,
    "model.base_hf_id={mlm}",
    "learner.optimization.steps_per_epoch=5",
    "learner.optimization.batch_size=8",
]


@pytest.fixture(scope="module")
def staged(msmarco_workspace):
    """The MS MARCO workspace (tests/support/shared_runs.py)"""
    ws = msmarco_workspace
    return ws.home, ws.env, ws.values


@pytest.fixture(scope="module")
def runs(staged):
    """recipe -> (exit status, log); two recipes at a time (experimaestro
    runs a task that both need once: the other one waits for it)"""
    home, env, values = staged

    def run_recipe(recipe):
        options = [o.format(**values) for o in COMMON + RECIPES[recipe]]
        command = ["experimaestro", "run-experiment", f"splade/{recipe}.yaml"]
        command += [x for option in options for x in ("-c", option)]
        log = home / f"{recipe}.log"
        return run(command, env, log, timeout=1800), log

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(RECIPES, pool.map(run_recipe, RECIPES), strict=True))


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_runs_end_to_end(staged, runs, recipe):
    home, _, _ = staged
    tests = evaluated_collections(recipe)
    df = check_msmarco_results(home, *runs[recipe], tests)
    if recipe == "splade_pp_sd":
        first = df[df["model"] == "splade-first-stage"]
        assert set(first["dataset"]) == tests


def test_restricted_recipes_inherit_the_tested_collections():
    """The recipes evaluated on MS MARCO dev only have the test collections
    of normal_DistilMSE.yaml, whose run evaluates all three"""
    from conftest import load

    expected = load(ROOT / "splade/normal_DistilMSE.yaml").data.tests
    assert set(expected) == TESTS
    for recipe, overrides in RECIPES.items():
        if INHERITED_TESTS in overrides:
            assert load(ROOT / f"splade/{recipe}.yaml").data.tests == expected, recipe


def test_the_recipes_share_their_common_tasks(staged, runs):
    """One BM25 index of the passages for all the recipes (small.yaml indexes
    the first 1,000 passages: a second one), counted over the jobs of the
    recipes' experiments (the workspace is shared with the SPLADE-v3 tests)"""
    home, _, _ = staged
    jobs = set()
    for recipe in RECIPES:
        experiment = yaml.safe_load((ROOT / f"splade/{recipe}.yaml").read_text())["id"]
        jobs |= set(experiment_jobs(home, experiment))
    task = "xpmir.index.bow.bowsparseretrieverindexbuilder"
    indices = [job for job in jobs if job.parent.name == task]
    assert len(indices) == 2
