"""The SPLADE++ SelfDistil chain on the debug collection (slow): hard
negatives mined by a first stage and scored by a teacher, a second model
trained on them (the parts: tests/unit/test_mining.py)"""

import sys

import pandas as pd
import pytest
from conftest import ROOT, failure_report, run, user_environment

from splade.debug_data import DebugCollectionSpec, generate


@pytest.mark.slow
def test_self_distillation_on_the_debug_collection(tmp_path):
    """splade/debug_pp.yaml: the second model, trained on the negatives the
    first stage mined and the teacher scored, beats the first stage"""
    home = tmp_path / "home"
    home.mkdir()
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    log = home / "run.log"
    command = ["experimaestro", "run-experiment", str(ROOT / "splade/debug_pp.yaml")]
    assert run(command, env, log, timeout=1800) == 0, failure_report(home, log)
    text = log.read_text()
    path = text.split("Saved results in ")[1].split()[0]
    ndcg = pd.read_csv(path).set_index("model")["nDCG@10"]
    assert ndcg["splade"] > ndcg["splade-first-stage"] + 0.05
    assert ndcg["splade-first-stage"] > ndcg["bm25"] + 0.1

    # the teacher scored the top-20 and the positives of each training query
    (scores,) = (home / "experiments/splade/jobs").glob(
        "splade.mining.scorecandidates/*/scores.tsv"
    )
    lines = [line.split("\t") for line in scores.read_text().splitlines()]
    queries = {q for q, _, _ in lines}
    assert len(queries) == DebugCollectionSpec().train_queries
    collection = generate(DebugCollectionSpec())
    positives = {(q, d) for q, d, _ in collection.qrels["train"]}
    assert positives <= {(q, d) for q, d, _ in lines}
    assert not (home / "network.log").exists()
