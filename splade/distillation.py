"""Distillation from teacher scores: the pairs of SPLADE++ and the pairwise
KL divergence of Efficient SPLADE

- :class:`TeacherPairs` draws MarginMSE (or KL) pairs from teacher scores
  (:mod:`splade.teacher_scores`): SPLADE++ (Formal et al., SIGIR 2022,
  https://arxiv.org/abs/2205.04733);
"""

from functools import cached_property
from typing import Any, Dict, Iterator

import numpy as np
from datamaestro_ir.data import AdhocAssessments
from datamaestro_ir.data.base import IDRecord, ScoredDocument
from datamaestro_ir.data.distillation import PairwiseDistillationSample
from experimaestro import Param, field
from xpm_torch.base import Sampler
from xpm_torch.datasets import ShardedIterableDataset

from splade.teacher_scores import TeacherScores


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
        positives = {
            topic.topic_id: {
                a.doc_id for a in topic.assessments if a.rel >= self.relevance
            }
            for topic in self.qrels.iter()
        }
        queries, groups = [], []
        for qid, scored in self.scores.iter_queries():
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
        self.logger.info("%d training queries with teacher scores", len(queries))
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
