"""Bad configurations are reported before any task starts, naming the key:
ranges and choices when the YAML files are read (pydantic, from the types of
splade/configuration.py), the rest by splade.checks"""

import pytest
from conftest import ROOT, load
from pydantic import ValidationError

from splade.checks import check, unknown_keys, where, yaml_chain
from splade.configuration import ConfigurationError

DEBUG = ROOT / "splade" / "debug.yaml"


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.lambda_d=-1", "model.lambda_d"),
        ("learner.optimization.batch_size=0", "learner.optimization.batch_size"),
        ("model.architecture=min", "model.architecture"),
        ("learner.loss=ranknet", "learner.loss"),
        ("mode=zeroshot", "mode"),
        ("retrieval.engine.name=lucene", "retrieval.engine.name"),
    ],
)
def test_bad_values_name_their_key_when_read(override, key):
    with pytest.raises(ValidationError, match=key.replace(".", r"\.") + "\n"):
        load(DEBUG, override)


@pytest.mark.parametrize(
    "override,key",
    [
        ("data.documents=splade.debug.documentz", "data.documents"),
        ("model.base_hf_id=/nonexistent/model", "model.base_hf_id"),
        ("learner.early_stop=3", "learner.early_stop"),
        ("retrieval.engine.seismic.n_knn=2", "retrieval.engine.seismic.n_knn"),
    ],
)
def test_bad_values_name_their_key(override, key):
    cfg = load(DEBUG, override, "learner.validation_interval=2")
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.") + ":"):
        check(cfg)


def test_bad_measure():
    cfg = load(DEBUG)
    cfg.retrieval.measures = ["nDCG@10", "Precision@@3", "RR@ten"]
    with pytest.raises(ConfigurationError) as error:
        check(cfg)
    assert error.value.problems == (
        "retrieval.measures: 'Precision@@3' is not an ir_measures measure",
        "retrieval.measures: 'RR@ten' is not an ir_measures measure",
    )


def test_every_problem_is_listed():
    with pytest.raises(ValidationError) as error:
        load(DEBUG, "model.lambda_q=-1", "model.lambda_d=-1")
    assert {".".join(map(str, e["loc"])) for e in error.value.errors()} == {
        "model.lambda_q",
        "model.lambda_d",
    }
    cfg = load(DEBUG, "data.documents=nowhere", "model.base_hf_id=/nonexistent")
    with pytest.raises(ConfigurationError) as error:
        check(cfg)
    assert {p.split(":")[0] for p in error.value.problems} == {
        "data.documents",
        "model.base_hf_id",
    }


def test_hub_model_unreachable_offline_suggests_a_folder():
    cfg = load(DEBUG, "model.base_hf_id=distilbert-base-uncased")
    with pytest.raises(ConfigurationError, match="local folder"):
        check(cfg)
    check(cfg, downloads=False)  # a dry run downloads nothing: no error


def test_sweeps_cannot_change_what_variants_share():
    from experimaestro.experiments.grid import generate_grid

    cfg = load(DEBUG)
    cfg.grid_search = {"model.lambda_d": [0.1, 1.0]}
    variants, _ = generate_grid(cfg)
    check(cfg, variants=variants)
    cfg.grid_search = {"data.validation_size": [10, 20]}
    variants, _ = generate_grid(cfg)
    with pytest.raises(ConfigurationError, match="grid_search: data, bm25"):
        check(cfg, variants=variants)


def test_unknown_keys_are_found_and_located(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"imports: [{DEBUG}]\nid: splade-x\nmodel:\n  lamda_d: 0.1\n")
    data = {"id": "x", "model": {"lamda_d": 0.1, "lambda_q": 1}, "learner": {"lrr": 1}}
    assert unknown_keys(data) == ["model.lamda_d", "learner.lrr"]
    assert unknown_keys({"data": {"tests": {"a": "b"}, "test_sizez": {}}}) == [
        "data.test_sizez"
    ]
    files = yaml_chain(recipe)
    assert files == [ROOT / "splade" / "_common.yaml", DEBUG, recipe]
    assert where("model.lamda_d", files, []) == str(recipe)
    assert where("learner.lrr", files, ["learner.lrr=1"]) == "-c learner.lrr=1"
