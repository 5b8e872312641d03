"""Lion-SP's training loss: contrastive plus distillation

Zeng, Killingback, Zamani, "Scaling Sparse and Dense Retrieval in
Decoder-Only LLMs", SIGIR 2025 (arXiv 2502.15526); its code
(HansiZeng/scaling-retriever, ``LlamaBiSparseForNCE_KLDiv``, ``loss_type
nce_kldiv``) averages two losses on teacher-scored training samples:

- the softmax cross-entropy of each query's positive among all the
  documents of the batch (in-batch negatives: the other queries' positives
  and negatives), and
- the KL divergence between the teacher's and the student's distributions
  over the query's scored documents.

Here the samples are the package's teacher-scored (query, positive,
negative) pairs (:class:`splade.distillation.TeacherPairs`, or a teacher
file): the KL divergence is over each query's two documents (Lion-SP
scores 1 positive and 16 negatives per query).
"""

import sys
from typing import List

import torch
from xpm_torch.losses import Loss
from xpm_torch.metrics import ScalarMetric
from xpm_torch.trainers import LossTrainer
from xpmir.letor.distillation.pairwise import DistillationPairwiseTrainer
from xpmir.letor.records import ProductItems
from xpmir.letor.trainers.utils import wrap_collate_with_tokenizer

__all__ = ["ContrastiveDistillationTrainer", "contrastive_kl"]


def collate(samples: List) -> dict:
    """Pairwise distillation samples as a product batch (queries x their
    positives, then their negatives) and the teacher scores (queries x 2)"""
    batch = ProductItems()
    teacher = torch.empty(len(samples), 2)
    positives, negatives = [], []
    for ix, sample in enumerate(samples):
        batch.add_topics(sample.query)
        positives.append(sample.documents[0].document)
        negatives.append(sample.documents[1].document)
        teacher[ix, 0] = sample.documents[0].score
        teacher[ix, 1] = sample.documents[1].score
    batch.add_documents(*positives)
    batch.add_documents(*negatives)
    count = len(samples)
    batch.set_relevances(torch.cat((torch.eye(count), torch.zeros(count, count)), 1))
    return {"records": batch, "tokenized_records": None, "teacher_scores": teacher}


def contrastive_kl(scores: torch.Tensor, teacher: torch.Tensor):
    """(mean, cross-entropy, KL) of Lion-SP's loss

    :param scores: queries x documents, the query's positive in column i
        and its negative in column queries + i (then, with several training
        processes, the other processes' documents)
    :param teacher: queries x 2, the teacher's scores of each query's
        positive and negative
    """
    count = teacher.shape[0]
    rows = torch.arange(count, device=scores.device)
    cross_entropy = torch.nn.functional.cross_entropy(scores, rows)
    pair = torch.stack([scores[rows, rows], scores[rows, rows + count]], dim=1)
    kl = torch.nn.functional.kl_div(
        torch.log_softmax(pair, dim=1),
        torch.log_softmax(teacher.to(pair), dim=1),
        log_target=True,
        reduction="batchmean",
    )
    return (cross_entropy + kl) / 2, cross_entropy, kl


class ContrastiveDistillationTrainer(DistillationPairwiseTrainer):
    """Trains on teacher-scored pairs with Lion-SP's loss
    (:func:`contrastive_kl`; ``lossfn`` is not used)"""

    def initialize(self, random, context):
        LossTrainer.initialize(self, random, context)
        self.sampler.initialize(random)
        collate_fn = wrap_collate_with_tokenizer(self.model, collate)
        self._create_dataloader(self.sampler.as_dataset(), collate_fn=collate_fn)

    def train_batch(self, inputs):
        batch, teacher = inputs["records"], inputs["teacher_scores"]
        tokenized = inputs.get("tokenized_records")
        if tokenized is not None:
            scores = self.model(batch, tokenized=tokenized)
        else:
            scores = self.model(batch)
        if torch.isnan(scores).any() or torch.isinf(scores).any():
            self.logger.error("nan or inf relevance score detected. Aborting.")
            sys.exit(1)
        scores = scores.reshape(teacher.shape[0], -1)
        loss, cross_entropy, kl = contrastive_kl(scores, teacher.to(scores.device))
        self.context.add_loss(Loss("contrastive-kl", loss, 1.0))
        count = teacher.shape[0]
        self.context.metrics.add(
            ScalarMetric("contrastive", cross_entropy.item(), count)
        )
        self.context.metrics.add(ScalarMetric("distillation-kl", kl.item(), count))
