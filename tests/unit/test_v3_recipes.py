"""SPLADE-v3's recipes, verified offline on the task graph they build: the
values of naver/splade's code (splade_v3.yaml), the inference-free recipe,
the debug chain sharing debug_pp.yaml's tasks, and the problems each part
reports with its key"""

import pytest
from conftest import ROOT, load
from dryrun import dry_run, of_type
from xpm_torch.learner import Learner
from xpm_torch.optim import GradientClippingHook
from xpmir.evaluation import Evaluate

from splade.checks import check
from splade.configuration import ConfigurationError
from splade.distillation import ListwiseTrainer, TeacherLists
from splade.encoders import ComputeIdf, IdfQueryEncoder, LexicalQueryEncoder
from splade.losses import BatchNegativesCrossEntropy, KLMarginMSELoss
from splade.mining import EnsembleScores, MinePool, ScoreCandidates
from splade.models import InitFromCheckpoint


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    return {
        name: dry_run(load(ROOT / f"splade/{name}.yaml"), tmp_path_factory.mktemp(name))
        for name in ("splade_v3", "splade_v3_idf", "debug_pp", "debug_v3")
    }


def identifiers(tasks, cls):
    return {t.__identifier__().all.hex() for t in of_type(tasks, cls)}


def test_splade_v3_is_navers_recipe(graphs):
    tasks = graphs["splade_v3"]
    (learner,) = of_type(tasks, Learner)
    trainer = learner.trainer
    assert isinstance(trainer, ListwiseTrainer)
    assert isinstance(trainer.lossfn, KLMarginMSELoss)
    loss = trainer.lossfn
    assert (loss.kl_weight, loss.margin_mse_weight, loss.temperature) == (
        0.99,
        0.05,
        1.0,
    )
    lists = trainer.sampler.sampler
    assert isinstance(lists, TeacherLists) and lists.negatives == 8
    assert trainer.batch_size == 20
    (flops,) = trainer.hooks
    assert (flops.lambda_q, flops.lambda_d, flops.lambda_warmup_steps) == (
        0.01,
        0.02,
        30000,
    )
    assert flops.query_l1 and flops.anti_zero and flops.document_flops == "batch"
    assert {(o.optimizer.lr, o.optimizer.weight_decay) for o in learner.optimizers} == {
        (2e-5, 0.0)
    }
    assert {o.optimizer.eps for o in learner.optimizers} == {1e-8}
    (clipping,) = learner.hooks
    assert isinstance(clipping, GradientClippingHook) and clipping.max_norm == 1.0
    steps = learner.max_epochs * learner.steps_per_epoch
    assert steps == 125_750  # 5 epochs of ~500k queries of 20
    schedulers = {o.scheduler.num_warmup_steps for o in learner.optimizers}
    assert schedulers == {1258}  # 1%
    scorer = learner.model
    assert scorer.encoder.maxlen == 128 and scorer.query_encoder.maxlen == 128
    # the model starts from SPLADE++ SelfDistil
    assert "selfdistil" in scorer.encoder.encoder.config.hf_id

    # the pool: SelfDistil's top-50 and 50 of its top-1000
    (pool,) = of_type(tasks, MinePool)
    assert (pool.topk, pool.random, pool.depth) == (50, 50, 1000)
    (mined,) = [e for e in of_type(tasks, Evaluate) if "train" in e.dataset.id]
    assert mined.retriever.topk == 1000
    # four teachers (rankT53b-repro cannot be loaded), one task each
    scorings = of_type(tasks, ScoreCandidates)
    teachers = {s.teacher.encoder.config.hf_id for s in scorings}
    assert teachers == {
        "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "naver/trecdl22-crossencoder-debertav3",
        "naver/trecdl22-crossencoder-debertav2",
        "naver/trecdl22-crossencoder-electra",
    }
    assert {s.topk for s in scorings} == {100}
    (ensemble,) = of_type(tasks, EnsembleScores)
    assert len(ensemble.scores) == 4 and ensemble.rescale is not None


def test_the_inference_free_recipe(graphs):
    tasks = graphs["splade_v3_idf"]
    learners = of_type(tasks, Learner)
    (learner,) = learners
    assert isinstance(learner.model.query_encoder, IdfQueryEncoder)
    (table,) = of_type(tasks, ComputeIdf)
    assert learner.model.query_encoder.idf is not None
    assert "msmarco.passage.documents" in table.documents.id
    assert "co-condenser" in learner.model.encoder.encoder.config.hf_id
    # the same pool and teachers as splade_v3.yaml: shared tasks
    for cls in (MinePool, ScoreCandidates, EnsembleScores):
        assert identifiers(tasks, cls) == identifiers(graphs["splade_v3"], cls)


def test_debug_v3_shares_debug_pp_s_chain(graphs):
    """debug_v3's first stage is debug_pp.yaml's model: every task of
    debug_pp's chain (its two learners, mining and scoring) is one of
    debug_v3's"""
    pp, v3 = graphs["debug_pp"], graphs["debug_v3"]
    assert identifiers(pp, Learner) < identifiers(v3, Learner)
    assert identifiers(pp, ScoreCandidates) < identifiers(v3, ScoreCandidates)
    (learner,) = [
        t
        for t in of_type(v3, Learner)
        if t.__identifier__().all.hex() not in identifiers(pp, Learner)
    ]
    assert isinstance(learner.trainer, ListwiseTrainer)
    # it continues from debug_pp's model, in its own settings
    models = [
        t for t in learner.__xpm__.init_tasks if isinstance(t, InitFromCheckpoint)
    ]
    (init,) = models
    assert init.model is learner.model
    evaluated = {e.__xpm__.tags()["model"] for e in v3 if hasattr(e, "efficiency")}
    assert evaluated == {"splade", "splade-first-stage"}


def test_variants_of_splade_v3(tmp_path):
    """SPLADE-v3-Doc and -Lexical: naver's contrastive loss over the batch's
    negatives, one negative per query, their query sides"""
    for name, query_side in (
        ("splade_v3_doc", "BinaryQueryEncoder"),
        ("splade_v3_lexical", LexicalQueryEncoder.__name__),
    ):
        tasks = dry_run(load(ROOT / f"splade/{name}.yaml"), tmp_path / name)
        (learner,) = of_type(tasks, Learner)
        assert isinstance(learner.trainer.lossfn, BatchNegativesCrossEntropy)
        assert learner.trainer.sampler.sampler.negatives == 1
        assert type(learner.model.query_encoder).__name__.startswith(query_side)


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["mining.rescale=nobody"], "mining.rescale"),
        (["mining.depth=10"], "mining.depth"),
        (["mining.first_stage=nothing_here.yaml"], "mining.first_stage"),
        (["mining.first_stage=normal.yaml"], "mining.first_stage"),  # other data
        (["mining.first_stage="], "mining.first_stage"),
        (["model.document_flops=pairs_mean"], "model.document_flops"),
        (["model.document_regularization=l1"], "model.document_regularization"),
        (["model.query_regularization=idf_flops"], "model.query_regularization"),
    ],
)
def test_problems_name_their_key(overrides, key):
    with pytest.raises(ConfigurationError) as error:
        check(load(ROOT / "splade/debug_v3.yaml", *overrides), downloads=False)
    assert any(p.startswith(f"{key}:") for p in error.value.problems), error.value


def test_a_listwise_loss_needs_mining():
    with pytest.raises(ConfigurationError, match="learner.loss: kl_margin_mse"):
        check(
            load(ROOT / "splade/debug.yaml", "learner.loss=kl_margin_mse"),
            downloads=False,
        )


def test_an_opensearch_folder_needs_its_idf_table(tiny_model):
    with pytest.raises(ConfigurationError, match="model.idf: .* has no idf.json"):
        check(
            load(
                ROOT / "splade/debug.yaml",
                "mode=zero-shot",
                "model.architecture=idf",
                f"model.base_hf_id={tiny_model}",
            ),
            downloads=False,
        )
