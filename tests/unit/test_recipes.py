"""The paper's recipes, verified offline on the task graph they build"""

import pytest
from conftest import RECIPES, ROOT, load
from datamaestro_ir.data.distillation import PairwiseDistillationSamples
from datamaestro_ir.transforms import ShuffledTrainingTripletsLines
from dryrun import dataset_id, dry_run, of_type
from xpm_torch.learner import Learner
from xpm_torch.losses.batchwise import SoftmaxCrossEntropy
from xpmir.evaluation import Evaluate
from xpmir.index.bow import BOWSparseRetrieverIndexBuilder
from xpmir.index.sparse import (
    AbstractSparseRetrieverIndexBuilder,
)
from xpmir.letor.distillation.pairwise import (
    DistillationPairwiseTrainer,
    MSEDifferenceLoss,
)
from xpmir.letor.trainers.batchwise import BatchwiseTrainer
from xpmir.neural.splade import MaxAggregation

from splade.encoders import BinaryQueryEncoder
from splade.workarounds.xpm_torch import LastEpochMetrics, StaleCheckpointsCleaner

MSMARCO = "com.microsoft.msmarco.passage"


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """recipe name -> submitted tasks"""
    return {
        recipe.stem: dry_run(load(recipe), tmp_path_factory.mktemp(recipe.stem))
        for recipe in RECIPES
        # recipes on ../shared data are checked in test_local.py
        if not recipe.stem.startswith("local_")
    }


def learner(tasks) -> Learner:
    (task,) = of_type(tasks, Learner)
    return task


def optimization(task: Learner):
    """(lr, warm-up steps, weight decay) of every parameter group"""
    return {
        (o.optimizer.lr, o.scheduler.num_warmup_steps, o.optimizer.weight_decay)
        for o in task.optimizers
    }


def test_distilsplade_max(graphs):
    tasks = graphs["normal_DistilMSE"]
    task = learner(tasks)
    trainer = task.trainer
    assert isinstance(trainer, DistillationPairwiseTrainer)
    assert isinstance(trainer.lossfn, MSEDifferenceLoss)
    assert trainer.batch_size == 128
    (flops,) = trainer.hooks
    assert (flops.lambda_q, flops.lambda_d, flops.lambda_warmup_steps) == (
        0.5,
        0.4,
        50_000,
    )
    # naver/splade's AdamW: one group, every parameter decayed, eps 1e-6
    assert optimization(task) == {(2e-5, 6000, 0.01)}
    assert {o.optimizer.eps for o in task.optimizers} == {1e-6}
    assert flops.document_flops == "pairs_mean"
    assert task.max_epochs * task.steps_per_epoch == 153_600
    samples = trainer.sampler.sampler.samples
    assert isinstance(samples, PairwiseDistillationSamples)
    assert (
        dataset_id(samples)
        == "com.github.sebastian-hofstaetter.neural-ranking-kd.msmarco_ensemble_teacher"
    )
    hydrator = trainer.sampler.processors[0]
    assert dataset_id(hydrator.documentstore) == f"{MSMARCO}.documents"
    assert dataset_id(hydrator.querystore.topics) == f"{MSMARCO}.train.queries"

    scorer = task.model
    assert scorer.encoder.encoder.config.hf_id == "distilbert-base-uncased"
    assert scorer.encoder.maxlen == 256 and scorer.query_encoder.maxlen == 256
    assert isinstance(scorer.encoder.aggregation, MaxAggregation)
    assert task.fabric_config.precision == "auto"

    listener, cleaner, last = task.listeners
    assert isinstance(cleaner, StaleCheckpointsCleaner)
    assert isinstance(last, LastEpochMetrics)
    assert listener.metrics == {"RR@10": True, "nDCG@10": False}
    assert listener.validation_interval == 40

    (index,) = of_type(tasks, AbstractSparseRetrieverIndexBuilder)
    assert dataset_id(index.documents) == f"{MSMARCO}.documents"
    assert index.max_docs == 0

    evaluations = of_type(tasks, Evaluate)
    tests = {dataset_id(e.dataset) for e in evaluations}
    assert tests == {
        f"{MSMARCO}.dev.small",
        f"{MSMARCO}.trec2019",
        f"{MSMARCO}.trec2020",
    }
    models = {e.__xpm__.tags()["model"] for e in evaluations}
    assert models == {"bm25", "splade"}
    # TREC DL: binary measures count rel >= 2 (official evaluation)
    for evaluation in evaluations:
        trec = dataset_id(evaluation.dataset).endswith(("trec2019", "trec2020"))
        levels = {(m.identifier, m.rel) for m in evaluation.measures}
        assert levels == {
            ("RR", 2 if trec else 1),
            ("nDCG", 2 if trec else 1),
            ("R", 2 if trec else 1),
            ("AP", 2 if trec else 1),
        }
    for evaluation in evaluations:
        assert evaluation.retriever.topk == 1000
        measures = {(m.identifier, m.cutoff) for m in evaluation.measures}
        assert {("RR", 10), ("nDCG", 10), ("R", 1000)} <= measures


def test_validation_is_bm25_top50_of_500_dev_queries(graphs):
    from xpmir.datasets.adapters import RandomFold, RetrieverBasedCollection

    tasks = graphs["normal_DistilMSE"]
    (fold,) = of_type(tasks, RandomFold)
    assert fold.sizes == [500]
    assert dataset_id(fold.dataset) == f"{MSMARCO}.dev.judged"
    assert dataset_id(fold.exclude) == f"{MSMARCO}.dev.small.topics"
    (collection,) = of_type(tasks, RetrieverBasedCollection)
    (bm25,) = collection.retrievers
    assert bm25.topk == 50 and (bm25.model.k1, bm25.model.b) == (0.9, 0.4)


def test_splade_max_with_in_batch_negatives(graphs):
    task = learner(graphs["normal"])
    assert isinstance(task.trainer, BatchwiseTrainer)
    assert isinstance(task.trainer.lossfn, SoftmaxCrossEntropy)
    (flops,) = task.trainer.hooks
    assert (flops.lambda_q, flops.lambda_d) == (3e-4, 1e-4)
    (shuffled,) = of_type(graphs["normal"], ShuffledTrainingTripletsLines)
    assert dataset_id(shuffled.data.data) == f"{MSMARCO}.train.triples.id"
    assert dataset_id(shuffled.data.store) == f"{MSMARCO}.train.queries"


def test_splade_doc(graphs):
    task = learner(graphs["normal_doc"])
    assert isinstance(task.model.query_encoder, BinaryQueryEncoder)
    (flops,) = task.trainer.hooks
    assert (flops.lambda_q, flops.lambda_d) == (0, 1e-4)


def test_small(graphs):
    tasks = graphs["small"]
    task = learner(tasks)
    assert task.trainer.batch_size == 32
    assert task.max_epochs * task.steps_per_epoch == 20_000
    for index in of_type(tasks, AbstractSparseRetrieverIndexBuilder) + of_type(
        tasks, BOWSparseRetrieverIndexBuilder
    ):
        assert index.max_docs == 1_000_000
    assert dataset_id(task.trainer.sampler.sampler.samples).endswith("ensemble_teacher")


def test_debug_uses_embedded_data_and_model(graphs):
    tasks = graphs["debug"]
    task = learner(tasks)
    assert dataset_id(task.trainer.sampler.sampler.samples) == "splade.debug.train"
    hf_id = task.model.encoder.encoder.config.hf_id
    assert hf_id.endswith("model-v2") and (ROOT / hf_id).is_dir()
    assert {dataset_id(e.dataset) for e in of_type(tasks, Evaluate)} == {
        "splade.debug.test"
    }


def test_sweep_trains_one_model_per_value_and_shares_the_rest(graphs):
    from xpmir.datasets.adapters import RetrieverBasedCollection

    tasks = graphs["debug_sweep"]
    learners = of_type(tasks, Learner)
    values = sorted(task.trainer.hooks[0].lambda_d for task in learners)
    assert values == pytest.approx([0.01, 0.1, 1.0])
    assert sorted(t.__xpm__.tags()["model.lambda_d"] for t in learners) == values
    assert len(of_type(tasks, BOWSparseRetrieverIndexBuilder)) == 1
    assert len(of_type(tasks, RetrieverBasedCollection)) == 1
    assert len(of_type(tasks, AbstractSparseRetrieverIndexBuilder)) == 3
    evaluations = of_type(tasks, Evaluate)
    assert len(evaluations) == 4  # BM25 and one per value


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("launchers", ["single-gpu", "slurm"])
def test_requirements_find_a_launcher(recipe, launchers):
    """Every requirement string parses, and the example launchers of the
    README (launchers/*/launchers.py) find a launcher for it"""
    from experimaestro.launcherfinder.registry import LauncherRegistry

    registry = LauncherRegistry(ROOT / "launchers" / launchers)
    cfg = load(recipe)
    sections = [cfg.bm25, cfg.learner, cfg.indexation, cfg.retrieval]
    for section in sections + ([cfg.mining] if cfg.mining else []):
        assert registry.find(section.requirements) is not None, section.requirements
    for specific in cfg.data.test_requirements.values():
        for value in (specific.bm25, specific.indexation, specific.retrieval):
            assert value is None or registry.find(value) is not None, value


@pytest.mark.parametrize(
    "override,retriever_type,conversion,source_type",
    [
        (
            "retrieval.engine.name=bmp",
            "BMPSparseRetriever",
            "SafeBMPConverter",
            "ExhaustiveIndexBuilder",
        ),
        (
            "retrieval.engine.name=seismic",
            "SeismicSparseRetriever",
            "Sparse2Seismic",
            None,
        ),
        (
            "retrieval.engine.name=maxscore,retrieval.engine.compression.enabled=true",
            "SparseRetriever",
            "Compress",
            None,
        ),
        (
            "retrieval.engine.name=pisa,retrieval.engine.pisa.scale=50",
            "PisaRetriever",
            "PisaConverter",
            "ExhaustiveIndexBuilder",
        ),
    ],
)
def test_the_retrieval_engine_is_chosen_in_yaml(
    tmp_path, override, retriever_type, conversion, source_type
):
    """The SPLADE index is converted for the chosen engine, which evaluates
    the model; BM25 and the validation collection are unchanged"""
    overrides = override.split(",")
    tasks = dry_run(load(ROOT / "splade" / "debug.yaml", *overrides), tmp_path)
    (splade,) = [
        e for e in of_type(tasks, Evaluate) if e.__xpm__.tags()["model"] == "splade"
    ]
    assert type(splade.retriever).__qualname__.split(".")[0] == retriever_type
    converted = [t for t in tasks if type(t).__qualname__.startswith(conversion)]
    assert len(converted) == 1
    source = converted[0].index.__xpm__.task
    source_type = source_type or "SparseRetrieverIndexBuilder"
    assert type(source).__qualname__.startswith(source_type)
    if conversion == "PisaConverter":
        assert converted[0].scale == 50


def test_the_default_engine_is_exhaustive(tmp_path):
    """The SPLADE index is the exhaustive engine's, searched as it is"""
    from splade.efficiency import EvaluateWithEfficiency
    from splade.engines.exhaustive import ExhaustiveIndexBuilder, ExhaustiveRetriever

    tasks = dry_run(load(ROOT / "splade" / "debug.yaml"), tmp_path)
    (builder,) = of_type(tasks, AbstractSparseRetrieverIndexBuilder)
    assert isinstance(builder, ExhaustiveIndexBuilder)
    (splade,) = [
        e for e in of_type(tasks, Evaluate) if e.__xpm__.tags()["model"] == "splade"
    ]
    assert isinstance(splade.retriever, ExhaustiveRetriever)
    assert splade.retriever.index.__xpm__.task is builder
    # its evaluation also measures its efficiency; BM25's is xpmir's
    assert isinstance(splade, EvaluateWithEfficiency)
    assert splade.efficiency_queries == 1000
    (bm25,) = [e for e in of_type(tasks, Evaluate) if e is not splade]
    assert not isinstance(bm25, EvaluateWithEfficiency)


# --- SPLADE++ and Efficient SPLADE


def encoder_hf_id(encoder) -> str:
    return encoder.encoder.config.hf_id


def test_splade_pp_ensemble_distil(graphs):
    from splade.distillation import TeacherPairs

    task = learner(graphs["splade_pp_ed"])
    trainer = task.trainer
    assert isinstance(trainer, DistillationPairwiseTrainer)
    assert isinstance(trainer.lossfn, MSEDifferenceLoss)
    pairs = trainer.sampler.sampler
    assert isinstance(pairs, TeacherPairs)
    assert dataset_id(pairs.scores) == "splade.msmarco.train.minilm-scores"
    assert dataset_id(pairs.qrels) == f"{MSMARCO}.train.qrels"
    hydrator = trainer.sampler.processors[0]
    assert dataset_id(hydrator.querystore.topics) == f"{MSMARCO}.train.queries"
    assert encoder_hf_id(task.model.encoder) == "Luyu/co-condenser-marco"
    assert task.model.encoder.maxlen == task.model.query_encoder.maxlen == 256
    (flops,) = trainer.hooks
    assert (flops.lambda_q, flops.lambda_d, flops.lambda_warmup_steps) == (
        0.5,
        0.4,
        50_000,
    )
    assert not flops.query_l1
    assert trainer.batch_size == 128
    # naver/splade's AdamW: one group, every parameter decayed, eps 1e-6
    assert optimization(task) == {(2e-5, 6000, 0.01)}
    assert {o.optimizer.eps for o in task.optimizers} == {1e-6}
    assert flops.document_flops == "pairs_mean"
    assert task.max_epochs * task.steps_per_epoch == 153_600


def test_splade_pp_self_distil_chains_its_stages(graphs):
    """EnsembleDistil is trained, its index retrieves the top-50 of the
    training queries, the cross-encoder scores them in a task of its own,
    and a second model (from CoCondenser again) learns them"""
    from splade.mining import ScoreCandidates

    tasks = graphs["splade_pp_sd"]
    (scoring,) = of_type(tasks, ScoreCandidates)
    assert scoring.topk == 50
    assert encoder_hf_id(scoring.teacher) == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert scoring.teacher.tokenizer.max_length == 512
    assert dataset_id(scoring.dataset) == f"{MSMARCO}.train"
    mining = scoring.run.__xpm__.task
    assert isinstance(mining, Evaluate) and mining.retriever.topk == 50
    assert dataset_id(mining.dataset) == f"{MSMARCO}.train"
    index = mining.retriever.index.__xpm__.task
    assert dataset_id(index.documents) == f"{MSMARCO}.documents"

    # the second model learns the scored negatives; the first stage is the
    # EnsembleDistil model (the teacher scores of the hard negatives file)
    learners = of_type(tasks, Learner)
    (second,) = [
        t for t in learners if t.trainer.sampler.sampler.scores.__xpm__.task is scoring
    ]
    (first,) = [t for t in learners if t is not second]
    assert first.__xpm__.tags()["model"] == "splade-first-stage"
    scores = first.trainer.sampler.sampler.scores
    assert dataset_id(scores) == "splade.msmarco.train.minilm-scores"
    for task in (first, second):
        assert encoder_hf_id(task.model.encoder) == "Luyu/co-condenser-marco"
    # both models are evaluated
    models = {e.__xpm__.tags()["model"] for e in of_type(tasks, Evaluate)}
    assert {"splade", "splade-first-stage", "bm25"} <= models


def test_efficient_splade(graphs):
    from splade.losses import PairwiseKLLoss

    for name, query_encoder in (
        ("efficient_splade_v", "distilbert-base-uncased"),
        ("efficient_splade_vi_bt", "google/bert_uncased_L-2_H-128_A-2"),
    ):
        task = learner(graphs[name])
        assert isinstance(task.trainer.lossfn, PairwiseKLLoss)
        assert encoder_hf_id(task.model.encoder) == "distilbert-base-uncased"
        assert encoder_hf_id(task.model.query_encoder) == query_encoder
        assert task.model.encoder is not task.model.query_encoder
        (flops,) = task.trainer.hooks
        assert flops.query_l1
        assert (flops.lambda_q, flops.lambda_d) == (5e-4, 5e-4)
        assert task.max_epochs * task.steps_per_epoch == 250_000
        assert task.trainer.batch_size == 128
        assert dataset_id(task.trainer.sampler.sampler.scores).endswith("minilm-scores")
