"""SPLADE-max on the embedded model: what the package's encoder computes,
and the FLOPS regularization schedule"""

from pathlib import Path

import pytest
import torch
from conftest import SPLADE_TINY, needs_splade_tiny
from datamaestro_ir.data import SimpleTextItem

from splade.configuration import Model
from splade.encoders import transformers_splade_max
from splade.models import load_encoders, splade_model


def reference(model_path: Path, texts, maxlen):
    """SPLADE-max computed directly from the Hugging Face model, one text at
    a time (no padding at all)"""
    return torch.cat(list(transformers_splade_max(model_path, texts, maxlen)))


TEXTS = ["lazo bomu vipube", "what about mopege nina diba lazo theory analysis data"]


def records(texts):
    return [{"text_item": SimpleTextItem(text)} for text in texts]


def test_splade_max_is_max_over_tokens_and_ignores_padding(tiny_model):
    document_encoder, _ = load_encoders(tiny_model)
    with torch.no_grad():
        batch = document_encoder(records(TEXTS)).value  # the first text is padded
        alone = document_encoder(records(TEXTS[:1])).value
    expected = reference(tiny_model, TEXTS, 256)
    torch.testing.assert_close(batch, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-4)


def test_splade_max_is_non_negative_and_has_zeros(tiny_model):
    document_encoder, query_encoder = load_encoders(tiny_model)
    with torch.no_grad():
        for encoder in (document_encoder, query_encoder):
            reps = encoder(records(TEXTS)).value
            assert reps.shape[1] == encoder.encoder.model.config.vocab_size
            assert (reps >= 0).all()
            # ReLU: a term whose logits are all negative has a zero weight
            assert (reps == 0).any(dim=1).all()


def test_maximum_lengths_are_applied(tiny_model):
    document_encoder, query_encoder = load_encoders(tiny_model, query_maxlen=4)
    long_query = "lazo bomu vipube mopege nina diba theory analysis data"
    with torch.no_grad():
        rep = query_encoder(records([long_query])).value
    # [CLS] + 2 words + [SEP]
    expected = reference(tiny_model, [" ".join(long_query.split()[:2])], 4)
    torch.testing.assert_close(rep, expected, atol=1e-5, rtol=1e-4)


@needs_splade_tiny
def test_pretrained_splade_is_sparse_and_expands():
    """With a real SPLADE checkpoint, representations are sparse and expand
    the query with related terms"""
    _, query_encoder = load_encoders(SPLADE_TINY)
    with torch.no_grad():
        rep = query_encoder(records(["symptoms of influenza in children"])).value[0]
    nonzero = int((rep > 0).sum())
    assert 5 <= nonzero <= 100, nonzero
    vocab = query_encoder.tokenizer.tokenizer.tokenizer.get_vocab()
    assert rep[vocab["flu"]] > 0, "expansion: 'flu' is not in the query"
    assert rep[vocab["influenza"]] > 0


class FakeContext:
    """The part of xpm_torch's TrainerContext that the regularizer uses"""

    def __init__(self, steps):
        self.steps = steps
        self.losses = []
        self.metrics = type("Metrics", (), {"add": lambda self, metric: None})()

    def add_loss(self, loss):
        self.losses.append(loss)


class Reps:
    def __init__(self, value):
        self.value = value


@pytest.mark.parametrize(
    "step,ratio", [(0, 0.0), (250, 0.0625), (500, 0.25), (1000, 1.0), (5000, 1.0)]
)
def test_flops_weights_warm_up_quadratically(tiny_model, step, ratio):
    _, flops, _ = splade_model(
        Model(
            base_hf_id=str(tiny_model),
            lambda_q=0.5,
            lambda_d=0.4,
            lambda_warmup_steps=1000,
        )
    )
    regularizer = flops.instance()
    queries = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 2.0]])
    documents = torch.tensor([[0.0, 3.0, 1.0]])
    context = FakeContext(step)
    regularizer(context, Reps(queries), Reps(documents))

    assert regularizer.lambda_q == pytest.approx(0.5 * ratio)
    assert regularizer.lambda_d == pytest.approx(0.4 * ratio)
    # FLOPS(x) = sum_j (mean_i x_ij)^2
    flops_q = 0.5**2 + 0.0 + 2.0**2
    flops_d = 3.0**2 + 1.0**2
    (loss,) = context.losses
    assert loss.value.item() == pytest.approx(ratio * (0.5 * flops_q + 0.4 * flops_d))
