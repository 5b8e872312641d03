"""The LLM recipes (splade/splade_llm.yaml, splade_llm_topk.yaml,
debug_llm.yaml), verified offline on the task graph they build: the values
of the papers' code reach the tasks"""

import pytest
from conftest import ROOT, load
from dryrun import dataset_id, dry_run, of_type
from xpm_torch.learner import Learner
from xpmir.letor.trainers.batchwise import BatchwiseTrainer

from splade.configuration import ConfigurationError
from splade.contrastive import ContrastiveDistillationTrainer
from splade.encoders.decoder import DecoderInit, DecoderSpladeEncoder
from splade.mntp import MNTPAdaptation, MNTPModel

MSMARCO = "com.microsoft.msmarco.passage"


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    return {
        name: dry_run(
            load(ROOT / "splade" / f"{name}.yaml"), tmp_path_factory.mktemp(name)
        )
        for name in ("splade_llm", "splade_llm_topk", "debug_llm")
    }


def learner(tasks) -> Learner:
    (task,) = of_type(tasks, Learner)
    return task


def test_lion_sp(graphs):
    tasks = graphs["splade_llm"]
    (mntp,) = of_type(tasks, MNTPAdaptation)
    assert mntp.source.hf_id == "meta-llama/Llama-3.2-1B"
    assert dataset_id(mntp.documents) == f"{MSMARCO}.documents"
    assert (mntp.steps, mntp.batch_size, mntp.maxlen) == (10_000, 32, 512)
    assert (mntp.mask_probability, mntp.lr) == (0.2, 5e-5)
    assert (mntp.lora.r, mntp.lora.alpha, mntp.lora.dropout) == (16, 32.0, 0.05)
    assert mntp.gradient_checkpointing

    task = learner(tasks)
    trainer = task.trainer
    assert isinstance(trainer, ContrastiveDistillationTrainer)
    assert trainer.batch_size == 112
    (flops,) = trainer.hooks
    assert (flops.lambda_q, flops.lambda_d, flops.lambda_warmup_steps) == (
        0.05,
        0.04,
        11083,
    )
    assert task.max_epochs * task.steps_per_epoch == 33_250
    assert {
        (o.optimizer.lr, o.scheduler.num_warmup_steps) for o in task.optimizers
    } == {(1e-4, 1330)}
    assert task.fabric_config.precision == "auto-bf16"

    scorer = task.model
    for encoder, maxlen in ((scorer.encoder, 128), (scorer.query_encoder, 64)):
        assert isinstance(encoder, DecoderSpladeEncoder)
        assert encoder.maxlen == maxlen
        assert encoder.logit_scale == pytest.approx(2048**-0.25, rel=1e-4)
        model = encoder.encoder
        # the MNTP task's model is the starting point
        assert isinstance(model.config, MNTPModel)
        assert model.bidirectional and model.gradient_checkpointing
        assert (model.lora.r, model.lora.alpha, model.lora.dropout) == (16, 32.0, 0.05)
        assert len(model.lora.target_modules) == 7
    assert scorer.encoder.encoder is scorer.query_encoder.encoder
    (init,) = [t for t in task.__xpm__.init_tasks if isinstance(t, DecoderInit)]
    assert init.model is scorer.encoder.encoder


def test_laconic_like_with_top_k(graphs):
    tasks = graphs["splade_llm_topk"]
    task = learner(tasks)
    assert isinstance(task.trainer, BatchwiseTrainer)
    (flops,) = task.trainer.hooks
    assert (flops.lambda_q, flops.lambda_d, flops.lambda_warmup_steps) == (
        1e-3,
        1e-3,
        25,
    )
    for encoder in (task.model.encoder, task.model.query_encoder):
        assert encoder.maxlen == 192
        assert (encoder.topk.k, encoder.topk.training, encoder.topk.inference) == (
            512,
            True,
            True,
        )
        assert encoder.logit_scale == 1.0
        lora = encoder.encoder.lora
        assert (lora.r, lora.alpha, lora.dropout) == (16, 32.0, 0.1)
    assert {o.optimizer.lr for o in task.optimizers} == {1e-4}


def test_debug_llm_chains_mntp_training_index_evaluation(graphs):
    from splade.efficiency import EvaluateWithEfficiency
    from splade.engines.exhaustive import ExhaustiveIndexBuilder

    tasks = graphs["debug_llm"]
    (mntp,) = of_type(tasks, MNTPAdaptation)
    assert mntp.lora is None and mntp.steps == 20
    task = learner(tasks)
    assert task.model.encoder.encoder.config is not None
    indices = of_type(tasks, ExhaustiveIndexBuilder)
    assert len(indices) == 2  # trained, and before training
    models = {e.__xpm__.tags()["model"] for e in of_type(tasks, EvaluateWithEfficiency)}
    assert {"splade", "splade-untrained"} <= models


def test_the_mntp_requirements_find_a_launcher():
    from experimaestro.launcherfinder.registry import LauncherRegistry

    for launchers in ("single-gpu", "slurm"):
        registry = LauncherRegistry(ROOT / "launchers" / launchers)
        for name in ("splade_llm", "splade_llm_topk"):
            requirement = load(ROOT / "splade" / f"{name}.yaml").model.mntp.requirements
            assert registry.find(requirement) is not None


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.decoder.bidirectional=true", "model.decoder.bidirectional"),
        ("model.decoder.logit_scale=0.5", "model.decoder.logit_scale"),
        ("model.decoder.logit_bias=-1", "model.decoder.logit_bias"),
        ("model.mntp.steps=10", "model.mntp"),
        ("model.dying_relu.remedy=adaptation", "model.dying_relu.remedy"),
    ],
)
def test_decoder_options_need_a_decoder(override, key):
    from splade.checks import check

    cfg = load(ROOT / "splade" / "debug.yaml", override)
    with pytest.raises(ConfigurationError) as error:
        check(cfg, downloads=False)
    assert any(p.startswith(f"{key}:") for p in error.value.problems)


def test_decoders_need_the_norm_weights_without_decay(tmp_path):
    from splade.checks import check

    recipe = tmp_path / "decay.yaml"
    recipe.write_text(
        f"imports: [{ROOT / 'splade' / 'debug_llm.yaml'}]\n"
        "learner:\n  optimization:\n    re_no_l2_regularization: ['\\.bias$']\n"
    )
    cfg = load(recipe)
    with pytest.raises(ConfigurationError) as error:
        check(cfg, downloads=False)
    assert any(
        p.startswith("learner.optimization.re_no_l2_regularization:")
        for p in error.value.problems
    )


def test_the_remedy_adds_the_adaptation_phase(tmp_path):
    recipe = tmp_path / "remedy.yaml"
    recipe.write_text(
        f"imports: [{ROOT / 'splade' / 'debug_llm.yaml'}]\n"
        "model:\n  mntp: null\n  dying_relu:\n    remedy: adaptation\n"
        "    adaptation_steps: 7\n"
    )
    cfg = load(recipe)
    (mntp,) = of_type(dry_run(cfg, tmp_path), MNTPAdaptation)
    assert mntp.steps == 7
