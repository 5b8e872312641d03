"""Bad configurations are reported before any task starts, naming the key"""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, load

from splade.errors import ConfigurationError, check, unknown_keys, where, yaml_chain

DEBUG = ROOT / "splade" / "debug.yaml"


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.lambda_d=-1", "model.lambda_d"),
        ("learner.optimization.batch_size=0", "learner.optimization.batch_size"),
        ("model.architecture=min", "model.architecture"),
        ("learner.loss=ranknet", "learner.loss"),
        ("data.documents=splade.debug.documentz", "data.documents"),
        ("model.base_hf_id=/nonexistent/model", "model.base_hf_id"),
    ],
)
def test_bad_values_name_their_key(override, key):
    cfg = load(DEBUG, override)
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        check(cfg)


def test_bad_measure():
    cfg = load(DEBUG)
    cfg.retrieval.measures = ["nDCG@10", "Precision@@3"]
    with pytest.raises(ConfigurationError, match="retrieval.measures: 'Precision@@3'"):
        check(cfg)


def test_every_problem_is_listed():
    cfg = load(DEBUG, "model.lambda_q=-1", "model.lambda_d=-1")
    with pytest.raises(ConfigurationError) as error:
        check(cfg)
    assert {p.split(":")[0] for p in error.value.problems} == {
        "model.lambda_q",
        "model.lambda_d",
    }


def test_hub_model_unreachable_offline_suggests_a_folder():
    cfg = load(DEBUG, "model.base_hf_id=distilbert-base-uncased")
    with pytest.raises(ConfigurationError, match="local folder"):
        check(cfg)
    check(cfg, downloads=False)  # a dry run downloads nothing: no error


def test_unknown_keys_are_found_and_located(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"parent: {DEBUG}\nid: splade-x\nmodel:\n  lamda_d: 0.1\n")
    data = {"id": "x", "model": {"lamda_d": 0.1, "lambda_q": 1}, "learner": {"lrr": 1}}
    assert unknown_keys(data) == ["model.lamda_d", "learner.lrr"]
    files = yaml_chain(recipe)
    assert files == [ROOT / "splade" / "_common.yaml", DEBUG, recipe]
    assert where("model.lamda_d", files, []) == str(recipe)
    assert where("learner.lrr", files, ["learner.lrr=1"]) == "-c learner.lrr=1"


def test_unknown_key_stops_the_command_before_any_task(tmp_path):
    """A typo in a YAML file: exit status 1, the key and the file are named,
    and no job was started"""
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(f"parent: {DEBUG}\nid: splade-typo\nmodel:\n  lamda_d: 0.1\n")
    env = dict(os.environ, HOME=str(tmp_path))
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "experimaestro",
            "run-experiment",
            "--workdir",
            str(tmp_path / "ws"),
            str(recipe),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "model.lamda_d" in output and str(recipe) in output
    assert not (tmp_path / "ws" / "jobs").exists()
