"""Distillation from teacher scores: the pairs of SPLADE++ and the pairwise
KL divergence of Efficient SPLADE

- :class:`TeacherPairs` draws MarginMSE (or KL) pairs from teacher scores
  (:mod:`splade.teacher_scores`): SPLADE++ (Formal et al., SIGIR 2022,
  https://arxiv.org/abs/2205.04733);
- :class:`TeacherLists` draws, per query, one positive and n scored
  negatives, and :class:`ListwiseTrainer` learns them (a loss of
  :mod:`splade.losses` on each query's list): SPLADE-v3 (Lassance et al.
  2024, https://arxiv.org/abs/2403.06789; naver/splade's
  ``splade/hf/datasets.py`` and ``splade/hf/trainers.py``).
"""

import sys
from functools import cached_property
from typing import Any, Dict, Iterator, List

import numpy as np
import torch
from datamaestro_ir.data import AdhocAssessments
from datamaestro_ir.data.base import IDRecord, ScoredDocument
from datamaestro_ir.data.distillation import (
    ListwiseDistillationSample,
    PairwiseDistillationSample,
)
from experimaestro import Param, field
from xpm_torch.base import Sampler
from xpm_torch.datasets import InfiniteDataset, ShardedIterableDataset
from xpm_torch.trainers import LossTrainer
from xpmir.letor.records import ProductItems
from xpmir.letor.trainers.utils import wrap_collate_with_tokenizer

from splade.losses import ListwiseLoss
from splade.teacher_scores import TeacherScores
from splade.workarounds.xpm_torch import InterleavedShards


class TeacherPairs(Sampler):
    """MarginMSE pairs drawn from teacher scores: a query (uniformly among
    those with a scored positive and a scored non-positive), one of its
    relevant documents that the teacher scored, and one document the teacher
    scored that is not relevant, each uniformly; with their teacher scores

    Each data loader worker of each process draws its own stream (seeded by
    the learner's random state and the shard number); a resumed training
    draws the samples that follow those of its checkpoint.
    """

    scores: Param[TeacherScores]
    """The teacher scores"""

    qrels: Param[AdhocAssessments]
    """Relevance judgements of the training queries"""

    relevance: Param[int] = field(default=1, ignore_default=True)
    """Minimum relevance of a positive"""

    def as_dataset(self) -> ShardedIterableDataset:
        return _PairsDataset(self._pairs, int(self.random.randint(2**31 - 1)))

    @cached_property
    def _pairs(self):
        """query ids, and for each query its positives and negatives: (ids,
        scores) arrays (ids as integers when they all are)"""
        return scored_groups(self.scores, self.qrels, self.relevance, self.logger)


def scored_groups(scores: TeacherScores, qrels, relevance: int, logger):
    """The queries that have a scored positive and a scored non-positive, and
    for each one its positives and negatives: (ids, scores) arrays (ids as
    integers when they all are)"""
    positives = {
        topic.topic_id: {a.doc_id for a in topic.assessments if a.rel >= relevance}
        for topic in qrels.iter()
    }
    queries, groups = [], []
    for qid, scored in scores.iter_queries():
        relevant = positives.get(qid, ())
        ids = list(scored)
        is_positive = [str(docid) in relevant for docid in ids]
        if any(is_positive) and not all(is_positive):
            mask = np.array(is_positive)
            ids = _array(ids)
            values = np.fromiter(scored.values(), np.float32, len(ids))
            queries.append(qid)
            groups.append(((ids[mask], values[mask]), (ids[~mask], values[~mask])))
    if not queries:
        raise ValueError(
            "No training query has both a scored positive and a scored negative"
        )
    logger.info("%d training queries with teacher scores", len(queries))
    return queries, groups


def _array(ids) -> np.ndarray:
    """Document ids as compact as possible (most are integers)"""
    try:
        return np.array(ids, dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        return np.array(ids, dtype=object)


class _PairsDataset(ShardedIterableDataset):
    def __init__(self, pairs, seed: int):
        self.pairs = pairs
        self.seed = seed
        self.drawn = 0
        self._skip = 0

    def iter_shard(self, shard_id: int, num_shards: int) -> Iterator[Any]:
        queries, groups = self.pairs
        random = np.random.RandomState([self.seed, shard_id])
        skip, self._skip, self.drawn = self._skip, 0, 0
        while True:
            ix = random.randint(len(queries))
            (pos_ids, pos_scores), (neg_ids, neg_scores) = groups[ix]
            p, n = random.randint(len(pos_ids)), random.randint(len(neg_ids))
            pos, pos_score = str(pos_ids[p]), float(pos_scores[p])
            neg, neg_score = str(neg_ids[n]), float(neg_scores[n])
            self.drawn += 1
            if self.drawn <= skip:
                continue
            # as xpmir's teacher TSV gives them (ids only, hydrated later)
            yield PairwiseDistillationSample(
                IDRecord(id=queries[ix]),
                (
                    ScoredDocument(IDRecord(id=pos), pos_score),
                    ScoredDocument(IDRecord(id=neg), neg_score),
                ),
            )

    def state_dict(self) -> Dict[str, Any]:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: Dict[str, Any]):
        self._skip = state.get("drawn", 0)


class TeacherLists(Sampler):
    """Lists of one positive and ``negatives`` scored negatives per query,
    from teacher scores, as naver/splade's ``L2I_Dataset``
    (``splade/hf/datasets.py``) draws them for SPLADE-v3:

    - the queries are taken epoch after epoch, each epoch a new random order
      of the queries that have a scored positive and a scored non-positive
      (naver: Hugging Face's Trainer shuffles its dataset of queries);
    - the positive is drawn uniformly among the query's scored relevant
      documents;
    - the negatives are drawn uniformly without replacement among its other
      scored documents, with replacement when there are no more than
      ``negatives`` of them (naver: ``random.sample`` / ``random.choices``).

    Sample ``i`` of the stream depends only on the seed and ``i``; data
    loader workers and training processes take the samples in turns
    (:class:`~splade.workarounds.xpm_torch.InterleavedShards`): the stream is
    the same whatever their number, and a resumed training continues it.
    """

    scores: Param[TeacherScores]
    """The teacher scores"""

    qrels: Param[AdhocAssessments]
    """Relevance judgements of the training queries"""

    negatives: Param[int] = field(default=8)
    """Negatives per query"""

    relevance: Param[int] = field(default=1, ignore_default=True)
    """Minimum relevance of a positive"""

    def as_dataset(self) -> ShardedIterableDataset:
        seed = int(self.random.randint(2**31 - 1))
        return InfiniteDataset(_Lists(self.lists, self.negatives, seed))

    @cached_property
    def lists(self):
        """query ids, and for each query its positives and negatives: (ids,
        scores) arrays"""
        return scored_groups(self.scores, self.qrels, self.relevance, self.logger)


def draw_list(group, negatives: int, random: np.random.RandomState):
    """(positive, its score), then the negatives and their scores, of one
    query's (positives, negatives) arrays"""
    (pos_ids, pos_scores), (neg_ids, neg_scores) = group
    p = random.randint(len(pos_ids))
    if len(neg_ids) <= negatives:
        chosen = random.randint(len(neg_ids), size=negatives)
    else:
        chosen = random.choice(len(neg_ids), size=negatives, replace=False)
    ids = [str(pos_ids[p])] + [str(neg_ids[n]) for n in chosen]
    scores = [float(pos_scores[p])] + [float(neg_scores[n]) for n in chosen]
    return ids, scores


class _Lists(InterleavedShards):
    """The lists of a :class:`TeacherLists`, by number"""

    def __init__(self, lists, negatives: int, seed: int):
        self.lists, self.negatives, self.seed = lists, negatives, seed
        self._epoch, self._order = None, None
        super().__init__()

    def raw(self, state):
        index = state["next"]
        while True:
            yield {"next": index + 1}, index
            index += 1

    def order(self, epoch: int) -> np.ndarray:
        """The order of the queries in an epoch"""
        if epoch != self._epoch:
            queries, _ = self.lists
            random = np.random.RandomState([self.seed, epoch])
            self._epoch, self._order = epoch, random.permutation(len(queries))
        return self._order

    def make(self, index: int) -> ListwiseDistillationSample:
        queries, groups = self.lists
        epoch, position = divmod(index, len(queries))
        query = int(self.order(epoch)[position])
        random = np.random.RandomState([self.seed, 2**31 - 1, index % 2**31])
        ids, scores = draw_list(groups[query], self.negatives, random)
        # as xpmir's teacher TSV gives them (ids only, hydrated later)
        return ListwiseDistillationSample(
            IDRecord(id=queries[query]),
            [
                ScoredDocument(IDRecord(id=d), s)
                for d, s in zip(ids, scores, strict=True)
            ],
        )


def lists_collate(samples: List[ListwiseDistillationSample]):
    """The batch of a listwise trainer: the queries, then every query's
    list (positive first), and the teacher's scores (queries x list)"""
    records = ProductItems()
    records.add_topics(*(sample.query for sample in samples))
    for sample in samples:
        records.add_documents(*(d.document for d in sample.documents))
    teacher = torch.tensor(
        [[d.score for d in sample.documents] for sample in samples],
        dtype=torch.float32,
    )
    return {"records": records, "tokenized_records": None, "teacher_scores": teacher}


class ListwiseTrainer(LossTrainer):
    """Trains on lists of one positive and n negatives per query
    (:class:`TeacherLists`) with a listwise loss (:mod:`splade.losses`)

    The model scores every query against every document of the batch (one
    encoding of each query and document; with several processes, also the
    others' documents): the regularization hooks see each query once and
    every document, as naver/splade's SPLADE-v3 trainer
    (``splade/hf/trainers.py``) regularizes them. The loss gets each query's
    scores of its own list, and of every negative of the batch."""

    lossfn: Param[ListwiseLoss]
    """The listwise loss"""

    def initialize(self, random: np.random.RandomState, context):
        super().initialize(random, context)
        self.sampler.initialize(random)
        collate = wrap_collate_with_tokenizer(self.model, lists_collate)
        self._create_dataloader(self.sampler.as_dataset(), collate_fn=collate)

    def train_batch(self, inputs):
        records, teacher = inputs["records"], inputs["teacher_scores"]
        tokenized = inputs.get("tokenized_records")
        if tokenized is not None:
            scores = self.model(records, tokenized=tokenized)
        else:
            scores = self.model(records)
        if torch.isnan(scores).any() or torch.isinf(scores).any():
            self.logger.error("nan or inf relevance score detected. Aborting.")
            sys.exit(1)
        queries, size = teacher.shape
        scores = scores.reshape(queries, -1)
        own, negatives = list_scores(scores, size)
        self.lossfn.process(own, teacher.to(scores.device), negatives, self.context)


def list_scores(scores: torch.Tensor, size: int):
    """Each query's scores of its own list, and of every negative of the
    batch, from the scores of the queries against every document of the
    batch (queries x documents: the queries' lists one after the other, the
    process's first, then those of the other processes)"""
    queries = scores.shape[0]
    local = scores[:, : queries * size].reshape(queries, queries, size)
    rows = torch.arange(queries, device=scores.device)
    own = local[rows, rows]
    is_negative = torch.ones(scores.shape[1], dtype=torch.bool, device=scores.device)
    is_negative[::size] = False
    return own, scores[:, is_negative]
