"""YAML recipes: inheritance from _common.yaml and command-line overrides"""

import textwrap
from pathlib import Path

import pytest
from conftest import RECIPES, ROOT, load
from pydantic import ValidationError

from splade.checks import yaml_chain


def test_debug_inherits_common_and_overrides_defaults():
    cfg = load(ROOT / "splade" / "debug.yaml")
    assert cfg.id == "splade-debug"
    # from _common.yaml
    assert Path(cfg.file) == ROOT / "splade" / "experiment"
    # from debug.yaml
    assert cfg.data.documents == "splade.debug.documents"
    assert cfg.data.tests == {"debug": "splade.debug.test"}
    assert cfg.model.base_hf_id == "splade.debug.bert"
    assert cfg.learner.optimization.batch_size == 32
    # defaults of configuration.py, untouched by debug.yaml
    assert cfg.bm25.k1 == 0.9 and cfg.bm25.b == 0.4
    assert cfg.model.architecture == "max"
    assert cfg.retrieval.topk == 1000


def test_imported_values_are_overridden(tmp_path):
    (tmp_path / "_common.yaml").write_text("model:\n  lambda_q: 0.7\n  lambda_d: 0.6\n")
    (tmp_path / "_more.yaml").write_text("model:\n  lambda_d: 0.5\n  lambda_q: 0.4\n")
    (tmp_path / "child.yaml").write_text(
        "id: child\nimports: [_common.yaml, _more.yaml]\nmodel:\n  lambda_d: 0.1\n"
    )
    cfg = load(tmp_path / "child.yaml")
    # the file itself, then its imports, the last one first
    assert (cfg.model.lambda_q, cfg.model.lambda_d) == (0.4, 0.1)


def test_the_deprecated_parent_key_still_loads(tmp_path):
    """Recipes written before 'imports' (experimaestro 2.7 reads 'parent:'
    with a DeprecationWarning; the package's recipes use 'imports')"""
    (tmp_path / "_common.yaml").write_text("model:\n  lambda_q: 0.7\n  lambda_d: 0.6\n")
    (tmp_path / "child.yaml").write_text(
        "id: child\nparent: _common.yaml\nmodel:\n  lambda_d: 0.1\n"
    )
    with pytest.warns(DeprecationWarning, match="'parent' is deprecated"):
        cfg = load(tmp_path / "child.yaml")
    assert (cfg.model.lambda_q, cfg.model.lambda_d) == (0.7, 0.1)
    assert yaml_chain(tmp_path / "child.yaml") == [
        tmp_path / "_common.yaml",
        tmp_path / "child.yaml",
    ]


def test_no_recipe_uses_the_deprecated_parent_key():
    import yaml

    for recipe in ROOT.joinpath("splade").glob("*.yaml"):
        assert "parent" not in (yaml.safe_load(recipe.read_text()) or {}), recipe


def test_command_line_overrides():
    cfg = load(
        ROOT / "splade" / "debug.yaml",
        "model.lambda_d=1e-2",
        "learner.optimization.max_epochs=3",
        "retrieval.evaluate_untrained=true",
    )
    assert cfg.model.lambda_d == pytest.approx(0.01)
    assert cfg.learner.optimization.max_epochs == 3
    assert cfg.retrieval.evaluate_untrained is True
    # the rest of debug.yaml is kept
    assert cfg.model.lambda_q == pytest.approx(0.1)


def test_wrong_types_are_rejected():
    with pytest.raises(ValidationError, match=r"learner\.optimization\.batch_size\n"):
        load(ROOT / "splade" / "debug.yaml", "learner.optimization.batch_size=many")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(recipe):
    cfg = load(recipe)
    assert cfg.id.startswith("splade-"), "ids must match the workspace trigger"
    assert cfg.title and cfg.description


def readme_engine_snippets():
    """The YAML snippets of the documentation's "Choosing an engine" page"""
    text = (ROOT / "docs" / "choosing-an-engine.md").read_text(encoding="utf-8")
    blocks = text.split("```yaml\n")[1:]
    return [textwrap.dedent(block.split("```", 1)[0]) for block in blocks]


def test_documented_engine_presets_load(tmp_path):
    """Every engine setting that the documentation shows (the default, PISA,
    BMP, Seismic's "recall 0.95" and "recall 0.99" presets) loads through
    the recipe loader on top of debug.yaml, with the values it shows"""
    import yaml

    snippets = readme_engine_snippets()
    assert len(snippets) >= 4
    names = set()
    for number, snippet in enumerate(snippets):
        child = tmp_path / f"preset{number}.yaml"
        child.write_text(f"imports: [{ROOT / 'splade' / 'debug.yaml'}]\n{snippet}")
        engine = load(child).retrieval.engine
        names.add(engine.name.value)
        documented = yaml.safe_load(snippet)["retrieval"]["engine"]
        for key, values in documented.items():
            if isinstance(values, dict):
                for field, value in values.items():
                    assert getattr(getattr(engine, key), field) == value, snippet
    assert {"exhaustive", "pisa", "bmp", "seismic"} <= names
