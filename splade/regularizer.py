"""The FLOPS regularizer, with the figures a researcher tunes it by"""

import torch
from xpm_torch.metrics import ScalarMetric
from xpmir.neural.dual import ScheduledFlopsRegularizer

from splade.devices import gather_rows


class _Rows:
    """Representations with only their values (what the regularizer reads)"""

    def __init__(self, value):
        self.value = value


class FlopsRegularizer(ScheduledFlopsRegularizer):
    """xpmir's FLOPS regularizer (quadratic warm-up of lambda_q and
    lambda_d), also logging to TensorBoard the current weights
    (``lambda_q``, ``lambda_d``) and the average number of non-zero terms of
    queries and documents (``nonzeros_q``, ``nonzeros_d``), next to xpmir's
    ``flops``, ``flops_q``, ``flops_d`` and ``sparsity_q/d`` (fractions)"""

    def __call__(self, info, queries, documents):
        fabric = getattr(info, "fabric", None)
        if fabric is not None and fabric.world_size > 1:
            # With several training processes, the FLOPS of the whole
            # (global) batch, as one process would compute them: the mean
            # weight of a term is not the mean of the processes' means
            queries = _Rows(gather_rows(fabric, queries.value)[0])
            documents = _Rows(gather_rows(fabric, documents.value)[0])
        super().__call__(info, queries, documents)
        with torch.no_grad():
            for name, value in (
                ("lambda_q", self.lambda_q),
                ("lambda_d", self.lambda_d),
                ("nonzeros_q", (queries.value > 0).sum(1).float().mean().item()),
                ("nonzeros_d", (documents.value > 0).sum(1).float().mean().item()),
            ):
                info.metrics.add(ScalarMetric(name, float(value), 1))
