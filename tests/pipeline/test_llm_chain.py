"""SPLADE over a decoder LLM, the whole chain end to end (slow): MNTP
adaptation -> ranking training -> index -> evaluation, offline on a CPU.

``splade/debug_llm.yaml`` with the small Llama the package generates
(``splade.debug.llama``): the trained model is clearly above its own
starting point (the model after MNTP, evaluated as ``splade-untrained``)
and above BM25.
"""

import sys

import pandas as pd
import pytest
from conftest import ROOT, failure_report, run, user_environment

pytestmark = pytest.mark.slow


def results(log) -> pd.DataFrame:
    text = log.read_text(errors="replace")
    marker = "Saved results in "
    assert marker in text, f"no results in {log}"
    return pd.read_csv(text.split(marker)[1].split()[0]).set_index("model")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    return home, env


def experiment(home, env, name, *overrides) -> pd.DataFrame:
    log = home / f"{name}.log"
    command = ["experimaestro", "run-experiment", str(ROOT / "splade/debug_llm.yaml")]
    for value in overrides:
        command += ["-c", value]
    assert run(command, env, log, timeout=3600) == 0, failure_report(home, log)
    assert not (home / "network.log").exists()
    return results(log)


def test_debug_llm_trains_above_its_starting_point(home):
    table = experiment(*home, "debug_llm")
    ndcg = table["nDCG@10"]
    assert ndcg["splade"] > ndcg["splade-untrained"] + 0.1, table
    assert ndcg["splade"] > ndcg["bm25"], table
    jobs = home[0] / "experiments/splade/jobs"
    # MNTP is a task of its own, whose model the training starts from
    assert len(list(jobs.glob("splade.mntp.mntpadaptation/*"))) == 1
