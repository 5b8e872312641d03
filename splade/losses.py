"""The training losses of the package (``learner.loss``), each with its
paper

- ``margin_mse``: MarginMSE (Hofstätter, Althammer, Schröder, Sertkan,
  Hanbury, "Improving Efficient Neural Ranking Models with Cross-Architecture
  Knowledge Distillation", 2020, https://arxiv.org/abs/2010.02666): the mean
  squared error between the student's and the teacher's score margins
  (positive minus negative), xpmir's ``MSEDifferenceLoss``; used by
  DistilSPLADE-max (Formal et al., SIGIR 2022,
  https://arxiv.org/abs/2205.04733) and SPLADE++;
- ``kl_div``: the KL divergence between the teacher's and the student's
  distributions over each query's (positive, negative) pair
  (:class:`PairwiseKLLoss`): Efficient SPLADE (Lassance and Clinchant,
  SIGIR 2022, https://arxiv.org/abs/2207.03834);
- ``softmax_ce``: softmax cross-entropy over the positive, the query's
  negative and the other documents of the batch (in-batch negatives),
  xpm_torch's ``SoftmaxCrossEntropy``: SPLADE v2 (Formal et al., 2021,
  https://arxiv.org/abs/2109.10086); on mined candidates, naver/splade's
  ``contrastive`` (:class:`BatchNegativesCrossEntropy`);
- ``kl_margin_mse``: the KL divergence between the teacher's and the
  student's distributions over each query's list (one positive and n
  negatives) plus MarginMSE over every pair of the list
  (:class:`KLMarginMSELoss`): SPLADE-v3 (Lassance, Déjean, Formal,
  Clinchant, "SPLADE-v3: New baselines for SPLADE", 2024,
  https://arxiv.org/abs/2403.06789; naver/splade's
  ``kldiv_mse_margin_with_weights``, ``splade/hf/trainers.py``).

The sparsity regularization (FLOPS, L1) is in :mod:`splade.regularizer`.
"""

from typing import Dict

import torch
from experimaestro import Config, Param, field
from torch import nn
from xpm_torch.losses import Loss as TrainingLoss
from xpm_torch.losses.batchwise import SoftmaxCrossEntropy
from xpmir.letor.distillation.pairwise import (
    DistillationPairwiseLoss,
    MSEDifferenceLoss,
)

from splade.configuration import Loss

__all__ = [
    "BatchNegativesCrossEntropy",
    "DISTILLATION",
    "KLMarginMSELoss",
    "LISTWISE",
    "ListwiseLoss",
    "PairwiseKLLoss",
    "SoftmaxCrossEntropy",
]


class PairwiseKLLoss(DistillationPairwiseLoss):
    """KL divergence between the teacher's and the student's distributions
    over the (positive, negative) pair of each query: Efficient SPLADE's
    distillation loss (Lassance and Clinchant, SIGIR 2022,
    https://arxiv.org/abs/2207.03834)

    xpmir 1.5.0's ``DistillationKLLoss.compute``
    (xpmir/letor/distillation/pairwise.py:93-104) stacks
    ``scores[:, 0].unsqueeze(0)``: its softmax runs over the 2B scores of the
    batch at once, and the teacher tensor (1 x 2B x 1) broadcasts the KL to
    (1, 2B, 2B); the loss it returns has 2B values, and xpm_torch's trainer
    fails when it adds it to the total loss. Here the softmax is over each
    query's two scores (``tests/unit/test_workarounds.py`` shows xpmir's).
    """

    # (its identifier when it was in splade/workarounds/xpmir.py)
    __xpmid__ = "splade.workarounds.xpmir.pairwiseklloss"

    NAME = "pairwise-KL"

    def compute(self, student_scores, teacher_scores, info):
        return torch.nn.functional.kl_div(
            torch.log_softmax(student_scores, dim=1),
            torch.log_softmax(teacher_scores, dim=1),
            log_target=True,
            reduction="batchmean",
        )


#: Losses on teacher-scored (query, positive, negative) pairs
DISTILLATION: Dict[Loss, type] = {
    Loss.MARGIN_MSE: MSEDifferenceLoss,
    Loss.KL_DIV: PairwiseKLLoss,
}


class ListwiseLoss(Config, nn.Module):
    """A loss on lists of one positive and n negatives per query"""

    NAME = "?"

    def process(self, scores, teacher, negatives, context):
        """Adds the loss to the training context

        :param scores: the student's scores (queries x (1 + n)), the
            positive first
        :param teacher: the teacher's scores of the same documents
        :param negatives: the student's scores of each query against every
            negative of the batch (queries x negatives, every process's)
        """
        value = self.compute(scores, teacher, negatives)
        context.add_loss(TrainingLoss(self.NAME, value, 1.0))

    def compute(self, scores, teacher, negatives) -> torch.Tensor:
        raise NotImplementedError()


class KLMarginMSELoss(ListwiseLoss):
    """SPLADE-v3's distillation loss (naver/splade's
    ``kldiv_mse_margin_with_weights``, ``splade/hf/trainers.py``): over each
    query's list of 1 + n documents,

    - the KL divergence between the teacher's and the student's softmax
      distributions (scores divided by ``temperature``), summed over the
      list and averaged over the queries, weight ``kl_weight``;
    - MarginMSE (Hofstätter et al. 2020, https://arxiv.org/abs/2010.02666)
      over every ordered pair (i, j) of the list, the pairs i = j included
      (they count zero): the mean of ((s_j - s_i) - (t_j - t_i))^2, weight
      ``margin_mse_weight``.
    """

    NAME = "kl-margin-mse"

    kl_weight: Param[float] = field(default=0.99)
    """Weight of the KL divergence"""

    margin_mse_weight: Param[float] = field(default=0.05)
    """Weight of MarginMSE"""

    temperature: Param[float] = field(default=1.0)
    """Temperature of the softmaxes (naver multiplies its scores by a
    "temperature" of 1; they are divided here, the usual convention: the
    same at 1)"""

    def compute(self, scores, teacher, negatives) -> torch.Tensor:
        teacher = teacher.to(scores.dtype)
        student = torch.log_softmax(scores / self.temperature, dim=1)
        target = torch.softmax(teacher / self.temperature, dim=1)
        kl = torch.nn.functional.kl_div(student, target, reduction="none")
        kl = kl.sum(dim=1).mean()
        margins = scores.unsqueeze(1) - scores.unsqueeze(2)
        teacher_margins = teacher.unsqueeze(1) - teacher.unsqueeze(2)
        margin_mse = ((margins - teacher_margins) ** 2).mean()
        return self.kl_weight * kl + self.margin_mse_weight * margin_mse


class BatchNegativesCrossEntropy(ListwiseLoss):
    """Softmax cross-entropy of each query's positive against every negative
    of the batch (its own and the other queries', not their positives):
    naver/splade's ``contrastive`` loss (``splade/hf/trainers.py``), with
    which SPLADE-v3-Doc and -Lexical are trained"""

    NAME = "batch-negatives-ce"

    def compute(self, scores, teacher, negatives) -> torch.Tensor:
        logits = torch.cat([scores[:, :1], negatives], dim=1)
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return torch.nn.functional.cross_entropy(logits, labels)


#: Losses on lists of one positive and n negatives of mined candidates
LISTWISE: Dict[Loss, type] = {
    Loss.KL_MARGIN_MSE: KLMarginMSELoss,
    Loss.SOFTMAX_CE: BatchNegativesCrossEntropy,
}
