"""A faster SPLADE-max encoder (training and inference)

xpmir 1.5.0's ``SpladeTextEncoder`` (with ``MaxAggregation`` and no Sparton
kernel, i.e. on a CPU or without Triton) computes the masked language model
logits of every position of the padded batch, a tensor of batch x length x
vocabulary floats (1 GB for 32 documents of 256 tokens with BERT's 30,522
tokens, 16 GB for the index builder's default 512 documents), then makes two
more tensors of that size (ReLU, then the product with the mask) before
taking the maximum. This encoder computes the same representation:

- documents are sorted by length and encoded in groups of similar length of at
  most ``max_tokens`` padded tokens, so that the transformer computes little
  padding;
- the vocabulary projection is applied to the real tokens only (no padding),
  a group of documents at a time, and the maximum over tokens is taken
  directly on the logits: log(1 + ReLU(x)) is non-decreasing, so
  max_t log(1 + ReLU(x_t)) = log(1 + ReLU(max_t x_t)), computed on the
  batch x vocabulary result only.

The gradient is also the same: both flow through the token that reaches the
maximum, and vanish where it is not positive. In training, this makes a step
of ``splade/local_finetune.yaml`` (32 documents of 256 tokens with BERT-tiny)
1.5x faster on a CPU (9.5 s -> 6.3 s forward and backward, one thread,
``bench/gpu_check.py --device cpu``). Results equal ``SpladeTextEncoder``'s
up to the rounding of matrix products of different shapes
(``tests/unit/test_encoders.py``); other aggregations use ``SpladeTextEncoder``
itself.

In training, the logits of every chunk would be kept by autograd for the
backward pass (batch x length x vocabulary floats in all): the default head
(``head: auto`` or ``memory``, :class:`splade.encoders.head.MaxLogits`)
keeps instead, per text, the maximum and the token that reaches it, and
rebuilds the backward pass from them (same values, same gradients to float
precision); ``head: plain`` is autograd on the chunks' logits.

On a GPU with Triton, xpmir's head is its fused Sparton kernel (projection,
ReLU, maximum and log1p without the batch x length x vocabulary tensor):
with ``head: auto``, ``SpladeTextEncoder``'s forward is then used as is.
Grouping by length there gave the same vectors and gradients but made a
training step slower (28.9 ms against 23.3 ms on an H200,
``bench/gpu_check.py``).

Every encoder can also keep only the ``k`` largest weights of each vector
(``topk``, :mod:`splade.encoders.topk`).
"""

import json
from pathlib import Path
from typing import List, Optional

import torch
from experimaestro import Meta, Param, field
from xpm_torch.module import initialized
from xpmir.neural.splade import MaxAggregation, SpladeTextEncoder
from xpmir.text import TokenizerOptions
from xpmir.text.encoders import TextsRepresentationOutput

from splade.encoders.head import (
    HEADS,
    chunk_tokens,
    chunked_max_logits,
    groups_in_order,
    max_logits,
)
from splade.encoders.topk import TopK

__all__ = [
    "SpladeMaxEncoder",
    "folder_activation",
    "groups_by_length",
    "groups_in_order",
]


def groups_by_length(lengths: List[int], max_tokens: int) -> List[List[int]]:
    """Indices of the texts, longest first, in groups whose padded size
    (number of texts x longest length) is at most ``max_tokens`` (a group has
    at least one text)"""
    order = sorted(range(len(lengths)), key=lambda ix: -lengths[ix])
    groups, current = [], []
    for ix in order:
        # Sorted by decreasing length: the first text of a group is the longest
        if current and (len(current) + 1) * lengths[current[0]] > max_tokens:
            groups.append(current)
            current = []
        current.append(ix)
    if current:
        groups.append(current)
    return groups


class SpladeMaxEncoder(SpladeTextEncoder):
    """SPLADE encoder that skips padding and takes the maximum over tokens
    before log(1 + ReLU)

    A drop-in replacement of :class:`xpmir.neural.splade.SpladeTextEncoder`
    (same parameters, same saved models)."""

    # (its identifier when it was in splade/encoders.py)
    __xpmid__ = "splade.encoders.splademaxencoder"

    max_tokens: Meta[int] = field(default=8192, ignore_default=True)
    """Maximum number of (padded) tokens given to the transformer at once;
    also bounds the logits computed at once (max_tokens x
    vocabulary floats)"""

    activation: Param[str] = field(default="relu", ignore_default=True)
    """``relu`` (log(1 + ReLU(x)), SPLADE), ``log1p_relu`` (log(1 + log(1 +
    ReLU(x))), OpenSearch's doc-v3 models) or ``auto`` (what the model
    folder's sentence-transformers ``SpladePooling`` configuration says,
    ``relu`` when it says nothing)"""

    head: Meta[str] = field(default="auto", ignore_default=True)
    """The vocabulary head: ``memory`` (the maximum and its token kept per
    text, :class:`~splade.encoders.head.MaxLogits`), ``plain`` (autograd on
    chunks of logits), ``auto`` (``memory``, or xpmir's fused Sparton kernel
    on CUDA with Triton); the same vectors and gradients"""

    topk: Param[Optional[TopK]] = field(default=None, ignore_default=True)
    """Keep only the k largest weights of each vector (unset: all)"""

    def __validate__(self):
        super().__validate__()
        if self.head not in HEADS:
            raise ValueError(f"head: {self.head!r} is not one of {HEADS}")

    def __initialize__(self):
        super().__initialize__()
        self._double_log = self._activation() == "log1p_relu"

    def _activation(self) -> str:
        if self.activation != "auto":
            return self.activation
        return folder_activation(self.encoder.config.hf_id) or "relu"

    @initialized
    def forward(self, texts) -> TextsRepresentationOutput:
        output = self._forward(texts)
        if self._double_log:
            output = TextsRepresentationOutput(
                torch.log1p(output.value), output.tokenized
            )
        return output

    def _forward(self, texts) -> TextsRepresentationOutput:
        if (
            not isinstance(self.aggregation, MaxAggregation)
            or len(texts) == 0
            or self._fused_head()
        ):
            output = super().forward(texts)
            return TextsRepresentationOutput(
                self._sparsify(output.value), output.tokenized
            )

        tokenized, inputs, pooled = self._inputs(texts)
        device = self.encoder.model.device
        mask = inputs["attention_mask"]
        lengths = [int(length) for length in mask.sum(dim=1).tolist()]

        value = None
        for group in groups_by_length(lengths, self.max_tokens):
            index = torch.tensor(group)
            width = lengths[group[0]]
            kwargs = {
                key: tensor[index, :width].to(device) for key, tensor in inputs.items()
            }
            hidden = self._backbone(**kwargs).last_hidden_state
            pool = pooled[index, :width].to(device)
            out = self._max_pool(hidden, pool, pool.sum(dim=1).tolist())
            if value is None:
                value = out.new_zeros(len(lengths), out.shape[1])
            value[index.to(device)] = out

        return TextsRepresentationOutput(self._sparsify(value), tokenized)

    def _inputs(self, texts):
        """The tokenized texts, the transformer's inputs (padded tensors:
        ``input_ids``, ``attention_mask``, and ``token_type_ids`` if any,
        texts padded on the right) and the mask of the tokens pooled"""
        tokenized = self.tokenizer.tokenize(
            texts, options=TokenizerOptions(self.maxlen)
        )
        inputs = {"input_ids": tokenized.ids, "attention_mask": tokenized.mask}
        if tokenized.token_type_ids is not None:
            inputs["token_type_ids"] = tokenized.token_type_ids
        return tokenized, inputs, tokenized.mask

    def _sparsify(self, value: torch.Tensor) -> torch.Tensor:
        if self.topk is None:
            return value
        return self.topk(value, self.training)

    def _fused_head(self) -> bool:
        """Whether xpmir's fused (Sparton) head will compute the maximum"""
        return (
            self.head == "auto"
            and self.encoder.model.device.type == "cuda"
            and hasattr(self._head, "_sparton_head")
        )

    def _logit_scale(self) -> float:
        """The factor of the logits before log(1 + ReLU) (1 for BERT)"""
        return 1.0

    def _logit_bias(self) -> float:
        """Added to the scaled logits before log(1 + ReLU) (0 for BERT)"""
        return 0.0

    def _max_pool(self, hidden, mask, lengths: List[int]) -> torch.Tensor:
        """log(1 + ReLU(max over the pooled tokens of the logits))"""
        # Pooled tokens only, text after text (N x hidden)
        tokens = self._head.transform(hidden[mask.bool()])
        decoder = self._head.decoder
        if self.head == "plain":
            maxima = chunked_max_logits(
                tokens, lengths, decoder.weight, decoder.bias, self.max_tokens
            )
        else:
            # (chunks of CHUNK_BYTES of logits: they are not kept)
            chunk = chunk_tokens(decoder.weight.shape[0], self.max_tokens)
            maxima = max_logits(tokens, lengths, decoder.weight, decoder.bias, chunk)
        scale = self._logit_scale()
        if scale != 1.0:
            maxima = maxima * scale
        bias = self._logit_bias()
        if bias != 0.0:
            # a constant: the maximum over tokens is unchanged
            maxima = maxima + bias
        # relu, not clamp: its gradient at 0 is 0, as in xpmir (a logit of
        # exactly 0, e.g. of a zero embedding such as [PAD], gets no gradient)
        return torch.log1p(torch.relu(maxima))


def folder_activation(hf_id: str) -> Optional[str]:
    """The activation function (``relu`` or ``log1p_relu``) of the
    sentence-transformers ``SpladePooling`` module of the model folder or hub
    id ``hf_id`` (a ``*SpladePooling/config.json`` file, as in OpenSearch's
    models: ``document_1_SpladePooling/config.json``); None when there is
    none"""
    folder = Path(hf_id)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(
                snapshot_download(hf_id, allow_patterns=["*SpladePooling/config.json"])
            )
        except Exception:  # no such file, or offline: nothing said
            return None
    for config in sorted(folder.glob("*SpladePooling/config.json")):
        value = json.loads(config.read_text()).get("activation_function")
        if value:
            return value
    return None
