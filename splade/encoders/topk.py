"""Hard top-k sparsification of SPLADE vectors

Each query or document vector keeps its ``k`` largest weights, the others
are set to 0: an upper bound on the number of terms per text, beside (or
instead of) the FLOPS regularization, as in LACONIC (Xu et al., 2026,
arXiv 2601.01684: ``--q_max_terms`` / ``--p_max_terms`` 512, optional),
SPLARE (NAVER, ICLR 2026, arXiv 2603.13277: top-(40, 400) at inference)
or, before them, SparseEmbed's and the SPLADE efficiency papers' pruning of
vectors at inference.

In training, the gradient flows through the kept weights only (the vector
is multiplied by the 0/1 mask of its top-k entries: the others get none,
as LACONIC's ``_apply_hard_topk``, whose threshold is detached).
"""

import torch
from experimaestro import Config, Param, field

__all__ = ["TopK", "hard_topk"]


def hard_topk(values: torch.Tensor, k: int) -> torch.Tensor:
    """``values`` (texts x vocabulary) with, in each row, the ``k`` largest
    entries kept and the others set to 0 (differentiable: the gradient of
    the kept entries is the identity, of the others 0)"""
    if k >= values.shape[-1]:
        return values
    indices = values.topk(k, dim=-1, sorted=False).indices
    mask = torch.zeros_like(values).scatter_(-1, indices, 1.0)
    return values * mask


class TopK(Config):
    """Keeps the ``k`` largest weights of each vector of an encoder (the
    others are set to 0), in training, at inference, or both"""

    k: Param[int]
    """Number of weights kept per vector"""

    training: Param[bool] = field(default=True)
    """Applied when the encoder is in training mode (the loss and the FLOPS
    regularization see the truncated vectors)"""

    inference: Param[bool] = field(default=True)
    """Applied when the encoder is in evaluation mode (indexing, retrieval,
    validation)"""

    def applies(self, training: bool) -> bool:
        return self.training if training else self.inference

    def __call__(self, values: torch.Tensor, training: bool) -> torch.Tensor:
        if not self.applies(training):
            return values
        return hard_topk(values, self.k)
