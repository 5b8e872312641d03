"""Teacher scores, the pairs drawn from them (SPLADE++) and the pairwise KL
loss (Efficient SPLADE)"""

import gzip
import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from datamaestro_ir.data.trec import TrecAdhocAssessments

from splade.distillation import TeacherPairs
from splade.teacher_scores import PickledTeacherScores, TeacherScoresTSV, write_scores

SCORES = {
    1: {10: 9.0, 11: 8.0, 12: 1.0, 13: 0.5},  # positive: 10
    2: {20: 3.0, 21: 7.0},  # positive: 21
    3: {30: 5.0},  # only a positive: not sampled
    4: {40: 1.0, 41: 2.0},  # no positive: not sampled
}
QRELS = {"1": {"10": 1, "12": 0}, "2": {"21": 2}, "3": {"30": 1}}


def write_qrels(path: Path):
    with path.open("wt") as fp:
        for qid, judged in QRELS.items():
            for docid, rel in judged.items():
                fp.write(f"{qid} 0 {docid} {rel}\n")


@pytest.fixture(params=["pickle", "pickle.gz", "tsv"])
def scores(request, tmp_path):
    if request.param == "tsv":
        path = tmp_path / "scores.tsv"
        write_scores(
            {str(q): {str(d): s for d, s in ds.items()} for q, ds in SCORES.items()},
            path,
        )
        return TeacherScoresTSV.C(id="", path=path)
    path = tmp_path / f"scores.{request.param}"
    with (gzip.open if request.param.endswith("gz") else open)(path, "wb") as fp:
        pickle.dump(SCORES, fp)
    return PickledTeacherScores.C(id="", path=path)


def test_scores_are_read(scores):
    read = scores.instance().scores()
    assert read == {
        str(q): {str(d): s for d, s in ds.items()} for q, ds in SCORES.items()
    }


def sampler(scores, tmp_path, seed=0):
    write_qrels(tmp_path / "qrels.txt")
    qrels = TrecAdhocAssessments.C(id="", path=tmp_path / "qrels.txt")
    pairs = TeacherPairs.C(scores=scores, qrels=qrels).instance()
    pairs.initialize(np.random.RandomState(seed))
    return pairs


def draw(dataset, shard=0, count=200):
    samples = itertools.islice(dataset.iter_shard(shard, 2), count)
    return [
        (
            s.query["id"],
            s.documents[0].document["id"],
            s.documents[0].score,
            s.documents[1].document["id"],
            s.documents[1].score,
        )
        for s in samples
    ]


def test_pairs_have_a_scored_positive_and_a_scored_negative(scores, tmp_path):
    samples = draw(sampler(scores, tmp_path).as_dataset())
    assert {q for q, *_ in samples} == {"1", "2"}
    for qid, pos, pos_score, neg, neg_score in samples:
        assert QRELS[qid].get(pos, 0) >= 1 and QRELS[qid].get(neg, 0) < 1
        assert pos_score == SCORES[int(qid)][int(pos)]
        assert neg_score == SCORES[int(qid)][int(neg)]
    # every negative of query 1 is drawn, uniformly
    negatives = [neg for q, _, _, neg, _ in samples if q == "1"]
    assert set(negatives) == {"11", "12", "13"}


def test_shards_draw_their_own_samples_and_resume(scores, tmp_path):
    dataset = sampler(scores, tmp_path).as_dataset()
    first, second = draw(dataset, 0), draw(dataset, 1)
    assert first != second
    # a dataset resumed after 50 samples draws the 51st and the next ones
    resumed = sampler(scores, tmp_path).as_dataset()
    resumed.load_state_dict({"drawn": 50})
    assert draw(resumed, 0, 100) == first[50:150]


def test_upstream_kl_loss_softmaxes_the_whole_batch():
    """xpmir's DistillationKLLoss gives one value per score of the batch
    (its softmax spans the batch), which xpm_torch cannot add to the loss;
    PairwiseKLLoss is the KL of each query's (positive, negative) pair"""
    from xpmir.letor.distillation.pairwise import DistillationKLLoss

    from splade.losses import PairwiseKLLoss

    student = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]])
    teacher = torch.tensor([[5.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    upstream = DistillationKLLoss.C().instance()
    upstream.initialize(None)
    assert upstream.compute(student, teacher, None).shape == (6,)

    loss = PairwiseKLLoss.C().instance()
    p, log_q = torch.softmax(teacher, 1), torch.log_softmax(student, 1)
    expected = (p * (torch.log(p) - log_q)).sum(1).mean()
    torch.testing.assert_close(loss.compute(student, teacher, None), expected)
