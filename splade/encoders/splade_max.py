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

On a GPU with Triton, xpmir's head is its fused Sparton kernel (projection,
ReLU, maximum and log1p without the batch x length x vocabulary tensor):
``SpladeTextEncoder``'s forward is then used as is. Grouping by length
there gave the same vectors and gradients but made a training step slower
(28.9 ms against 23.3 ms on an H200, ``bench/gpu_check.py``).
"""

from typing import List

import torch
from experimaestro import Meta, field
from xpm_torch.module import initialized
from xpmir.neural.splade import MaxAggregation, SpladeTextEncoder
from xpmir.text import TokenizerOptions
from xpmir.text.encoders import TextsRepresentationOutput

__all__ = ["SpladeMaxEncoder", "groups_by_length", "groups_in_order"]


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

    @initialized
    def forward(self, texts) -> TextsRepresentationOutput:
        if (
            not isinstance(self.aggregation, MaxAggregation)
            or len(texts) == 0
            or self._fused_head()
        ):
            return super().forward(texts)

        tokenized = self.tokenizer.tokenize(
            texts, options=TokenizerOptions(self.maxlen)
        )
        device = self.encoder.model.device
        lengths = [int(length) for length in tokenized.mask.sum(dim=1).tolist()]

        value = None
        for group in groups_by_length(lengths, self.max_tokens):
            index = torch.tensor(group)
            width = lengths[group[0]]
            mask = tokenized.mask[index, :width].to(device)
            kwargs = {}
            if tokenized.token_type_ids is not None:
                kwargs["token_type_ids"] = tokenized.token_type_ids[index, :width].to(
                    device
                )
            hidden = self._backbone(
                input_ids=tokenized.ids[index, :width].to(device),
                attention_mask=mask,
                **kwargs,
            ).last_hidden_state
            pooled = self._max_pool(hidden, mask, [lengths[ix] for ix in group])
            if value is None:
                value = pooled.new_zeros(len(lengths), pooled.shape[1])
            value[index.to(device)] = pooled

        return TextsRepresentationOutput(value, tokenized)

    def _fused_head(self) -> bool:
        """Whether xpmir's fused (Sparton) head will compute the maximum"""
        return self.encoder.model.device.type == "cuda" and hasattr(
            self._head, "_sparton_head"
        )

    def _max_pool(self, hidden, mask, lengths: List[int]) -> torch.Tensor:
        """log(1 + ReLU(max over the real tokens of the logits))"""
        # Real tokens only, document after document (N x hidden)
        tokens = self._head.transform(hidden[mask.bool()])
        maxima, start = [], 0
        for chunk in groups_in_order(lengths, self.max_tokens):
            size = sum(chunk)
            logits = self._head.decoder(tokens[start : start + size])
            maxima.extend(part.amax(dim=0) for part in logits.split(chunk))
            start += size
        # relu, not clamp: its gradient at 0 is 0, as in xpmir (a logit of
        # exactly 0, e.g. of a zero embedding such as [PAD], gets no gradient)
        return torch.log1p(torch.relu(torch.stack(maxima)))


def groups_in_order(lengths: List[int], max_tokens: int) -> List[List[int]]:
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
