"""The SPLADE++ SelfDistil chain on the debug collection (slow): hard
negatives mined by a first stage and scored by a teacher, a second model
trained on them (the parts: tests/unit/test_mining.py). The run is made in
the workspace of the debug run (tests/support/shared_runs.py), whose trained
model is the first stage: only mining, scoring and the second stage run."""

import pandas as pd
import pytest
from shared_runs import GROUP, experiment_jobs, saved_results

from splade.debug_data import DebugCollectionSpec, generate

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(GROUP)]


def test_self_distillation_on_the_debug_collection(debug_workspace, debug_pp_run):
    """splade/debug_pp.yaml: the second model, trained on the negatives the
    first stage mined and the teacher scored, beats the first stage"""
    home = debug_workspace.home
    ndcg = pd.read_csv(saved_results(debug_pp_run)).set_index("model")["nDCG@10"]
    assert ndcg["splade"] > ndcg["splade-first-stage"] + 0.05
    assert ndcg["splade-first-stage"] > ndcg["bm25"] + 0.1

    # the teacher scored the top-20 and the positives of each training query
    jobs = experiment_jobs(home, "splade-debug-pp")
    (scores,) = [
        job / "scores.tsv"
        for job in jobs
        if job.parent.name == "splade.mining.scorecandidates"
    ]
    lines = [line.split("\t") for line in scores.read_text().splitlines()]
    queries = {q for q, _, _ in lines}
    assert len(queries) == DebugCollectionSpec().train_queries
    collection = generate(DebugCollectionSpec())
    positives = {(q, d) for q, d, _ in collection.qrels["train"]}
    assert positives <= {(q, d) for q, d, _ in lines}
    # two learners: the first stage (debug.yaml's, reused) and the second
    learners = [job for job in jobs if job.parent.name == "xpm_torch.learner.learner"]
    assert len(learners) == 2
    assert not (home / "network.log").exists()
