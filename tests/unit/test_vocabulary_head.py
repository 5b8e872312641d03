"""The memory-light vocabulary head (splade/encoders/head.py): the values
and gradients of autograd's, and what it keeps for the backward pass"""

import pytest
import torch

import splade.encoders.head as head
from splade.encoders.head import chunked_max_logits, max_logits, padded_max_logits

LENGTHS = [5, 1, 17, 8, 3]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def inputs(dtype, bias=True, vocabulary=300, hidden=16, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)

    def tensor(*shape):
        value = torch.randn(*shape, generator=generator, dtype=dtype)
        return value.to(device).requires_grad_()

    tokens = tensor(sum(LENGTHS), hidden)
    weight = tensor(vocabulary, hidden)
    return tokens, weight, tensor(vocabulary) if bias else None


def step(pool, tokens, weight, bias, max_tokens, coefficients, autocast=None):
    """SPLADE's log(1 + ReLU(maximum)), a weighted sum as loss, and the
    gradients"""
    for tensor in (tokens, weight, bias):
        if tensor is not None:
            tensor.grad = None
    device = tokens.device.type
    if autocast:
        with torch.autocast(device, dtype=autocast):
            maxima = pool(tokens, LENGTHS, weight, bias, max_tokens)
    else:
        maxima = pool(tokens, LENGTHS, weight, bias, max_tokens)
    value = torch.log1p(torch.relu(maxima.to(coefficients.dtype)))
    (value * coefficients).sum().backward()
    grads = [
        t.grad.clone()
        for t in (tokens, weight, bias)
        if t is not None and t.requires_grad
    ]
    return maxima.detach(), grads


@pytest.fixture(params=["sparse", "dense"])
def backward(request, monkeypatch):
    """Either way of computing the backward pass"""
    monkeypatch.setattr(head, "SPARSE_COST", 1e-9 if request.param == "sparse" else 1e9)
    return request.param


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("max_tokens", [1, 7, 1000])
def test_same_values_and_gradients_as_autograd(
    backward, device, dtype, bias, max_tokens
):
    tokens, weight, b = inputs(dtype, bias, device=device)
    coefficients = torch.randn(len(LENGTHS), weight.shape[0], dtype=dtype).to(device)
    ours = step(max_logits, tokens, weight, b, max_tokens, coefficients)
    plain = step(chunked_max_logits, tokens, weight, b, max_tokens, coefficients)
    # the same maxima (products of other shapes: float rounding)
    torch.testing.assert_close(ours[0], plain[0])
    assert len(ours[1]) == (3 if bias else 2)
    for mine, expected in zip(ours[1], plain[1], strict=True):
        assert expected.abs().sum() > 0
        torch.testing.assert_close(mine, expected)
    # xpmir's head (the padded batch) gives the same representation
    padded = torch.zeros(len(LENGTHS), max(LENGTHS), tokens.shape[1], dtype=dtype)
    mask = torch.zeros(len(LENGTHS), max(LENGTHS))
    start = 0
    for text, length in enumerate(LENGTHS):
        padded[text, :length] = tokens[start : start + length].detach().cpu()
        mask[text, :length] = 1
        start += length
    bias_cpu = b.detach().cpu() if b is not None else None
    xpmir = padded_max_logits(padded, mask, weight.detach().cpu(), bias_cpu)
    torch.testing.assert_close(
        torch.log1p(torch.relu(ours[0].cpu())), xpmir, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("device", DEVICES)
def test_frozen_projection(backward, device):
    """With the projection frozen (LoRA: the LM head gets no gradient), the
    tokens' states get autograd's gradient, and nothing is computed for the
    projection"""
    tokens, weight, bias = inputs(torch.float32, device=device, seed=2)
    weight.requires_grad_(False)
    bias.requires_grad_(False)
    coefficients = torch.randn(len(LENGTHS), weight.shape[0]).to(device)
    ours = step(max_logits, tokens, weight, bias, 7, coefficients)
    plain = step(chunked_max_logits, tokens, weight, bias, 7, coefficients)
    torch.testing.assert_close(ours[0], plain[0])
    (mine,), (expected,) = ours[1], plain[1]
    assert expected.abs().sum() > 0
    torch.testing.assert_close(mine, expected)
    assert weight.grad is None and bias.grad is None


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_precision_gradients(backward, device):
    """Under bfloat16 autocast, the products run in bfloat16 as autograd's:
    the same maxima; the gradients are those of the argmax tokens (checked
    in float64 from the same maxima), and not further from the float64
    gradient than autograd's (bfloat16 makes ties, where autograd splits the
    gradient between the tokens and the head gives it to one)"""
    tokens, weight, b = inputs(torch.float32, device=device, seed=1)
    coefficients = torch.randn(len(LENGTHS), weight.shape[0]).to(device)
    ours = step(max_logits, tokens, weight, b, 7, coefficients, torch.bfloat16)
    plain = step(chunked_max_logits, tokens, weight, b, 7, coefficients, torch.bfloat16)
    assert ours[0].dtype == plain[0].dtype == torch.bfloat16
    torch.testing.assert_close(ours[0], plain[0])

    # the argmax tokens' gradient, in float64, from the bfloat16 maxima
    with torch.autocast(device, dtype=torch.bfloat16):
        maxima, argmax = head.MaxLogits.apply(tokens, weight, b, LENGTHS, 7)
    maxima = maxima.detach().double()
    gradient = coefficients.double() / (1 + maxima.clamp(min=0)) * (maxima > 0)
    rows = tokens.detach().bfloat16().double()
    columns = weight.detach().bfloat16().double()
    d_tokens = torch.zeros_like(rows)
    d_weight = torch.zeros_like(columns)
    for text in range(len(LENGTHS)):
        d_tokens.index_add_(0, argmax[text], gradient[text, :, None] * columns)
        d_weight += gradient[text, :, None] * rows[argmax[text]]
    expected = [d_tokens, d_weight, gradient.sum(dim=0)]
    for mine, value in zip(ours[1], expected, strict=True):
        scale = value.abs().max()
        assert (mine.double() - value).abs().max() / scale < 0.02

    # float64 gradient on the same (bfloat16-rounded) inputs
    exact = [
        t.detach().bfloat16().double().requires_grad_() for t in (tokens, weight, b)
    ]
    reference = step(chunked_max_logits, *exact, 7, coefficients.double())
    for mine, theirs, value in zip(ours[1], plain[1], reference[1], strict=True):
        scale = value.abs().max()
        error = (mine.double() - value).abs().max() / scale
        autograd_error = (theirs.double() - value).abs().max() / scale
        assert error <= 3 * autograd_error + 1e-3


def saved_bytes(pool, tokens, weight, bias, max_tokens) -> int:
    """Bytes of the tensors that autograd keeps for the backward pass of
    SPLADE's pooling (the inputs themselves excluded)"""
    total = 0

    def pack(tensor):
        nonlocal total
        if not any(tensor is t for t in (tokens, weight, bias)):
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        maxima = pool(tokens, LENGTHS, weight, bias, max_tokens)
        torch.log1p(torch.relu(maxima))
    return total


def test_memory_does_not_grow_with_length():
    """What autograd keeps: per text, the maximum and its token (and the
    inputs), against every logit for the plain head"""
    tokens, weight, bias = inputs(torch.float32, vocabulary=2000)
    logits_bytes = sum(LENGTHS) * 2000 * 4
    texts_bytes = len(LENGTHS) * 2000 * 4
    plain = saved_bytes(chunked_max_logits, tokens, weight, bias, 7)
    ours = saved_bytes(max_logits, tokens, weight, bias, 7)
    assert plain >= logits_bytes
    # maxima, argmax (int64), the ReLU and log1p inputs: a few per text
    assert ours <= 5 * texts_bytes
    assert ours * 4 < plain


def test_encoder_heads_give_the_same_vectors_and_gradients(tiny_model):
    """SpladeMaxEncoder with head=memory and head=plain: the same vectors and
    the same gradients of every parameter"""
    from datamaestro_ir.data import SimpleTextItem

    from splade.models import load_encoders

    texts = ["lazo bomu vipube", "mopege", "vipube theory data " * 6, "nina"]
    records = [{"text_item": SimpleTextItem(text)} for text in texts]
    results = []
    for name in ("memory", "plain"):
        encoder, _ = load_encoders(tiny_model, document_maxlen=24)
        encoder.head = name
        encoder.max_tokens = 30
        value = encoder(records).value
        (value * torch.linspace(-1, 1, value.shape[1])).sum().backward()
        grads = {
            n: p.grad.clone()
            for n, p in encoder.named_parameters()
            if p.grad is not None
        }
        results.append((value.detach(), grads))
    (ours, ours_grads), (plain, plain_grads) = results
    torch.testing.assert_close(ours, plain)
    assert set(ours_grads) == set(plain_grads) and len(ours_grads) > 10
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, rtol=1e-4, atol=1e-6)
