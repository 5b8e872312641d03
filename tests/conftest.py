"""Shared fixtures; every test runs offline

The tests are laid out by kind: ``unit/`` (quick), ``pipeline/`` (end-to-end
runs in subprocesses, marked ``slow``) and ``support/`` (staging, probes,
fake Slurm: importable from every test, as ``import staging``)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "support"))

# Datasets made by the package (splade.debug.*) go to a temporary
# datamaestro folder, not the user's (set before datamaestro is imported)
os.environ.setdefault("DATAMAESTRO_DIR", tempfile.mkdtemp(prefix="splade-tests-"))

import network_guard
import pytest
import worker_threads  # noqa: F401 (sets the threads before torch is imported)
from experimaestro.experiments.cli import ConfigurationLoader
from experimaestro.utils.config import deep_merge, from_dotlist, validate_attrs

from splade.debug_data import DebugCollectionSpec, generate

#: pytester: tests of the conftest hooks (tests/unit/test_warnings.py);
#: shared_runs: the end-to-end runs that several pipeline tests share
pytest_plugins = ["pytester", "shared_runs"]

ROOT = Path(__file__).parents[1]
SUPPORT = ROOT / "tests" / "support"
SHARED = ROOT.parent / "shared"
SPLADE_TINY = SHARED / "models" / "splade-bert-tiny"
SCIFACT = SHARED / "data" / "scifact"

#: Tests that read the real model or collections of ../shared
needs_splade_tiny = pytest.mark.skipif(
    not SPLADE_TINY.is_dir(), reason="../shared/models/splade-bert-tiny is absent"
)
needs_scifact = pytest.mark.skipif(
    not SCIFACT.is_dir() or not SPLADE_TINY.is_dir(),
    reason="../shared/data/scifact or ../shared/models/splade-bert-tiny absent",
)

#: experimaestro task id of the SPLADE index (the default engine's)
SPLADE_INDEX_TASK = "splade.engines.exhaustiveindexbuilder"

RECIPES = sorted(
    path for path in (ROOT / "splade").glob("*.yaml") if not path.name.startswith("_")
)


def load(yaml_file: Path, *overrides: str):
    """Loads a recipe as `experimaestro run-experiment YAML -c ...` does"""
    from splade.configuration import SPLADEConfiguration

    loader = ConfigurationLoader()
    loader.load(yaml_file)
    merged = {}
    for data in loader.yamls:
        deep_merge(merged, data)
    deep_merge(merged, from_dotlist(list(overrides)))
    return validate_attrs(SPLADEConfiguration, merged)


#: Where CI is set (``CI=1``, as .ci/run and CI services do), a skip is a
#: failure unless its reason names missing hardware or the ../shared folder:
#: a missing dependency (an offered engine's, a test's) or tool fails the run
CI_SKIPS = re.compile(r"\b(GPU|CUDA|cuda)\b|\.\./shared|\bshared/(data|models)")


def _ci_refuses(reason: str) -> bool:
    return bool(os.environ.get("CI")) and not CI_SKIPS.search(reason)


def _ci_failure(reason: str) -> str:
    return (
        f"CI is set: skipped for {reason!r}, which is not missing hardware"
        " (a dependency of the package or of its tests is missing?"
        ' install them with pip install -e ".[test]")'
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        if _ci_refuses(reason):
            report.outcome = "failed"
            report.longrepr = _ci_failure(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        if _ci_refuses(reason):
            report.outcome = "failed"
            report.longrepr = _ci_failure(reason)


#: The longest work units (pytest-xdist groups), handed out first by
#: ``--dist loadgroup`` (in the order of the tests), so that the other
#: worker takes the many shorter ones meanwhile
LONGEST_FIRST = ["debug-workspace", "msmarco", "ddp", "reliability"]


def pytest_configure(config):
    # pytest-xdist hands the groups out in the order of the tests (not by
    # their number of tests): the longest first
    if getattr(config.option, "dist", None) == "loadgroup":
        config.option.loadscopereorder = False


def _group(item) -> str:
    for mark in item.iter_markers("xdist_group"):
        return mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    return ""


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config, items):
    """Every test of tests/pipeline/ is slow (left out by -m "not slow"); a
    test without an xdist group is in its module's, so that with
    pytest-xdist a module's fixtures are made once; the longest groups come
    first"""
    pipeline = Path(__file__).parent / "pipeline"
    for item in items:
        if pipeline in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)
        if not _group(item):
            item.add_marker(pytest.mark.xdist_group(Path(item.fspath).stem))
    order = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(_group(item), len(order)))
    yield
    # pytest-xdist 3.8.0 marks a test's group in its node id, which pytest
    # 9.2 ignores (pytest-xdist#1386): the groups would be split between the
    # workers, each making the runs and fixtures of its share again
    if os.environ.get("PYTEST_XDIST_WORKER") and getattr(
        config.option, "loadgroup", False
    ):
        if items and not items[0].nodeid.endswith(f"@{_group(items[0])}"):
            raise pytest.UsageError(
                "pytest-xdist did not group the tests (--dist loadgroup):"
                " pytest>=9.2 with pytest-xdist 3.8.0? pip install 'pytest<9.2'"
            )


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Any connection outside the machine fails (tests must not need it)"""
    saved = network_guard.install()
    yield
    network_guard.uninstall(saved)


@pytest.fixture(autouse=True, scope="session")
def task_environment(tmp_path_factory):
    """experimaestro's progress bars (used by xpmir) need a task folder"""
    from experimaestro.taskglobals import Env

    Env.instance().taskpath = tmp_path_factory.mktemp("task")


@pytest.fixture(scope="session")
def collection():
    return generate(DebugCollectionSpec())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, collection) -> Path:
    """The embedded masked language model, made in a temporary folder"""
    from splade.tiny_model import make_tiny_mlm

    folder = tmp_path_factory.mktemp("tiny-mlm")
    texts = [text for _, text in collection.documents] + [
        text for queries in collection.queries.values() for _, text in queries
    ]
    make_tiny_mlm(texts, folder)
    return folder


def document_store(folder: Path, documents):
    """An impact-index document store of (id, text) pairs, written in
    ``folder``, as the debug collection's (a ``BeirDocumentStore``)"""
    from datamaestro_ir.data.beir import BeirDocumentStore

    from splade.repository import write_document_store

    with (folder / "documents.tsv").open("wt") as fp:
        for docid, text in documents:
            fp.write(f"{docid}\t{text}\n")
    write_document_store(folder / "documents.tsv", folder / "store")
    return BeirDocumentStore.C(
        id="test.store", path=folder / "store", count=len(documents)
    )


def user_environment(home: Path) -> dict:
    """The environment of a user's shell whose HOME is the (new) folder
    ``home``, where every Python process (experiment, jobs) refuses and
    records network accesses (in ``$HOME/network.log``; the processes where
    the guard is installed are listed in ``$HOME/guarded.log``)"""
    site = home / "site"
    site.mkdir(exist_ok=True)
    for module in ("network_guard", "cpu_account"):
        shutil.copyfile(SUPPORT / f"{module}.py", site / f"{module}.py")
    (site / "sitecustomize.py").write_text(
        "import network_guard\nnetwork_guard.install()\n"
        "import cpu_account\ncpu_account.install()\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATAMAESTRO", "XPM", "HF_", "TRANSFORMERS"))
    }
    env.update(
        HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        SPLADE_TEST_NETWORK_LOG=str(home / "network.log"),
        SPLADE_TEST_GUARD_LOG=str(home / "guarded.log"),
    )
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    # (under pytest-xdist, OMP_NUM_THREADS: the worker's share of the cores,
    # set by worker_threads.py)
    return env


def run(args, env, log: Path, timeout=900) -> int:
    """Runs a command (e.g. ``experimaestro run-experiment ...``) from the
    repository's root, its output in ``log``; returns its exit status"""
    with log.open("wt") as fp:
        process = subprocess.run(
            args,
            cwd=ROOT,
            env=env,
            stdout=fp,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    return process.returncode


def failure_report(home: Path, log: Path) -> str:
    """The end of a run's log and of every job's stderr"""
    parts = [f"--- {log}\n" + "\n".join(log.read_text().splitlines()[-60:])]
    for err in sorted((home / "experiments").glob("splade/jobs/*/*/*.err")):
        parts.append(f"--- {err}\n" + "\n".join(err.read_text().splitlines()[-30:]))
    return "\n".join(parts)
