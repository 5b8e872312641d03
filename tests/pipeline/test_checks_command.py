"""Bad configurations stop `experimaestro run-experiment` before any task
starts, with the key named and no traceback (slow: each test runs the
command; the checks themselves: tests/unit/test_checks.py)"""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

DEBUG = ROOT / "splade" / "debug.yaml"


def run_command(tmp_path, *args):
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "experimaestro", "run-experiment"]
        + ["--workdir", str(tmp_path / "ws"), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_unknown_key_stops_the_command_before_any_task(tmp_path):
    """A typo in a YAML file: exit status 1, the key and the file are named,
    and no job was started"""
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(f"imports: [{DEBUG}]\nid: splade-typo\nmodel:\n  lamda_d: 0.1\n")
    process = run_command(tmp_path, recipe)
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "model.lamda_d" in output and str(recipe) in output
    assert not (tmp_path / "ws" / "jobs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "option,message",
    [
        ("data.documents=nowhere", "data.documents: no datamaestro dataset 'nowhere'"),
        ("model.lambda_d=-0.5", "model.lambda_d\n  Input should be greater than or"),
    ],
)
def test_configuration_errors_are_printed_without_traceback(tmp_path, option, message):
    process = run_command(tmp_path, DEBUG, "-c", option)
    assert process.returncode == 1
    assert message in process.stderr
    assert "Traceback" not in process.stdout + process.stderr
    assert not (tmp_path / "ws" / "jobs").exists()
