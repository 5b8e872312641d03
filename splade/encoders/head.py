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
them. The logits' gradient has at most one non-zero per text and entry
(fewer: ReLU zeroes the gradient of the inactive entries, and trained SPLADE
vectors have a few hundred active ones), against one per token and entry for
autograd's: it is built as a sparse matrix and multiplied with the
projection and the tokens' states (a tenth of the dense products' time for
texts of 256 tokens); where it would not be sparse enough (texts of a few
tokens), the dense products of autograd's run, on a chunk of tokens at a
time.

Values and gradients equal autograd's (:func:`chunked_max_logits`) to float
precision
(``tests/unit/test_vocabulary_head.py``); ``bench/vocabulary_head.py``
measures memory and time.
"""

import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "CHUNK_BYTES",
    "HEADS",
    "MaxLogits",
    "chunk_tokens",
    "chunked_max_logits",
    "groups_in_order",
    "max_logits",
    "padded_max_logits",
]

#: ``head`` values: ``memory`` (:class:`MaxLogits`), ``plain`` (autograd on
#: chunks of logits, :func:`chunked_max_logits`), ``auto`` (``memory``,
#: except xpmir's fused Sparton kernel where it runs: CUDA with Triton)
HEADS = ("auto", "memory", "plain")

#: Bytes of logits (or of their gradient) that :class:`MaxLogits` computes
#: at once: chunks of whole texts of about this size (at least one text);
#: nothing else it keeps grows with the texts' length
CHUNK_BYTES = 64 * 2**20

#: The sparse backward is chosen when the number of non-zero gradients
#: times this factor is below the number of logits of the dense one (a
#: non-zero of the sparse products cost about 9 logits of the dense ones on
#: one CPU thread, 2026-12-03: 0.27 s against 2.6 s for 8 texts of 256
#: tokens, 30,522 entries, 768 dimensions, every gradient non-zero)
SPARSE_COST = 16


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


def chunk_tokens(vocabulary: int, max_tokens: Optional[int] = None) -> int:
    """Tokens projected at once by :class:`MaxLogits`: :data:`CHUNK_BYTES`
    of float32 logits (at most ``max_tokens``)"""
    tokens = max(1, CHUNK_BYTES // (4 * vocabulary))
    return min(tokens, max_tokens) if max_tokens else tokens


def _autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The dtype of matrix products under the autocast of ``device``, if any"""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


def token_chunks(lengths: Sequence[int], max_tokens: int):
    """Consecutive chunks of at most ``max_tokens`` tokens of the texts
    (one after the other): ``(start, stop, texts)`` where ``texts`` lists
    the ``(text, first, last)`` token ranges of the texts in the chunk (a
    text may span several chunks)"""
    bounds, total = [], 0
    for length in lengths:
        if length <= 0:
            raise ValueError("every text needs at least one token")
        bounds.append((total, total + length))
        total += length
    text = 0
    for start in range(0, total, max_tokens):
        stop = min(total, start + max_tokens)
        while bounds[text][1] <= start:
            text += 1
        parts, current = [], text
        while current < len(bounds) and bounds[current][0] < stop:
            first, last = bounds[current]
            parts.append((current, max(first, start), min(last, stop)))
            current += 1
        yield start, stop, parts


class MaxLogits(torch.autograd.Function):
    """Per text, the maximum over its tokens of the logits ``x W^T + b``,
    whose backward is rebuilt from the argmax token (see the module)

    :param hidden: the tokens' states (tokens x hidden), the texts' tokens
        one after the other
    :param weight: the projection (vocabulary x hidden)
    :param bias: its bias (vocabulary) or None
    :param lengths: the number of tokens of each text (at least one each)
    :param max_tokens: tokens projected at once, whatever the texts (bounds
        the logits computed at once, in both passes, to max_tokens x
        vocabulary)
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, lengths, max_tokens):
        vocabulary = weight.shape[0]
        argmax = torch.empty(
            len(lengths), vocabulary, dtype=torch.long, device=hidden.device
        )
        maxima, seen = None, set()
        for start, stop, parts in token_chunks(lengths, max_tokens):
            logits = F.linear(hidden[start:stop], weight, bias)
            if maxima is None:
                maxima = logits.new_empty(len(lengths), vocabulary)
            for text, first, last in parts:
                values, indices = logits[first - start : last - start].max(dim=0)
                indices += first
                if text not in seen:
                    maxima[text], argmax[text] = values, indices
                    seen.add(text)
                else:  # the rest of a text (the first maximum is kept)
                    better = values > maxima[text]
                    maxima[text] = torch.where(better, values, maxima[text])
                    argmax[text] = torch.where(better, indices, argmax[text])
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
        d_bias = None
        if ctx.has_bias and needs_bias:
            d_bias = grad.sum(dim=0).to(ctx.bias_dtype)
        if not (needs_hidden or needs_weight):
            return None, None, d_bias, None, None

        nonzero = grad != 0
        count = int(nonzero.sum())
        needs = (needs_hidden, needs_weight)
        if count * SPARSE_COST < hidden.shape[0] * weight.shape[0]:
            d_hidden, d_weight = _sparse_backward(
                grad, nonzero, argmax, hidden, weight, needs, ctx
            )
        else:
            d_hidden, d_weight = _dense_backward(
                grad, argmax, hidden, weight, needs, ctx
            )
        return d_hidden, d_weight, d_bias, None, None


def _zeros(needs, hidden, weight):
    """The gradients of the tokens' states and of the projection, zero (None
    where not needed)"""
    return tuple(
        torch.zeros_like(tensor) if need else None
        for need, tensor in zip(needs, (hidden, weight), strict=True)
    )


def _dense_backward(grad, argmax, hidden, weight, needs, ctx):
    """The products of autograd's backward, a chunk of tokens at a time: the
    chunk's logits gradient is zero but at each text's argmax tokens;
    returns the gradients of the tokens' states and of the projection"""
    dtype, vocabulary = ctx.dtype, weight.shape[0]
    d_hidden, d_weight = _zeros(needs, hidden, weight)
    w = weight.to(dtype)
    for start, stop, parts in token_chunks(ctx.lengths, ctx.max_tokens):
        texts = torch.tensor([text for text, _, _ in parts], device=argmax.device)
        positions = argmax[texts] - start
        inside = (positions >= 0) & (positions < stop - start)
        logits_grad = grad.new_zeros(stop - start, vocabulary)
        logits_grad.scatter_add_(
            0,
            torch.where(inside, positions, torch.zeros_like(positions)),
            torch.where(inside, grad[texts], torch.zeros_like(grad[texts])),
        )
        if d_hidden is not None:
            d_hidden[start:stop] = (logits_grad @ w).to(d_hidden.dtype)
        if d_weight is not None:
            tokens = hidden[start:stop].to(dtype)
            d_weight += (logits_grad.T @ tokens).to(d_weight.dtype)
    return d_hidden, d_weight


def _sparse_backward(grad, nonzero, argmax, hidden, weight, needs, ctx):
    """The same sums, over the non-zero gradients only: the logits' gradient
    as a sparse (tokens x vocabulary) matrix, one entry per non-zero
    gradient, times the projection and the tokens' states (each product
    written once, in the gradient it gives)"""
    dtype = ctx.dtype
    texts, entries = nonzero.nonzero(as_tuple=True)
    values = grad[texts, entries]
    tokens = argmax[texts, entries]
    if dtype in _SPARSE_DTYPES and hidden.dtype == weight.dtype == dtype:
        shape = (hidden.shape[0], weight.shape[0])
        d_hidden = d_weight = None
        if needs[0]:
            d_hidden = _sparse_rows(tokens, entries, values, shape) @ weight
        if needs[1]:
            d_weight = _sparse_rows(entries, tokens, values, shape[::-1]) @ hidden
        return d_hidden, d_weight
    d_hidden, d_weight = _zeros(needs, hidden, weight)
    # other dtypes (bfloat16 autocast): rows gathered and added by index, in
    # pieces of at most max_tokens x vocabulary numbers
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
    return d_hidden, d_weight


#: dtypes of the sparse (CSR) matrix products of :func:`_sparse_backward`
_SPARSE_DTYPES = (torch.float32, torch.float64)


def _sparse_rows(rows, columns, values, shape) -> torch.Tensor:
    """The sparse CSR matrix of ``shape`` with ``values`` at ``(rows,
    columns)`` (each pair once)"""
    indices = torch.stack([rows, columns])
    matrix = torch.sparse_coo_tensor(indices, values, shape, check_invariants=False)
    with warnings.catch_warnings():
        # "Sparse CSR tensor support is in beta state" (torch 2.x): the
        # product with a dense matrix, all that is used here, is not
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return matrix.to_sparse_csr()


def max_logits(
    hidden: torch.Tensor,
    lengths: Sequence[int],
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    max_tokens: Optional[int] = None,
) -> torch.Tensor:
    """Per text, the maximum over its tokens of ``hidden W^T + b`` (texts x
    vocabulary), with :class:`MaxLogits`'s memory-light backward

    :param max_tokens: tokens projected at once (default:
        :func:`chunk_tokens`, :data:`CHUNK_BYTES` of logits)
    """
    max_tokens = max_tokens or chunk_tokens(weight.shape[0])
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
