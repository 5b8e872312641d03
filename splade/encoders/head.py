"""The vocabulary head of SPLADE-max whose training memory does not grow
with batch x length x vocabulary

SPLADE-max represents a text by, for each vocabulary entry ``v``, the
maximum over its tokens ``t`` of ``log(1 + ReLU(s * x_t . w_v + b_v))``
(``x_t`` the token's hidden state after the head's transform, ``w_v`` and
``b_v`` the row and bias of the vocabulary projection, ``s`` a scale, 1 but
for Lion-SP's ``hidden_size ** -1/4``). ``log(1 + ReLU(.))`` is
non-decreasing: the maximum is taken on the logits, and the function
applied to the batch x vocabulary result only (:mod:`.splade_max`).

The logits themselves are batch x length x vocabulary floats: 1 GB for 32
documents of 256 tokens with BERT's 30,522 entries, 5 GB with Qwen's
151,936. Computed a chunk of texts at a time, they never exist at once in
the forward pass; but autograd keeps every chunk's logits for the backward
pass, so that training holds them all. Yet the gradient of a maximum flows
through the token that reaches it only: for text ``i`` and entry ``v``,
with ``t* = argmax_t x_t . w_v`` and ``g_iv`` the gradient of the maximum,

- ``dL/dx_{t*} += g_iv w_v`` and ``dL/dw_v += g_iv x_{t*}``,
  ``dL/db_v += g_iv``;

nothing else. :class:`MaxLogits` keeps, per text, the maximum and the
argmax token (2 x batch x vocabulary numbers) and rebuilds the backward from
them, with the same matrix products as autograd's (on a chunk of tokens at a
time: the gradient of the chunk's logits, zero except at the argmax
positions, is scattered, then multiplied), or, when few gradients are not
zero (trained SPLADE vectors have a few hundred active entries; ReLU zeroes
the gradient of the others), by gathering the rows involved only.

Values equal :func:`chunked_max_logits`'s (the same products on the same
chunks), gradients equal autograd's to float precision
(``tests/unit/test_vocabulary_head.py``); ``bench/vocabulary_head.py``
measures memory and time.
"""

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "HEADS",
    "MaxLogits",
    "chunked_max_logits",
    "groups_in_order",
    "max_logits",
    "padded_max_logits",
]

#: ``head`` values: ``memory`` (:class:`MaxLogits`), ``plain`` (autograd on
#: chunks of logits, :func:`chunked_max_logits`), ``auto`` (``memory``,
#: except xpmir's fused Sparton kernel where it runs: CUDA with Triton)
HEADS = ("auto", "memory", "plain")

#: The sparse backward (gathering rows) is chosen when the number of
#: non-zero gradients times this factor is below the number of logits of the
#: dense one (a gathered row costs about this many rows of a matrix product;
#: ``bench/vocabulary_head.py --backward`` measures it)
SPARSE_COST = 256


def groups_in_order(lengths: Sequence[int], max_tokens: int) -> List[List[int]]:
    """Consecutive lengths in groups whose sum is at most ``max_tokens`` (a
    group has at least one length)"""
    groups, current, total = [], [], 0
    for length in lengths:
        if current and total + length > max_tokens:
            groups.append(current)
            current, total = [], 0
        current.append(length)
        total += length
    if current:
        groups.append(current)
    return groups


def _autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The dtype of matrix products under the autocast of ``device``, if any"""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


class MaxLogits(torch.autograd.Function):
    """Per text, the maximum over its tokens of the logits ``x W^T + b``,
    whose backward is rebuilt from the argmax token (see the module)

    :param hidden: the tokens' states (tokens x hidden), the texts' tokens
        one after the other
    :param weight: the projection (vocabulary x hidden)
    :param bias: its bias (vocabulary) or None
    :param lengths: the number of tokens of each text (at least one each)
    :param max_tokens: tokens projected at once (bounds the logits computed
        at once, in both passes, to max_tokens x vocabulary)
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, lengths, max_tokens):
        vocabulary = weight.shape[0]
        argmax = torch.empty(
            len(lengths), vocabulary, dtype=torch.long, device=hidden.device
        )
        maxima, start, text = None, 0, 0
        for chunk in groups_in_order(lengths, max_tokens):
            size = sum(chunk)
            logits = F.linear(hidden[start : start + size], weight, bias)
            if maxima is None:
                maxima = logits.new_empty(len(lengths), vocabulary)
            offset = 0
            for length in chunk:
                if length <= 0:
                    raise ValueError("every text needs at least one token")
                values, indices = logits[offset : offset + length].max(dim=0)
                maxima[text] = values
                argmax[text] = indices + (start + offset)
                offset += length
                text += 1
            start += size
            del logits
        ctx.save_for_backward(hidden, weight, argmax)
        ctx.has_bias = bias is not None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.lengths = list(lengths)
        ctx.max_tokens = max_tokens
        ctx.dtype = maxima.dtype
        ctx.mark_non_differentiable(argmax)
        return maxima, argmax

    @staticmethod
    def backward(ctx, grad, _):
        hidden, weight, argmax = ctx.saved_tensors
        dtype = ctx.dtype  # the products' dtype in the forward pass
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad = grad.to(dtype)
        d_hidden = torch.zeros_like(hidden) if needs_hidden else None
        d_weight = torch.zeros_like(weight) if needs_weight else None
        d_bias = None
        if ctx.has_bias and needs_bias:
            d_bias = grad.sum(dim=0).to(ctx.bias_dtype)
        if d_hidden is None and d_weight is None:
            return d_hidden, d_weight, d_bias, None, None

        nonzero = grad != 0
        count = int(nonzero.sum())
        if count * SPARSE_COST < hidden.shape[0] * weight.shape[0]:
            _sparse_backward(
                grad, nonzero, argmax, hidden, weight, d_hidden, d_weight, ctx
            )
        else:
            _dense_backward(grad, argmax, hidden, weight, d_hidden, d_weight, ctx)
        return d_hidden, d_weight, d_bias, None, None


def _dense_backward(grad, argmax, hidden, weight, d_hidden, d_weight, ctx):
    """The products of autograd's backward, a chunk of tokens at a time: the
    chunk's logits gradient is zero but at each text's argmax tokens"""
    dtype, vocabulary = ctx.dtype, weight.shape[0]
    w = weight.to(dtype)
    start, text = 0, 0
    for chunk in groups_in_order(ctx.lengths, ctx.max_tokens):
        size, count = sum(chunk), len(chunk)
        logits_grad = grad.new_zeros(size, vocabulary)
        logits_grad.scatter_add_(
            0, argmax[text : text + count] - start, grad[text : text + count]
        )
        if d_hidden is not None:
            d_hidden[start : start + size] = (logits_grad @ w).to(d_hidden.dtype)
        if d_weight is not None:
            tokens = hidden[start : start + size].to(dtype)
            d_weight += (logits_grad.T @ tokens).to(d_weight.dtype)
        start += size
        text += count


def _sparse_backward(grad, nonzero, argmax, hidden, weight, d_hidden, d_weight, ctx):
    """The same sums, over the non-zero gradients only (rows gathered and
    added by index), in pieces of at most max_tokens x vocabulary numbers"""
    dtype = ctx.dtype
    texts, entries = nonzero.nonzero(as_tuple=True)
    values = grad[texts, entries]
    tokens = argmax[texts, entries]
    piece = max(1, ctx.max_tokens * weight.shape[0] // max(1, hidden.shape[1]))
    for start in range(0, len(values), piece):
        value = values[start : start + piece, None]
        token, entry = tokens[start : start + piece], entries[start : start + piece]
        if d_hidden is not None:
            rows = weight[entry].to(dtype) * value
            d_hidden.index_add_(0, token, rows.to(d_hidden.dtype))
        if d_weight is not None:
            rows = hidden[token].to(dtype) * value
            d_weight.index_add_(0, entry, rows.to(d_weight.dtype))


def max_logits(
    hidden: torch.Tensor,
    lengths: Sequence[int],
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    max_tokens: int = 8192,
) -> torch.Tensor:
    """Per text, the maximum over its tokens of ``hidden W^T + b`` (texts x
    vocabulary), with :class:`MaxLogits`'s memory-light backward"""
    maxima, _ = MaxLogits.apply(hidden, weight, bias, list(lengths), max_tokens)
    return maxima


def chunked_max_logits(
    hidden: torch.Tensor,
    lengths: Sequence[int],
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    max_tokens: int = 8192,
) -> torch.Tensor:
    """The same maxima with autograd (the "plain" head of
    :class:`~splade.encoders.SpladeMaxEncoder` before :class:`MaxLogits`):
    the logits are computed a chunk at a time, but the backward pass keeps
    all of them"""
    maxima, start = [], 0
    for chunk in groups_in_order(lengths, max_tokens):
        size = sum(chunk)
        logits = F.linear(hidden[start : start + size], weight, bias)
        maxima.extend(part.amax(dim=0) for part in logits.split(chunk))
        start += size
    return torch.stack(maxima)


def padded_max_logits(
    hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias=None
) -> torch.Tensor:
    """xpmir 1.5.0's SPLADE-max head (``MaxAggregation`` without Sparton,
    xpmir/neural/splade.py:58-69), to compare with: the logits of the padded
    batch (texts x length x vocabulary), then ReLU and the mask's product
    (two more tensors of that size), then the maximum; returns
    ``log(1 + maximum)``"""
    logits = F.linear(hidden, weight, bias)
    values, _ = torch.max(
        torch.relu(logits) * mask.to(logits.device).unsqueeze(-1), dim=1
    )
    return torch.log1p(values.clamp(min=0))
