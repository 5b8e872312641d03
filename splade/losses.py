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
  https://arxiv.org/abs/2109.10086).

The sparsity regularization (FLOPS, L1) is in :mod:`splade.regularizer`.
"""

from typing import Dict

import torch
from xpm_torch.losses.batchwise import SoftmaxCrossEntropy
from xpmir.letor.distillation.pairwise import (
    DistillationPairwiseLoss,
    MSEDifferenceLoss,
)

from splade.configuration import Loss

__all__ = ["DISTILLATION", "PairwiseKLLoss", "SoftmaxCrossEntropy"]


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
