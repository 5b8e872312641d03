"""The FLOPS regularizer, with the figures a researcher tunes it by"""

import torch
from xpm_torch.metrics import ScalarMetric
from xpmir.neural.dual import ScheduledFlopsRegularizer


class FlopsRegularizer(ScheduledFlopsRegularizer):
    """xpmir's FLOPS regularizer (quadratic warm-up of lambda_q and
    lambda_d), also logging to TensorBoard the current weights
    (``lambda_q``, ``lambda_d``) and the average number of non-zero terms of
    queries and documents (``nonzeros_q``, ``nonzeros_d``), next to xpmir's
    ``flops``, ``flops_q``, ``flops_d`` and ``sparsity_q/d`` (fractions)"""

    def __call__(self, info, queries, documents):
        super().__call__(info, queries, documents)
        with torch.no_grad():
            for name, value in (
                ("lambda_q", self.lambda_q),
                ("lambda_d", self.lambda_d),
                ("nonzeros_q", (queries.value > 0).sum(1).float().mean().item()),
                ("nonzeros_d", (documents.value > 0).sum(1).float().mean().item()),
            ):
                info.metrics.add(ScalarMetric(name, float(value), 1))
