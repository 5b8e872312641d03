"""splade_v3.yaml and splade_v3_idf.yaml end to end on the miniature MS
MARCO of tests/staging.py (slow), with size overrides only: a small masked
language model made here stands for SPLADE++ SelfDistil (the first stage and
the initial model) and for CoCondenser, two small cross-encoders for the
teacher ensemble. The two recipes share one workspace: the inference-free
recipe reuses the first stage's index, the pool and every teacher's scores,
and computes its IDF table on the passages"""

import sys

import pandas as pd
import pytest
from conftest import failure_report, run, user_environment
from staging import stage_msmarco

pytestmark = pytest.mark.slow

#: Size overrides (the recipes' values otherwise)
SIZES = [
    "model.base_hf_id={mlm}",
    "model.query_maxlen=16",
    "model.document_maxlen=64",
    "model.lambda_warmup_steps=5",
    "learner.optimization.max_epochs=2",
    "learner.optimization.steps_per_epoch=4",
    "learner.optimization.batch_size=4",
    "learner.optimization.num_warmup_steps=2",
    "learner.negatives=4",
    "learner.validation_interval=1",
    "learner.num_workers=0",
    "data.validation_size=20",
    "bm25.validation_topk=20",
    "indexation.batch_size=64",
    "retrieval.topk=100",
    "retrieval.efficiency_queries=10",
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


def make_models(texts, folder):
    """A small masked language model of the collection's words, and two
    cross-encoders of its shape (random weights: they score, badly)"""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from splade.tiny_model import make_tiny_mlm

    mlm = folder / "mlm"
    make_tiny_mlm(texts, mlm)
    teachers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        teacher = folder / f"cross-encoder-{seed}"
        config = BertConfig.from_pretrained(mlm, num_labels=1)
        BertForSequenceClassification(config).save_pretrained(teacher)
        AutoTokenizer.from_pretrained(mlm).save_pretrained(teacher)
        teachers.append(teacher)
    return mlm, teachers


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    data = stage_msmarco(home / "datamaestro")
    texts = list(data["documents"]) + [
        text for queries in data["queries"].values() for text in queries.values()
    ]
    mlm, (teacher_a, teacher_b) = make_models(texts, home / "models")
    values = dict(mlm=mlm, teacher_a=teacher_a, teacher_b=teacher_b)
    outcomes = {}
    for recipe in RECIPES:
        command = ["experimaestro", "run-experiment", f"splade/{recipe}.yaml"]
        for option in SIZES:
            command += ["-c", option.format(**values)]
        log = home / f"{recipe}.log"
        outcomes[recipe] = run(command, env, log, timeout=1800), log
    return home, outcomes


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
    assert not (home / "network.log").exists()


def test_the_recipes_share_the_pool_and_the_teachers(runs):
    home, _ = runs
    jobs = home / "experiments/splade/jobs"
    assert len(list(jobs.glob("splade.mining.minepool/*"))) == 1
    assert len(list(jobs.glob("splade.mining.scorecandidates/*"))) == 2
    assert len(list(jobs.glob("splade.mining.ensemblescores/*"))) == 1
    assert len(list(jobs.glob("splade.encoders.idf.computeidf/*"))) == 1
