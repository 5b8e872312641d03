"""The package's SPLADE-max encoder gives xpmir's representations, faster"""

import pytest
import torch
from datamaestro_ir.data import SimpleTextItem
from xpmir.neural.splade import SpladeTextEncoder

from splade.encoders import SpladeMaxEncoder, groups_by_length, groups_in_order
from splade.models import load_encoders

TEXTS = [
    "lazo bomu vipube",
    "mopege",
    "what about mopege nina diba lazo theory analysis data",
    "vipube theory data " * 10,
    "nina diba",
]


def test_groups_by_length_bound_the_padded_size():
    lengths = [3, 10, 5, 10, 1, 30]
    groups = groups_by_length(lengths, 20)
    assert sorted(ix for group in groups for ix in group) == list(range(len(lengths)))
    assert groups == [[5], [1, 3], [2, 0, 4]]
    for group in groups:
        widths = [lengths[ix] for ix in group]
        assert widths == sorted(widths, reverse=True)
        assert len(group) == 1 or len(group) * widths[0] <= 20


def test_groups_in_order_bound_the_number_of_tokens():
    assert groups_in_order([3, 10, 5, 10, 1, 30], 15) == [[3, 10], [5, 10], [1], [30]]


def encoders(tiny_model, max_tokens):
    """The package's and xpmir's (document, query) encoders, the package's
    encoding at most ``max_tokens`` tokens at once"""
    settings = dict(query_maxlen=8, document_maxlen=24)
    fast_d, fast_q = load_encoders(tiny_model, **settings)
    xpmir_d, xpmir_q = load_encoders(tiny_model, upstream=True, **settings)
    for encoder in (fast_d, fast_q):
        assert isinstance(encoder, SpladeMaxEncoder)
        encoder.max_tokens = max_tokens
    for encoder in (xpmir_d, xpmir_q):
        assert type(encoder) is SpladeTextEncoder
    return fast_d, xpmir_d, fast_q, xpmir_q


@pytest.mark.parametrize("max_tokens", [1, 30, 8192])
def test_same_vectors_as_xpmir(tiny_model, max_tokens):
    records = [{"text_item": SimpleTextItem(text)} for text in TEXTS]
    fast_d, xpmir_d, fast_q, xpmir_q = encoders(tiny_model, max_tokens)
    with torch.no_grad():
        for fast, reference in ((fast_d, xpmir_d), (fast_q, xpmir_q)):
            ours = fast(records)
            expected = reference(records).value
            torch.testing.assert_close(ours.value, expected, rtol=0, atol=1e-5)
            assert (ours.value > 0).any(dim=1).all()
            assert ours.tokenized.ids.shape[0] == len(TEXTS)


@pytest.mark.parametrize("max_tokens", [30, 8192])
def test_same_gradients_as_xpmir(tiny_model, max_tokens):
    """In training, the maximum taken before log(1 + ReLU) gives the same
    representations and the same gradients"""
    records = [{"text_item": SimpleTextItem(text)} for text in TEXTS]
    fast, reference, _, _ = encoders(tiny_model, max_tokens)
    weights = torch.linspace(-1.0, 1.0, fast.dimension)

    gradients = []
    for encoder in (fast, reference):
        # eval(): no dropout, so that both see the same network
        assert not encoder.training and torch.is_grad_enabled()
        value = encoder(records).value
        assert value.requires_grad
        encoder.zero_grad()
        (value * weights).sum().backward()
        gradients.append(
            {
                name: p.grad.clone()
                for name, p in encoder.named_parameters()
                if p.grad is not None
            }
        )
        gradients[-1]["value"] = value.detach()

    ours, expected = gradients
    assert set(ours) == set(expected)
    assert len(ours) > 10
    for name in expected:
        torch.testing.assert_close(
            ours[name], expected[name], rtol=1e-4, atol=1e-5, msg=name
        )
    # The gradient reaches the transformer, not only the projection
    assert ours["value"].abs().sum() > 0
    assert any("embeddings" in name and ours[name].abs().sum() > 0 for name in ours)
