"""Hard negatives mined by a first-stage SPLADE model and scored by a teacher
(SPLADE++ SelfDistil)

SPLADE++ SelfDistil (Formal et al., SIGIR 2022,
https://arxiv.org/abs/2205.04733) trains on the hard negatives that a SPLADE
model retrieves for the training queries, scored by a cross-encoder. Each
stage is an experimaestro task, cached and shown in the web monitor:

1. the first stage's index of the documents (shared with its evaluation);
2. its top-k for the training queries (xpmir's ``Evaluate``, whose run is
   kept);
3. :class:`ScoreCandidates`: the teacher scores the top-k and the positives
   of each query;
4. the training draws MarginMSE pairs from these scores
   (:class:`splade.distillation.TeacherPairs`).

SPLADE-v3 (Lassance et al. 2024, https://arxiv.org/abs/2403.06789) mines a
larger pool and scores it with an ensemble of cross-encoders:

2b. :class:`MinePool`: the top-k of the first stage plus documents drawn at
    random among its next ranks (naver's ``distil_top50_50_random``: the
    top-50 and 50 of the top-1000);
3b. one :class:`ScoreCandidates` task per teacher (cached: adding a teacher
    scores nothing again), then :class:`EnsembleScores`: each teacher's
    scores min-max normalised per query, averaged, and, optionally, mapped
    to the scale of one of them (naver's "rescored" scores);
4b. the training draws one positive and n negatives per query
    (:class:`splade.distillation.TeacherLists`).
"""

import logging
import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from datamaestro_ir.data import Adhoc, AdhocRun
from datamaestro_ir.data.trec import TrecAdhocRun
from experimaestro import Annotated, Meta, Param, Task, field, pathgenerator, tqdm
from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluate
from xpmir.measures import Measure
from xpmir.rankers import ScoredDocument, Scorer

from splade import pretrained
from splade.configuration import Mining
from splade.debug_teacher import (
    DEBUG_TEACHER,
    NOISE,
    NOISY_DEBUG_TEACHER,
    DebugTeacher,
)
from splade.engines import sparse_retriever
from splade.requirements import Launchers
from splade.teacher_scores import (
    ScoredQueries,
    TeacherScores,
    TeacherScoresTSV,
    write_scores,
)
from splade.workarounds.xpmir import cross_scorer

logger = logging.getLogger(__name__)


def teacher(mining: Mining, name: Optional[str] = None):
    """The teacher scorer of ``name`` (default: ``mining.teacher``) and its
    initialization tasks"""
    name = name or mining.teacher
    if name == DEBUG_TEACHER:
        return DebugTeacher.C(), []
    if name == NOISY_DEBUG_TEACHER:
        return DebugTeacher.C(noise=NOISE), []
    return cross_scorer(pretrained.resolve(name), mining.teacher_maxlen)


def teachers(mining: Mining) -> List[str]:
    """The teachers of the mining: the ensemble, or the teacher"""
    return list(mining.teachers) or [mining.teacher]


def problems(cfg) -> List[str]:
    """Problems of the mining section (nothing is downloaded)"""
    mining = cfg.mining
    if mining is None:
        return []
    found = []
    if mining.rescale and mining.rescale not in teachers(mining):
        found.append(
            f"mining.rescale: {mining.rescale} is not one of mining.teachers"
            f" ({', '.join(teachers(mining))})"
        )
    if mining.random and mining.depth <= mining.topk:
        found.append(
            f"mining.depth: the random documents are drawn among the ranks"
            f" mining.topk + 1 = {mining.topk + 1} to mining.depth, which must be"
            f" larger (is {mining.depth})"
        )
    if len(set(teachers(mining))) != len(teachers(mining)):
        found.append("mining.teachers: a teacher is named twice")
    return found


def read_run(path: Path, depth: int) -> Dict[str, List[str]]:
    """The documents of each query of a TREC run, best first (at most
    ``depth``)"""
    ranked: Dict[str, List[tuple]] = {}
    with Path(path).open("rt", encoding="utf-8") as fp:
        for line in fp:
            qid, _, docid, _, score, *_ = line.split()
            ranked.setdefault(qid, []).append((-float(score), docid))
    return {qid: [d for _, d in sorted(docs)[:depth]] for qid, docs in ranked.items()}


class ScoreCandidates(Task):
    """Scores, with a teacher, the documents a first stage retrieved for
    training queries (its run) and their relevant documents"""

    run: Param[AdhocRun]
    """The first stage's run (TREC format)"""

    dataset: Param[Adhoc]
    """The training queries, their relevance judgements and the documents"""

    teacher: Param[Scorer]
    """The teacher (e.g. a cross-encoder)"""

    topk: Param[int]
    """Documents of the run scored per query (the first ones)"""

    batch_size: Meta[int] = field(default=256, ignore_default=True)
    """Documents scored at once"""

    scores: Annotated[Path, pathgenerator("scores.tsv")]
    """query id, document id, teacher score (TSV)"""

    def task_outputs(self, dep) -> ScoredQueries:
        return dep(
            ScoredQueries.C(
                id="",
                topics=self.dataset.topics,
                scores=dep(TeacherScoresTSV.C(id="", path=self.scores)),
                qrels=self.dataset.assessments,
            )
        )

    def execute(self):
        import torch

        teacher = self.teacher
        teacher.initialize()
        if isinstance(teacher, torch.nn.Module):
            teacher.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        run = read_run(self.run.path, self.topk)
        positives = {
            topic.topic_id: [a.doc_id for a in topic.assessments if a.rel > 0]
            for topic in self.dataset.assessments.iter()
        }
        documents = self.dataset.documents
        scores: Dict[str, Dict[str, float]] = {}
        with torch.no_grad():
            for topic in tqdm(list(self.dataset.topics.iter()), desc="Teacher"):
                qid = topic["id"]
                candidates = list(
                    dict.fromkeys(run.get(qid, []) + positives.get(qid, []))
                )
                scored = scores.setdefault(qid, {})
                for start in range(0, len(candidates), self.batch_size):
                    ids = candidates[start : start + self.batch_size]
                    records = documents.documents_ext(ids)
                    results = teacher.rsv(
                        topic, [ScoredDocument(r, None) for r in records]
                    )
                    for docid, result in zip(ids, results, strict=True):
                        scored[docid] = float(result.score)
        write_scores(scores, self.scores)
        logger.info(
            "Teacher scores of %d documents for %d queries",
            sum(len(s) for s in scores.values()),
            len(scores),
        )


class MinePool(Task):
    """The candidates of each query: the first ones of a run (its top-k),
    plus documents drawn at random among its next ranks (SPLADE-v3's pool,
    naver/splade's ``distil_top50_50_random``: the top-50 and 50 of the
    top-1000 of SPLADE++ SelfDistil)

    The random documents of a query are drawn uniformly without replacement
    among its ranks ``topk + 1`` to ``depth`` (all of them when there are
    no more), from a random state of ``seed`` and the query id. The pool is
    written as a run (TREC format, with the first stage's scores, best
    first)."""

    run: Param[AdhocRun]
    """The first stage's run (TREC format)"""

    topk: Param[int]
    """Documents of the top of the run kept"""

    random: Param[int]
    """Documents drawn among the next ranks"""

    depth: Param[int]
    """Ranks the random documents are drawn among (the first ones)"""

    seed: Param[int] = field(default=0)
    """Random seed"""

    pool: Annotated[Path, pathgenerator("pool.txt")]
    """The pool (TREC run)"""

    def task_outputs(self, dep) -> TrecAdhocRun:
        return dep(TrecAdhocRun.C(id="", path=self.pool))

    def execute(self):
        count = write_pools(
            self.run.path, self.pool, self.topk, self.random, self.depth, self.seed
        )
        logger.info("Pools of %d queries", count)


def write_pools(run: Path, path: Path, topk: int, random: int, depth: int, seed: int):
    """Writes the pool of each query of a run (:func:`pool`) as a TREC run;
    returns the number of queries"""
    ranked = read_scored_run(run, depth)
    with Path(path).open("wt", encoding="utf-8") as fp:
        for qid, documents in ranked.items():
            chosen = pool(qid, documents, topk, random, seed)
            for rank, (docid, score) in enumerate(chosen, 1):
                fp.write(f"{qid} Q0 {docid} {rank} {score!r} pool\n")
    return len(ranked)


def pool(
    qid: str, ranked: List[Tuple[str, float]], topk: int, random: int, seed: int
) -> List[Tuple[str, float]]:
    """The top-k of a query's ranked documents, plus ``random`` of the next
    ones drawn uniformly without replacement (in rank order)"""
    rest = ranked[topk:]
    if len(rest) > random:
        state = np.random.RandomState([seed, *_query_key(qid)])
        kept = sorted(state.choice(len(rest), size=random, replace=False))
        rest = [rest[i] for i in kept]
    return ranked[:topk] + rest


def _query_key(qid: str) -> List[int]:
    """A query id as numbers (for a random state)"""
    import hashlib

    digest = hashlib.sha256(qid.encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in (0, 4)]


def read_scored_run(path: Path, depth: int) -> Dict[str, List[Tuple[str, float]]]:
    """The (document, score) of each query of a TREC run, best first (at
    most ``depth``)"""
    ranked: Dict[str, List[tuple]] = {}
    with Path(path).open("rt", encoding="utf-8") as fp:
        for line in fp:
            qid, _, docid, _, score, *_ = line.split()
            ranked.setdefault(qid, []).append((-float(score), docid))
    return {
        qid: [(d, -s) for s, d in sorted(docs)[:depth]] for qid, docs in ranked.items()
    }


class EnsembleScores(Task):
    """The scores of a teacher ensemble (SPLADE-v3): each teacher's scores of
    a query's documents are min-max normalised (to [0, 1]; all 0 when they
    are all equal), then averaged over the teachers (ranx's ``min-max`` norm
    and ``sum`` fusion divided by the number of teachers), then, with
    ``rescale``, mapped by an affine transformation to the mean and standard
    deviation of that teacher's scores over every scored pair (naver's
    "rescored" scores)

    The teachers scored the same queries (in the same order) and documents
    (:class:`ScoreCandidates` on the same candidates)."""

    dataset: Param[Adhoc]
    """The training queries, their relevance judgements and the documents"""

    scores: Param[List[TeacherScores]]
    """The scores of each teacher"""

    rescale: Param[Optional[TeacherScores]] = field(default=None, ignore_default=True)
    """The teacher scores whose mean and standard deviation the ensemble's
    are mapped to"""

    path: Annotated[Path, pathgenerator("scores.tsv")]
    """query id, document id, ensemble score (TSV)"""

    def task_outputs(self, dep) -> ScoredQueries:
        return dep(
            ScoredQueries.C(
                id="",
                topics=self.dataset.topics,
                scores=dep(TeacherScoresTSV.C(id="", path=self.path)),
                qrels=self.dataset.assessments,
            )
        )

    def execute(self):
        write_ensemble(self.scores, self.rescale, self.path)


def write_ensemble(
    members: List[TeacherScores], rescale: Optional[TeacherScores], path: Path
):
    """Writes the ensemble of the teacher scores ``members`` (see
    :class:`EnsembleScores`) in the format of :class:`TeacherScoresTSV`"""

    def combined() -> Iterator[Tuple[str, Dict[str, float]]]:
        scored = [teacher.iter_queries() for teacher in members]
        for queries in zip(*scored, strict=True):
            qids = {qid for qid, _ in queries}
            if len(qids) != 1:
                raise ValueError(f"The teachers scored other queries: {qids}")
            yield queries[0][0], ensemble([scores for _, scores in queries])

    scale, shift = 1.0, 0.0
    if rescale is not None:
        source = _moments(s for _, scored in combined() for s in scored.values())
        target = _moments(
            s for _, scored in rescale.iter_queries() for s in scored.values()
        )
        scale, shift = rescaling(source, target)
        logger.info(
            "Ensemble mean %.4f std %.4f, mapped to mean %.4f std %.4f",
            *source,
            *target,
        )
    with Path(path).open("wt", encoding="utf-8") as fp:
        for qid, scored in combined():
            for docid, score in scored.items():
                fp.write(f"{qid}\t{docid}\t{scale * score + shift!r}\n")


def min_max(scores: Dict[str, float]) -> Dict[str, float]:
    """Scores mapped to [0, 1] (all 0 when they are all equal)"""
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {d: (s - low) / span if span > 0 else 0.0 for d, s in scores.items()}


def ensemble(members: List[Dict[str, float]]) -> Dict[str, float]:
    """The average of the min-max normalised scores of one query's
    documents by each teacher (the documents every teacher scored)"""
    normalised = [min_max(scored) for scored in members]
    documents = [d for d in members[0] if all(d in m for m in members[1:])]
    return {d: sum(m[d] for m in normalised) / len(normalised) for d in documents}


def _moments(values) -> Tuple[float, float]:
    """Mean and (population) standard deviation, in one pass"""
    count, total, squares = 0, 0.0, 0.0
    for value in values:
        count += 1
        total += value
        squares += value * value
    if count == 0:
        return 0.0, 0.0
    mean = total / count
    return mean, math.sqrt(max(squares / count - mean * mean, 0.0))


def rescaling(source: Tuple[float, float], target: Tuple[float, float]):
    """(scale, shift) of the affine map that gives values of mean and
    standard deviation ``source`` the mean and standard deviation
    ``target``"""
    (mean, std), (target_mean, target_std) = source, target
    scale = target_std / std if std > 0 else 1.0
    return scale, target_mean - scale * mean


def mine(cfg, datasets, first_stage, index, init_tasks, device) -> ScoredQueries:
    """Submits the mining of hard negatives with a first stage and their
    scoring by the teacher; returns the scored training queries

    :param first_stage: the first-stage SPLADE scorer
    :param index: its index of ``data.documents`` (submitted)
    :param init_tasks: the tasks that give the first stage its weights
    """
    mining = cfg.mining
    launcher = Launchers(cfg).mining()
    retriever = sparse_retriever(
        cfg.retrieval.engine,
        index=index,
        encoder=first_stage.query_encoder or first_stage.encoder,
        topk=mining.depth if mining.random else mining.topk,
        batch_size=cfg.retrieval.batch_size,
        launcher=launcher,
    )
    queries = datasets.get(mining.queries)
    if mining.query_count:
        queries = RandomFold.C(
            dataset=queries, seed=cfg.seed, fold=0, sizes=[mining.query_count]
        ).submit(launcher=launcher)
    _, run = Evaluate.C(
        dataset=queries,
        retriever=retriever,
        measures=[Measure.C(identifier="RR", cutoff=10)],
        with_run=True,
        fabric_config=device,
    ).submit(launcher=launcher, init_tasks=init_tasks)
    candidates = mining.topk
    if mining.random:
        run = MinePool.C(
            run=run,
            topk=mining.topk,
            random=mining.random,
            depth=mining.depth,
            seed=cfg.seed,
        ).submit(launcher=launcher)
        candidates += mining.random

    # One scoring task per teacher
    scored = {}
    for name in teachers(mining):
        scorer, teacher_tasks = teacher(mining, name)
        scored[name] = ScoreCandidates.C(
            run=run,
            dataset=queries,
            teacher=scorer,
            topk=candidates,
            batch_size=mining.batch_size,
        ).submit(launcher=launcher, init_tasks=teacher_tasks)
    if len(scored) == 1 and not mining.rescale:
        (single,) = scored.values()
        return single
    return EnsembleScores.C(
        dataset=queries,
        scores=[s.scores for s in scored.values()],
        rescale=scored[mining.rescale].scores if mining.rescale else None,
    ).submit(launcher=launcher)
