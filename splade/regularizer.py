"""The sparsity regularization of SPLADE, with the figures a researcher
tunes it by

FLOPS (Paria et al., "Minimizing FLOPs to Learn Efficient Sparse
Representations", ICLR 2020, https://arxiv.org/abs/2004.05665), as in SPLADE
v2 (Formal et al., https://arxiv.org/abs/2109.10086), with a quadratic
warm-up of its weights; or, for queries, L1 (Efficient SPLADE, Lassance and
Clinchant, SIGIR 2022, https://arxiv.org/abs/2207.03834). Options:

- the FLOPS of documents over the whole batch (naver/splade's SPLADE-v3
  code, ``splade/hf/trainers.py``) or the mean of the FLOPS of the
  positives and of the negatives (its SPLADE v2 / SPLADE++ code,
  ``splade/tasks/transformer_trainer.py``): ``document_flops``;
- naver/splade's "anti-zero" term of SPLADE-v3, 1 / (sum q)^2 + 1 / (sum
  d)^2 over the batch: ``anti_zero``;
- the IDF-aware FLOPS of Geng et al. 2024 (https://arxiv.org/abs/2411.04403):
  each term's mean document weight divided by its IDF: ``document_idf``.
"""

import logging
from typing import Optional

import torch
from experimaestro import Meta, Param, field
from xpm_torch.losses import Loss
from xpm_torch.metrics import ScalarMetric
from xpmir.neural.dual import ScheduledFlopsRegularizer, dual_representation_metrics

from splade.distributed import gather_rows
from splade.encoders.idf import IdfTable

#: ``document_flops`` values
BATCH, PAIRS_MEAN = "batch", "pairs_mean"

#: IDF below which a term's IDF-aware FLOPS is computed with this IDF
#: (the penalty of a term of IDF 0, e.g. a special token, stays finite)
MIN_IDF = 1e-2


def flops(x: torch.Tensor) -> torch.Tensor:
    """FLOPS of a batch of vectors (batch x vocabulary): the squared mean
    absolute weight of each term, summed over the vocabulary"""
    return (x.abs().mean(0) ** 2).sum()


def l1(x: torch.Tensor) -> torch.Tensor:
    """The mean over the batch of the sum of the absolute weights"""
    return x.abs().sum(1).mean()


def anti_zero(queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    """naver/splade's anti-zero term: 1 / (sum of the query weights)^2 + 1 /
    (sum of the document weights)^2"""
    return 1 / queries.sum() ** 2 + 1 / documents.sum() ** 2


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

    document_flops: Param[str] = field(default=BATCH, ignore_default=True)
    """``batch``: FLOPS of all the documents of the batch; ``pairs_mean``:
    the mean of the FLOPS of the first half of the documents (the
    positives, as xpmir's pairwise and batchwise trainers give them) and of
    the second half (the negatives)"""

    anti_zero: Param[bool] = field(default=False, ignore_default=True)
    """Adds naver/splade's anti-zero term (logged as ``anti_zero``)"""

    document_idf: Param[Optional[IdfTable]] = field(default=None, ignore_default=True)
    """IDF-aware FLOPS of documents: each term's mean weight is divided by
    its IDF in this table (at least ``MIN_IDF``)"""

    idf_tokenizer: Param[Optional[str]] = field(default=None, ignore_default=True)
    """The tokenizer (Hugging Face id or folder) that maps the tokens of
    ``document_idf`` to dimensions"""

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
            batch = [(queries > 0).any(dim=0), (documents > 0).any(dim=0)]
            if active is None or active[0].shape != batch[0].shape:
                active = [torch.zeros_like(b) for b in batch]
            active = [a | b for a, b in zip(active, batch, strict=True)]
            for name, value in (("q", queries), ("d", documents)):
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
        several = fabric is not None and fabric.world_size > 1
        queries, documents = queries.value, documents.value
        positives = negatives = None
        if self.document_flops == PAIRS_MEAN:
            half = documents.shape[0] // 2
            positives, negatives = documents[:half], documents[half:]
            if several:
                positives = gather_rows(fabric, positives)[0]
                negatives = gather_rows(fabric, negatives)[0]
        if several:
            # With several training processes, the regularization of the
            # whole (global) batch, as one process would compute it: the
            # mean weight of a term is not the mean of the processes' means
            queries = gather_rows(fabric, queries)[0]
            documents = gather_rows(fabric, documents)[0]

        ratio = self.quadratic_ratio(info.steps)
        self.lambda_q = (self.initial_lambda_q - self.min_lambda_q) * ratio
        self.lambda_q += self.min_lambda_q
        self.lambda_d = (self.initial_lambda_d - self.min_lambda_d) * ratio
        self.lambda_d += self.min_lambda_d

        regularize = self._document_flops
        if self.document_flops == PAIRS_MEAN:
            flops_d = (regularize(positives) + regularize(negatives)) / 2
        else:
            flops_d = regularize(documents)
        if self.query_l1:
            value_q, name_q = l1(queries), "l1_q"
        else:
            value_q, name_q = flops(queries), "flops_q"
        total = self.lambda_d * flops_d + self.lambda_q * value_q
        metrics = [(name_q, value_q), ("flops_d", flops_d)]
        if self.anti_zero:
            term = anti_zero(queries, documents)
            total = total + term
            metrics.append(("anti_zero", term))
        info.add_loss(Loss("flops", total, 1.0))

        with torch.no_grad():
            metrics += [
                ("flops", total),
                ("lambda_q", self.lambda_q),
                ("lambda_d", self.lambda_d),
                ("nonzeros_q", (queries > 0).sum(1).float().mean()),
                ("nonzeros_d", (documents > 0).sum(1).float().mean()),
            ]
            for name, value in metrics:
                info.metrics.add(ScalarMetric(name, float(value), 1))
        if not self.query_l1:
            dual_representation_metrics(info, queries, documents)
        if self.dead_terms_window:
            self._dead_terms(info, queries, documents)

    def _document_flops(self, documents: torch.Tensor) -> torch.Tensor:
        if self.document_idf is None:
            return flops(documents)
        idf = self._idf(documents)
        return ((documents.abs().mean(0) / idf) ** 2).sum()

    def _idf(self, documents: torch.Tensor) -> torch.Tensor:
        vector = getattr(self, "_idf_vector", None)
        if vector is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.idf_tokenizer)
            vector = self.document_idf.vector(tokenizer).clamp(min=MIN_IDF)
            self._idf_vector = vector
        if vector.shape[0] < documents.shape[1]:
            pad = vector.new_ones(documents.shape[1] - vector.shape[0])
            vector = torch.cat([vector, pad])
        return vector[: documents.shape[1]].to(documents.device, documents.dtype)
