"""The sparsity regularization of SPLADE, with the figures a researcher
tunes it by

FLOPS (Paria et al., "Minimizing FLOPs to Learn Efficient Sparse
Representations", ICLR 2020, https://arxiv.org/abs/2004.05665), as in SPLADE
v2 (Formal et al., https://arxiv.org/abs/2109.10086), with a quadratic
warm-up of its weights; or, for queries, L1 (Efficient SPLADE, Lassance and
Clinchant, SIGIR 2022, https://arxiv.org/abs/2207.03834).
"""

import logging

import torch
from experimaestro import Meta, Param, field
from xpm_torch.losses import Loss
from xpm_torch.metrics import ScalarMetric
from xpmir.neural.dual import FlopsRegularizer as _Flops
from xpmir.neural.dual import ScheduledFlopsRegularizer

from splade.distributed import gather_rows

logger = logging.getLogger(__name__)

#: Above this share of dead vocabulary entries (after the FLOPS warm-up), a
#: warning: the representations are collapsing
DEAD_WARNING = 0.99


class _Rows:
    """Representations with only their values (what the regularizer reads)"""

    def __init__(self, value):
        self.value = value


class FlopsRegularizer(ScheduledFlopsRegularizer):
    """xpmir's FLOPS regularizer (quadratic warm-up of lambda_q and
    lambda_d), also logging to TensorBoard the current weights
    (``lambda_q``, ``lambda_d``) and the average number of non-zero terms of
    queries and documents (``nonzeros_q``, ``nonzeros_d``), next to xpmir's
    ``flops``, ``flops_q``, ``flops_d`` and ``sparsity_q/d`` (fractions)

    With ``query_l1``, queries are regularized by their L1 norm (the mean
    over the batch of the sum of their weights; logged as ``l1_q``) instead
    of FLOPS."""

    query_l1: Param[bool] = field(default=False, ignore_default=True)
    """L1 instead of FLOPS for queries (Efficient SPLADE)"""

    dead_terms_window: Meta[int] = field(default=0, ignore_default=True)
    """CSPLADE's "dying ReLU" guard: every these many steps, the share of
    vocabulary entries that no query (``dead_terms_q``) or document
    (``dead_terms_d``) of these steps activated; every step, the share of
    all-zero vectors (``zero_vectors_q``, ``zero_vectors_d``); 0: not
    logged"""

    def _dead_terms(self, info, queries, documents):
        """Logs the dead vocabulary entries and all-zero vectors"""
        with torch.no_grad():
            active = getattr(self, "_active", None)
            batch = [(queries.value > 0).any(dim=0), (documents.value > 0).any(dim=0)]
            if active is None or active[0].shape != batch[0].shape:
                active = [torch.zeros_like(b) for b in batch]
            active = [a | b for a, b in zip(active, batch, strict=True)]
            for name, value in (("q", queries.value), ("d", documents.value)):
                zero = (value.abs().sum(dim=1) == 0).float().mean().item()
                info.metrics.add(ScalarMetric(f"zero_vectors_{name}", zero, 1))
            self._active = active
            self._steps = getattr(self, "_steps", 0) + 1
            if self._steps % self.dead_terms_window:
                return
            for name, seen in zip("qd", active, strict=True):
                dead = 1.0 - seen.float().mean().item()
                info.metrics.add(ScalarMetric(f"dead_terms_{name}", dead, 1))
                if dead > DEAD_WARNING and info.steps > self.lambda_warmup_steps:
                    logger.warning(
                        "%.2f%% of the vocabulary is never activated by the %s of"
                        " the last %d steps: the representations collapse"
                        " (CSPLADE's dying ReLU; model.dying_relu.remedy)",
                        100 * dead,
                        "queries" if name == "q" else "documents",
                        self.dead_terms_window,
                    )
            self._active = None

    def __call__(self, info, queries, documents):
        fabric = getattr(info, "fabric", None)
        if fabric is not None and fabric.world_size > 1:
            # With several training processes, the regularization of the
            # whole (global) batch, as one process would compute it: the
            # mean weight of a term is not the mean of the processes' means
            queries = _Rows(gather_rows(fabric, queries.value)[0])
            documents = _Rows(gather_rows(fabric, documents.value)[0])
        if self.query_l1:
            self._l1_queries(info, queries, documents)
        else:
            super().__call__(info, queries, documents)
        if self.dead_terms_window:
            self._dead_terms(info, queries, documents)
        with torch.no_grad():
            for name, value in (
                ("lambda_q", self.lambda_q),
                ("lambda_d", self.lambda_d),
                ("nonzeros_q", (queries.value > 0).sum(1).float().mean().item()),
                ("nonzeros_d", (documents.value > 0).sum(1).float().mean().item()),
            ):
                info.metrics.add(ScalarMetric(name, float(value), 1))

    def _l1_queries(self, info, queries, documents):
        ratio = self.quadratic_ratio(info.steps)
        self.lambda_q = (self.initial_lambda_q - self.min_lambda_q) * ratio
        self.lambda_q += self.min_lambda_q
        self.lambda_d = (self.initial_lambda_d - self.min_lambda_d) * ratio
        self.lambda_d += self.min_lambda_d
        l1_q = queries.value.abs().sum(dim=1).mean()
        _, flops_d = _Flops.compute(documents.value)
        info.add_loss(
            Loss("flops", self.lambda_d * flops_d + self.lambda_q * l1_q, 1.0)
        )
        info.metrics.add(ScalarMetric("l1_q", l1_q.item(), 1))
        info.metrics.add(ScalarMetric("flops_d", flops_d.item(), 1))
