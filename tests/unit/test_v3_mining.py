"""SPLADE-v3's data: the pool of candidates (top-k plus random), the teacher
ensemble (min-max per query, average, rescaling), its tasks (one per
teacher: adding one scores nothing again), and the lists of one positive and
n negatives per query (resumable, the same stream whatever the number of
data loaders)"""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, load
from dryrun import dry_run, of_type

from splade.debug_teacher import DebugTeacher
from splade.distillation import _Lists, draw_list, scored_groups
from splade.mining import (
    EnsembleScores,
    MinePool,
    ScoreCandidates,
    ensemble,
    min_max,
    pool,
    read_scored_run,
    write_ensemble,
    write_pools,
)
from splade.teacher_scores import TeacherScoresTSV, write_scores

# --- The pool


def ranked(count):
    return [(f"d{i}", 100.0 - i) for i in range(count)]


def test_the_pool_is_the_top_k_and_random_documents_of_the_next_ranks():
    chosen = pool("q1", ranked(1000), 50, 50, seed=0)
    ids = [d for d, _ in chosen]
    assert ids[:50] == [f"d{i}" for i in range(50)]
    rest = [int(d[1:]) for d in ids[50:]]
    assert len(set(rest)) == 50 and all(50 <= r < 1000 for r in rest)
    assert rest == sorted(rest)  # in rank order
    # deterministic for a query and a seed; other queries, other draws
    assert pool("q1", ranked(1000), 50, 50, seed=0) == chosen
    assert pool("q2", ranked(1000), 50, 50, seed=0) != chosen
    assert pool("q1", ranked(1000), 50, 50, seed=1) != chosen
    # fewer documents than asked: all of them
    assert pool("q1", ranked(70), 50, 50, seed=0) == ranked(70)


def test_the_pools_of_a_run(tmp_path):
    run = tmp_path / "run.txt"
    with run.open("wt") as fp:
        for q in ("q1", "q2"):
            for rank, (d, s) in enumerate(ranked(30), 1):
                fp.write(f"{q} Q0 {q}{d} {rank} {s} first\n")
    write_pools(run, tmp_path / "pool.txt", topk=5, random=5, depth=20, seed=3)
    pools = read_scored_run(tmp_path / "pool.txt", 100)
    assert set(pools) == {"q1", "q2"}
    for q, documents in pools.items():
        ranks = [int(d[len(q) + 1 :]) for d, _ in documents]
        assert ranks[:5] == list(range(5))
        assert len(ranks) == 10 and all(5 <= r < 20 for r in ranks[5:])


# --- The ensemble


def test_min_max_then_average():
    a = {"d1": 10.0, "d2": 0.0, "d3": 5.0}
    b = {"d1": -1.0, "d2": 3.0, "d3": 1.0}
    assert min_max(a) == {"d1": 1.0, "d2": 0.0, "d3": 0.5}
    assert min_max({"d1": 2.0, "d2": 2.0}) == {"d1": 0.0, "d2": 0.0}
    assert ensemble([a, b]) == {"d1": 0.5, "d2": 0.5, "d3": 0.5}


def test_the_ensemble_is_rescaled_to_the_reference_teacher(tmp_path):
    rng = np.random.RandomState(0)
    teachers = []
    for t in range(2):
        scores = {
            f"q{q}": {f"d{d}": float(rng.randn() * (t + 1) * 4) for d in range(6)}
            for q in range(20)
        }
        write_scores(scores, tmp_path / f"t{t}.tsv")
        path = tmp_path / f"t{t}.tsv"
        teachers.append((scores, TeacherScoresTSV.C(id="", path=path).instance()))
    write_ensemble([c for _, c in teachers], teachers[0][1], tmp_path / "all.tsv")
    combined = TeacherScoresTSV.C(id="", path=tmp_path / "all.tsv").instance()
    combined = combined.scores()
    reference = np.array([s for q in teachers[0][0].values() for s in q.values()])
    values = np.array([s for q in combined.values() for s in q.values()])
    assert values.mean() == pytest.approx(reference.mean(), abs=1e-9)
    assert values.std() == pytest.approx(reference.std(), rel=1e-9)
    # an affine map of the average of the min-max normalised scores
    averages = {
        q: ensemble([teachers[0][0][q], teachers[1][0][q]]) for q in teachers[0][0]
    }
    flat = np.array([s for q in averages.values() for s in q.values()])
    slope, intercept = np.polyfit(flat, values, 1)
    assert np.allclose(slope * flat + intercept, values)
    assert slope > 0


def test_the_noisy_debug_teacher_is_the_oracle_plus_fixed_noise():
    oracle = DebugTeacher.C().instance()
    noisy = DebugTeacher.C(noise=0.5).instance()
    oracle.initialize()
    noisy.initialize()
    query, document = "vuso rapim", "vuso lakat analysis rapim"
    differences = {noisy.score(query, document) - oracle.score(query, document)}
    differences.add(noisy.score(query, document) - oracle.score(query, document))
    (difference,) = differences  # the same noise for the same pair
    assert difference != 0
    other = noisy.score(query, "lakat") - oracle.score(query, "lakat")
    assert other != difference


# --- The tasks of a teacher ensemble


def scoring_tasks(tmp_path, *overrides):
    tasks = dry_run(load(ROOT / "splade/debug_v3.yaml", *overrides), tmp_path)
    scorings = of_type(tasks, ScoreCandidates)
    return {t.__identifier__().all.hex() for t in scorings}, tasks


def test_each_teacher_scores_in_a_task_of_its_own(tmp_path):
    """Adding a teacher adds one scoring task; the others keep their
    identifiers (their scores are reused)"""
    one, _ = scoring_tasks(tmp_path / "a", "mining.teachers=splade.debug.teacher")
    two, tasks = scoring_tasks(tmp_path / "b")
    assert one < two and len(two - one) == 1
    (ensemble_task,) = of_type(tasks, EnsembleScores)
    assert len(ensemble_task.scores) == 2
    (pool_task,) = of_type(tasks, MinePool)
    assert (pool_task.topk, pool_task.random, pool_task.depth) == (10, 10, 50)


# --- The lists of one positive and n negatives


class Qrels:
    def __init__(self, positives):
        self.positives = positives

    def iter(self):
        for qid, docs in self.positives.items():
            assessments = [SimpleNamespace(doc_id=d, rel=1) for d in docs]
            yield SimpleNamespace(topic_id=qid, assessments=assessments)


class Scores:
    def __init__(self, scores):
        self._scores = scores

    def iter_queries(self):
        yield from self._scores.items()


@pytest.fixture(scope="module")
def groups():
    rng = np.random.RandomState(1)
    scores, positives = {}, {}
    for q in range(7):
        count = 3 + q * 2  # q0 has 3 documents: fewer negatives than asked
        scores[f"q{q}"] = {f"{q}-{d}": float(rng.randn()) for d in range(count)}
        positives[f"q{q}"] = {f"{q}-0", f"{q}-1"}
    # a query with no scored negative is left out
    scores["q9"] = {"9-0": 1.0}
    positives["q9"] = {"9-0"}
    logger = SimpleNamespace(info=lambda *args: None)
    lists = scored_groups(Scores(scores), Qrels(positives), 1, logger)
    return lists, scores, positives


def test_a_list_is_a_positive_and_n_negatives(groups):
    lists, scores, positives = groups
    queries, grouped = lists
    assert "q9" not in queries
    random = np.random.RandomState(0)
    for q, group in zip(queries, grouped, strict=True):
        for _ in range(5):
            ids, values = draw_list(group, 4, random)
            assert len(ids) == 5 and ids[0] in positives[q]
            assert not set(ids[1:]) & positives[q]
            assert values == pytest.approx([scores[q][d] for d in ids])
            negatives = len(scores[q]) - 2
            if negatives > 4:  # without replacement when there are enough
                assert len(set(ids[1:])) == 4


def stream(lists, shards, count, state=None):
    """The first ``count`` samples of the stream read by ``shards`` data
    loaders taking turns (as the workers of a data loader do)"""
    datasets = [_Lists(lists, 3, seed=11) for _ in range(shards)]
    if state is not None:
        for dataset in datasets:
            dataset.load_state_dict(state)
    iterators = [d.iter_shard(s, shards) for s, d in enumerate(datasets)]
    samples = []
    for iterator in itertools.cycle(iterators):
        sample = next(iterator)
        samples.append(
            (sample.query["id"], [d.document["id"] for d in sample.documents])
        )
        if len(samples) == count:
            return samples, datasets[0].state_dict()


def test_the_stream_takes_every_query_once_an_epoch(groups):
    lists, _, _ = groups
    queries, _ = lists
    samples, _ = stream(lists, 1, 3 * len(queries))
    for epoch in range(3):
        taken = [
            q for q, _ in samples[epoch * len(queries) : (epoch + 1) * len(queries)]
        ]
        assert sorted(taken) == sorted(queries)
    first, second = (
        [q for q, _ in samples[e * len(queries) : (e + 1) * len(queries)]]
        for e in (0, 1)
    )
    assert first != second  # a new order each epoch


def test_the_stream_is_the_same_whatever_the_shards_and_resumes(groups):
    lists, _, _ = groups
    one, _ = stream(lists, 1, 24)
    assert stream(lists, 2, 24)[0] == one
    assert stream(lists, 4, 24)[0] == one
    # a checkpoint after 12 samples (rank 0's state, every rank's): the
    # stream continues where it was
    _, state = stream(lists, 2, 12)
    resumed, _ = stream(lists, 2, 12, state=state)
    assert resumed == one[12:]
