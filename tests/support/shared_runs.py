"""The end-to-end runs that several pipeline tests assert on, made once per
test session (a pytest plugin, loaded by tests/conftest.py)

One new HOME, where every process refuses the network (as a user's, see
conftest.user_environment), with the splade workspace and two BEIR
collections staged from debug documents (``arguana``, ``scidocs``). The runs
are made there on demand, each once:

- :func:`debug_run`: ``experimaestro run-experiment --web splade/debug.yaml
  -c retrieval.evaluate_untrained=true``, with the web monitor on a fixed port
  and token (settings.yaml), until every job is done; the monitor keeps
  serving until :meth:`DebugRun.stop` (or the page's Stop button);
- :func:`debug_pp_run`: ``splade/debug_pp.yaml`` (SelfDistil), whose first
  stage is debug.yaml's model;
- :func:`debug_beir_run`: debug.yaml and _beir.yaml, on the staged BEIR
  collections;
- :func:`zero_shot_runs`: ``debug.yaml -c mode=zero-shot``, its index built
  by one task, then by 2 shards.

And, each in a HOME of its own (group :data:`DDP_GROUP`), :func:`slurm_runs`:
the debug recipe trained by 2 processes through the Slurm launcher with fake
Slurm commands, on one node or two.

experimaestro reuses a finished task whose identifier is the same: each run
starts only the tasks that the runs before it have not done (the training of
debug.yaml is done once), so that the tests count the jobs of their own
experiment (:func:`experiment_jobs`), not the workspace's. With pytest-xdist,
the tests that use these runs are in the group :data:`GROUP`
(``--dist loadgroup`` keeps them on one worker, which makes the runs once).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml
from conftest import ROOT, failure_report, run, user_environment

#: pytest-xdist group of the tests that use these runs
GROUP = "debug-workspace"
TIMEOUT = 1800  # seconds, for a run
FINISHED = "Experiment finished; web server still running"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def experiment_jobs(home: Path, experiment: str) -> List[Path]:
    """The job folders of the last run of an experiment (experimaestro links
    them in ``experiments/<id>/current/jobs/<task>/<hash>``)"""
    current = home / "experiments/splade/experiments" / experiment / "current"
    return sorted(link.resolve() for link in current.glob("jobs/*/*"))


def results_table(home: Path, experiment: str) -> Path:
    """The results table of the last run of an experiment"""
    current = home / "experiments/splade/experiments" / experiment / "current"
    (path,) = current.glob("results/results.csv")
    return path


@dataclass
class Workspace:
    home: Path
    env: Dict[str, str]

    def experiment(self, name: str, *args: str, timeout=TIMEOUT) -> Path:
        """Runs ``experimaestro run-experiment ARGS``; returns its log"""
        log = self.home / f"{name}.log"
        command = ["experimaestro", "run-experiment", *map(str, args)]
        code = run(command, self.env, log, timeout=timeout)
        assert code == 0, failure_report(self.home, log)
        return log


@dataclass
class DebugRun:
    """The debug run with the web monitor, its jobs done"""

    home: Path
    env: Dict[str, str]
    process: subprocess.Popen
    log: Path
    port: int
    token: str
    command: List[str]

    @property
    def jobs(self) -> List[Path]:
        return experiment_jobs(self.home, "splade-debug")

    def alive(self):
        """Raises if the run has ended"""
        if self.process.poll() is not None:
            raise AssertionError(
                f"the run ended (code {self.process.returncode})\n"
                + failure_report(self.home, self.log)
            )

    def stop(self):
        """Stops the monitor (as its Stop button does) if it still runs"""
        if self.process.poll() is None:
            from urllib.request import ProxyHandler, build_opener

            opener = build_opener(ProxyHandler({}))
            opener.open(f"http://127.0.0.1:{self.port}/stop?xpm-token={self.token}")
            assert self.process.wait(timeout=120) == 0, failure_report(
                self.home, self.log
            )
        assert self.process.returncode == 0, failure_report(self.home, self.log)


def _wait_for(log: Path, text: str, alive, deadline: float, home: Path):
    while text not in log.read_text(errors="replace"):
        alive()
        assert time.monotonic() < deadline, failure_report(home, log)
        time.sleep(0.5)


@pytest.fixture(scope="session")
def debug_workspace(tmp_path_factory) -> Workspace:
    from staging import stage_beir

    from splade.debug_data import DebugCollectionSpec, generate

    home = tmp_path_factory.mktemp("debug-workspace")
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0

    # Two BEIR collections of debug documents and test queries (whose
    # relevant documents are among them)
    collection = generate(DebugCollectionSpec())
    for name, start in (("arguana", 0), ("scidocs", 1000)):
        documents = collection.documents[start : start + 400]
        ids = {docid for docid, _ in documents}
        qrels = [
            (qid, docid, rel)
            for qid, docid, rel in collection.qrels["test"]
            if docid in ids and rel > 0
        ]
        judged = {qid for qid, _, _ in qrels}
        queries = {q: text for q, text in collection.queries["test"] if q in judged}
        assert len(queries) > 5
        stage_beir(
            home / "datamaestro",
            name,
            ((docid, "", text) for docid, text in documents),
            queries,
            {"test": qrels},
        )
    return Workspace(home, env)


@pytest.fixture(scope="session")
def debug_run(debug_workspace):
    """``experimaestro run-experiment --web splade/debug.yaml -c
    retrieval.evaluate_untrained=true`` in the shared workspace, once its
    jobs are done (the monitor still serving)"""
    home, env = debug_workspace.home, debug_workspace.env
    # The monitor's host, port and token come from settings.yaml
    port, token = free_port(), secrets.token_hex(8)
    settings = home / ".config/experimaestro/settings.yaml"
    content = yaml.safe_load(settings.read_text())
    content["server"] = {"host": "127.0.0.1", "port": port, "token": token}
    settings.write_text(yaml.safe_dump(content, sort_keys=False))

    command = ["experimaestro", "run-experiment", "splade/debug.yaml"]
    command += ["-c", "retrieval.evaluate_untrained=true"]
    log = home / "run.log"
    with log.open("wt") as fp:
        process = subprocess.Popen(
            [command[0], command[1], "--web", *command[2:]],
            cwd=ROOT,
            env=env,
            stdout=fp,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    debug = DebugRun(home, env, process, log, port, token, command)
    try:
        _wait_for(log, FINISHED, debug.alive, time.monotonic() + TIMEOUT, home)
        yield debug
    finally:
        if process.poll() is None:
            # stop the run (and its jobs) as Ctrl+C does
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def debug_pp_run(debug_workspace, debug_run) -> Path:
    """``splade/debug_pp.yaml`` after the debug run; returns its log"""
    return debug_workspace.experiment("debug_pp", ROOT / "splade/debug_pp.yaml")


@pytest.fixture(scope="session")
def debug_beir_run(debug_workspace, debug_run) -> Path:
    """debug.yaml and _beir.yaml (a YAML file of three lines) on the staged
    BEIR collections, after the debug run; returns its log"""
    recipe = debug_workspace.home / "debug_beir.yaml"
    splade = ROOT / "splade"
    recipe.write_text(
        "id: splade-debug-beir\n"
        f"imports: [{splade / 'debug.yaml'}, {splade / '_beir.yaml'}]\n"
        "title: debug\ndescription: debug + BEIR\n"
    )
    return debug_workspace.experiment(
        "debug_beir", recipe, "-c", "data.tests_only=debug,arguana,scidocs"
    )


@pytest.fixture(scope="session")
def debug_v3_runs(debug_workspace, debug_pp_run) -> Dict[str, Path]:
    """``splade/debug_v3.yaml`` then ``splade/debug_v3_idf.yaml`` after the
    debug_pp run (their first stage is its SelfDistil chain, reused);
    returns the log of each"""
    return {
        recipe: debug_workspace.experiment(recipe, ROOT / f"splade/{recipe}.yaml")
        for recipe in ("debug_v3", "debug_v3_idf")
    }


@pytest.fixture(scope="session")
def zero_shot_runs(debug_workspace, debug_run) -> Dict[int, str]:
    """The debug recipe without training (the embedded model), indexed by
    one task, then by 2 shards (``indexation.shards``); returns the
    experiment id of each"""
    ids = {}
    for shards in (1, 2):
        ids[shards] = f"splade-debug-zero-shot-{shards}"
        debug_workspace.experiment(
            f"zero-shot-{shards}",
            "splade/debug.yaml",
            *("-c", "mode=zero-shot"),
            *("-c", f"indexation.shards={shards}"),
            *("-c", f"id={ids[shards]}"),
        )
    return ids


def saved_results(log: Path) -> Optional[Path]:
    """The results table that a run printed ("Saved results in ...")"""
    text = log.read_text(errors="replace")
    marker = "Saved results in "
    assert marker in text, f"no results in {log}"
    return Path(text.split(marker)[1].split()[0])


# --- The miniature MS MARCO (tests/support/staging.py), staged once for the
# MS MARCO recipes (tests/pipeline/test_msmarco_recipes.py) and the SPLADE-v3
# ones (tests/pipeline/test_v3_msmarco.py): one workspace, whose BM25
# indices, validation collection and BM25 evaluations run once for both

#: pytest-xdist group of the tests that use the MS MARCO workspace
MSMARCO_GROUP = "msmarco"


@dataclass
class MSMarcoWorkspace(Workspace):
    #: the models made for the collection (mlm, cross_encoder, teacher_a,
    #: teacher_b, llama) and the number of id triples (triples)
    values: Dict[str, object]


def make_msmarco_models(texts, folder: Path) -> Dict[str, Path]:
    """A small masked language model of the collection's words, two
    cross-encoders of its shape (random weights, seeds 1 and 2: they score,
    badly), and a small Llama causal LM of the same words"""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from splade.tiny_model import make_tiny_mlm

    mlm = folder / "mlm"
    make_tiny_mlm(texts, mlm)
    models = {"mlm": mlm}
    for name, seed in (("teacher_a", 1), ("teacher_b", 2)):
        torch.manual_seed(seed)
        teacher = folder / f"cross-encoder-{seed}"
        config = BertConfig.from_pretrained(mlm, num_labels=1)
        BertForSequenceClassification(config).save_pretrained(teacher)
        AutoTokenizer.from_pretrained(mlm).save_pretrained(teacher)
        models[name] = teacher
    # the cross-encoder of the SPLADE++ recipes (mining.teacher)
    models["cross_encoder"] = models["teacher_a"]
    # a small Llama of the collection's words (splade_llm.yaml's backbone)
    from splade.tiny_decoder import make_tiny_decoder

    models["llama"] = folder / "llama"
    make_tiny_decoder(texts, models["llama"])
    return models


@pytest.fixture(scope="session")
def msmarco_workspace(tmp_path_factory) -> MSMarcoWorkspace:
    from staging import stage_minilm_scores, stage_msmarco

    home = tmp_path_factory.mktemp("msmarco")
    env = user_environment(home)
    assert run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log") == 0
    data = stage_msmarco(home / "datamaestro")
    stage_minilm_scores(home / "datamaestro", data["ce_scores"])
    texts = list(data["documents"]) + [
        text for queries in data["queries"].values() for text in queries.values()
    ]
    values = dict(make_msmarco_models(texts, home / "models"))
    values["triples"] = len(data["triples"])
    return MSMarcoWorkspace(home, env, values)


#: Size overrides of every MS MARCO recipe run (short texts, two short
#: epochs, small validation and retrieval depths); each test adds its
#: model, steps and batch size
MSMARCO_SIZES = [
    "model.query_maxlen=16",
    "model.document_maxlen=64",
    "model.lambda_warmup_steps=5",
    "learner.optimization.max_epochs=2",
    "learner.optimization.num_warmup_steps=2",
    "learner.validation_interval=1",
    "learner.num_workers=0",
    "data.validation_size=20",
    "bm25.validation_topk=20",
    "indexation.batch_size=64",
    "retrieval.topk=100",
    "retrieval.efficiency_queries=10",
]

#: The test collections of the MS MARCO recipes
MSMARCO_TESTS = {"msmarco_dev", "trec2019", "trec2020"}


def run_msmarco_recipes(ws: MSMarcoWorkspace, recipes, options):
    """recipe -> (exit status, log) of each recipe run in turn in the MS
    MARCO workspace with the ``-c`` ``options`` (formatted with the
    workspace's values)"""
    outcomes = {}
    for recipe in recipes:
        command = ["experimaestro", "run-experiment", f"splade/{recipe}.yaml"]
        for option in options:
            command += ["-c", option.format(**ws.values)]
        log = ws.home / f"{recipe}.log"
        outcomes[recipe] = run(command, ws.env, log, timeout=1800), log
    return outcomes


def check_msmarco_results(home: Path, code: int, log: Path, tests=MSMARCO_TESTS):
    """A MS MARCO recipe's run ended well: BM25 and SPLADE evaluated on each
    of ``tests`` (measures in [0, 1]), SPLADE's vectors and latencies
    measured, nothing downloaded; returns its results table"""
    import pandas as pd

    assert code == 0, failure_report(home, log)
    df = pd.read_csv(saved_results(log))
    for model in ("bm25", "splade"):
        rows = df[df["model"] == model]
        assert set(rows["dataset"]) == tests, (model, df)
        for measure in ("RR@10", "nDCG@10", "R@1000", "AP"):
            assert rows[measure].between(0, 1).all(), (model, measure)
    splade = df[df["model"] == "splade"]
    assert (splade["nonzeros_d"] > 0).all() and (splade["latency_ms"] > 0).all()
    assert not (home / "network.log").exists()
    return df


# --- The debug recipe through the Slurm launcher (launchers/slurm), with
# fake sbatch, srun, sacct, squeue and scancel (tests/support/fake_slurm)

#: pytest-xdist group of the tests of training on several processes
DDP_GROUP = "ddp"

SLURM_LAUNCHERS = '''
"""launchers/slurm/launchers.py, with the fake Slurm commands"""

import importlib.util

from experimaestro.launchers.slurm import SlurmLauncher

spec = importlib.util.spec_from_file_location("example", "{example}")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


def find_launcher(requirements, tags=frozenset()):
    launcher = example.find_launcher(requirements, tags)
    if launcher is None:
        return None
    return SlurmLauncher(options=launcher.options, binpath="{bin}", interval=0.5)
'''

#: 2 processes on one node, or one on each of 2 "nodes" (the fake srun
#: gives the tasks their node numbers; all run on this machine): the
#: configuration override and the #SBATCH options it gives
SLURM_LAYOUTS = {
    "devices": ("learner.devices=2", "--nodes=1", "--ntasks-per-node=2"),
    "nodes": ("learner.num_nodes=2", "--nodes=2", "--ntasks-per-node=1"),
}

#: Epochs of the runs on 2 processes (debug.yaml: 6): enough for SPLADE to
#: be ahead of BM25, and to kill a rank after the 2nd one
DDP_EPOCHS = "learner.optimization.max_epochs=4"


@dataclass
class SlurmRun:
    home: Path
    state: Path  # the fake Slurm's state (jobs, their scripts and status)
    log: Path
    sbatch: List[str]  # the #SBATCH options of the learner's layout

    @property
    def jobs(self) -> Path:
        return self.home / "experiments/splade/jobs"


@pytest.fixture(scope="session")
def slurm_runs(tmp_path_factory):
    """layout (:data:`SLURM_LAYOUTS`) -> its :class:`SlurmRun`, made once: the
    debug recipe with 4 epochs, ``-c learner.devices=2`` or ``-c
    learner.num_nodes=2``, in a new HOME"""
    made = {}

    def slurm_run(layout: str) -> SlurmRun:
        if layout in made:
            return made[layout]
        override, *sbatch = SLURM_LAYOUTS[layout]
        folder = tmp_path_factory.mktemp(f"slurm-{layout}")
        home = folder / "home"
        home.mkdir()
        env = user_environment(home)
        code = run([sys.executable, "-m", "splade.workspace"], env, home / "ws.log")
        assert code == 0
        slurm = folder / "slurm"
        shutil.copytree(ROOT / "tests" / "support" / "fake_slurm", slurm / "bin")
        (slurm / "state").mkdir()
        config = folder / "config"
        config.mkdir()
        (config / "launchers.py").write_text(
            SLURM_LAUNCHERS.format(
                example=ROOT / "launchers" / "slurm" / "launchers.py",
                bin=slurm / "bin",
            )
        )
        log = home / "run.log"
        command = [
            "experimaestro",
            "run-experiment",
            "--xpm-config-dir",
            str(config),
            "splade/debug.yaml",
            *("-c", DDP_EPOCHS),
            *("-c", override),
        ]
        code = run(command, env, log, timeout=1200)
        assert code == 0, failure_report(home, log)
        made[layout] = SlurmRun(home, slurm / "state", log, sbatch)
        return made[layout]

    return slurm_run
