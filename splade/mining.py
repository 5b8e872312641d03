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
"""

import logging
from pathlib import Path
from typing import Dict, List

from datamaestro_ir.data import Adhoc, AdhocRun
from experimaestro import Annotated, Meta, Param, Task, field, pathgenerator, tqdm
from xpmir.datasets.adapters import RandomFold
from xpmir.evaluation import Evaluate
from xpmir.measures import Measure
from xpmir.rankers import ScoredDocument, Scorer

from splade import pretrained
from splade.configuration import Mining
from splade.debug_teacher import DEBUG_TEACHER, DebugTeacher
from splade.engines import sparse_retriever
from splade.requirements import Launchers
from splade.teacher_scores import ScoredQueries, TeacherScoresTSV, write_scores
from splade.workarounds.xpmir import cross_scorer

logger = logging.getLogger(__name__)


def teacher(mining: Mining):
    """The teacher scorer of ``mining.teacher`` and its initialization
    tasks"""
    if mining.teacher == DEBUG_TEACHER:
        return DebugTeacher.C(), []
    return cross_scorer(pretrained.resolve(mining.teacher), mining.teacher_maxlen)


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
        topk=mining.topk,
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
    scorer, teacher_tasks = teacher(mining)
    return ScoreCandidates.C(
        run=run,
        dataset=queries,
        teacher=scorer,
        topk=mining.topk,
        batch_size=mining.batch_size,
    ).submit(launcher=launcher, init_tasks=teacher_tasks)
