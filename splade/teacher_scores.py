"""Teacher scores of (query, document) pairs, and the MarginMSE pairs drawn
from them (SPLADE++)

SPLADE++ (Formal, Lassance, Piwowarski and Clinchant, "From Distillation to
Hard Negative Sampling: Making Sparse Neural IR Models More Effective", SIGIR
2022, https://arxiv.org/abs/2205.04733) distils a cross-encoder: for each
training query, one positive (a relevant document of the judgements) and one
negative drawn uniformly among the documents the teacher scored that are not
positives, with MarginMSE on the two teacher scores. The scores come from
sentence-transformers' ``msmarco-hard-negatives`` (cross-encoder
``ms-marco-MiniLM-L-6-v2`` on the negatives mined by several systems:
EnsembleDistil), or from this package's teacher scoring of the negatives
mined by a SPLADE model (SelfDistil, :mod:`splade.mining`). The pairs are
drawn by :class:`splade.distillation.TeacherPairs`.

Data types only (datamaestro): imported when datamaestro lists datasets.
"""

import gzip
import pickle
from typing import Any, Dict, Iterator, Tuple

from datamaestro.data import Base, File
from datamaestro_ir.data import AdhocAssessments, Topics
from experimaestro import Param

#: query id -> document id -> teacher score
Scores = Dict[str, Dict[str, float]]


class TeacherScores(Base):
    """Teacher scores of (query, document) pairs"""

    def iter_queries(self) -> Iterator[Tuple[str, Dict[Any, float]]]:
        """(query id, {document id: score}) for each query (document ids as
        stored: integers or strings)"""
        raise NotImplementedError()

    def scores(self) -> Scores:
        """query id -> document id -> score (ids as strings)"""
        return {
            qid: {str(docid): score for docid, score in scored.items()}
            for qid, scored in self.iter_queries()
        }


class PickledTeacherScores(TeacherScores, File):
    """A pickle (gzipped or not) of ``{query id: {document id: score}}``
    (ids may be integers), as sentence-transformers'
    ``cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz``"""

    def iter_queries(self) -> Iterator[Tuple[str, Dict[Any, float]]]:
        # sentence-transformers' file (160M pairs) takes about 15 GB to load
        with self.path.open("rb") as fp:
            gzipped = fp.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(self.path, "rb") as fp:
            raw = pickle.load(fp)
        for qid in list(raw):
            yield str(qid), raw.pop(qid)


class TeacherScoresTSV(TeacherScores, File):
    """``query id<TAB>document id<TAB>score`` lines"""

    def iter_queries(self) -> Iterator[Tuple[str, Dict[Any, float]]]:
        current, scored = None, {}
        with self.path.open("rt", encoding="utf-8") as fp:
            for line in fp:
                qid, docid, score = line.rstrip("\n").split("\t")
                if qid != current and current is not None:
                    yield current, scored
                    scored = {}
                current = qid
                scored[docid] = float(score)
        if current is not None:
            yield current, scored


def write_scores(scores: Scores, path):
    """Writes teacher scores in the format of :class:`TeacherScoresTSV`"""
    with open(path, "wt", encoding="utf-8") as fp:
        for qid, scored in scores.items():
            for docid, score in scored.items():
                fp.write(f"{qid}\t{docid}\t{score!r}\n")


class ScoredQueries(Base):
    """Training queries with teacher scores of documents, and their relevance
    judgements (the positives)"""

    topics: Param[Topics]
    """The queries"""

    scores: Param[TeacherScores]
    """The teacher scores"""

    qrels: Param[AdhocAssessments]
    """Relevance judgements of the queries"""
