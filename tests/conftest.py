"""Shared fixtures; every test runs offline"""

from pathlib import Path

import pytest

import network_guard
from splade.debug_data import DebugCollectionSpec, generate

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared"


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
