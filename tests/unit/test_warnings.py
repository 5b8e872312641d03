"""The tests' warning filters (pyproject.toml) and skips: a DeprecationWarning
caused by the package is an error, the day it appears; under CI, a skip for
anything but missing hardware or ../shared is a failure"""

import textwrap
import warnings

import pytest
from conftest import ROOT, load


def test_a_deprecation_in_a_module_of_the_package_is_an_error():
    code = "import warnings\nwarnings.warn('old', DeprecationWarning)"
    with pytest.raises(DeprecationWarning, match="old"):
        exec(compile(code, "splade/old.py", "exec"), {"__name__": "splade.old"})
    # elsewhere, a warning
    with pytest.warns(DeprecationWarning, match="old"):
        exec(compile(code, "other.py", "exec"), {"__name__": "other"})


def test_a_deprecated_key_in_a_recipe_of_the_package_is_an_error(tmp_path):
    """experimaestro names the YAML file (here 'parent:', deprecated for
    'imports:' in experimaestro 2.7)"""
    folder = tmp_path / "splade"
    folder.mkdir()
    (folder / "old.yaml").write_text(f"parent: {ROOT / 'splade' / 'debug.yaml'}\n")
    with pytest.raises(DeprecationWarning, match="'parent' is deprecated"):
        load(folder / "old.yaml")


SETTINGS = """
from experimaestro import Config, Param, field


class Ambiguous(Config):
    x: Param[int] = 1


class Declared(Config):
    x: Param[int] = field(default=1, ignore_default=True)
"""


def test_an_ambiguous_default_in_a_configuration_of_the_package_is_an_error(
    tmp_path, monkeypatch
):
    """experimaestro 2.7 deprecates parameters with a bare default value
    (``x: Param[int] = 1``), naming the class"""
    import importlib.util
    import sys

    path = tmp_path / "fake_settings.py"
    path.write_text(SETTINGS)
    spec = importlib.util.spec_from_file_location("splade.fake_settings", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    with pytest.raises(DeprecationWarning, match="in splade.fake_settings.Ambiguous"):
        module.Ambiguous.C()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module.Declared.C()


SKIPS = """
import pytest

def test_missing_module():
    pytest.importorskip("a_module_that_is_not_installed")

def test_no_gpu():
    pytest.skip("no GPU on this machine")

@pytest.mark.skipif(True, reason="../shared/data/scifact is absent")
def test_no_shared_data():
    pass
"""


@pytest.mark.parametrize("ci", ["", "1"])
def test_under_ci_a_missing_dependency_fails(pytester, monkeypatch, ci):
    """Skips for missing hardware (a GPU) or ../shared stay skips under CI;
    a missing module (an engine's dependency) fails; reasons are printed"""
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_skips=textwrap.dedent(SKIPS))
    pytester.makeini("[pytest]\naddopts = -rsx -p no:cacheprovider\n")
    support = ROOT / "tests" / "support"
    monkeypatch.setenv("PYTHONPATH", str(support))
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*no GPU on this machine*", "*../shared/data*"])
    if ci:
        result.assert_outcomes(failed=1, skipped=2)
        result.stdout.fnmatch_lines(
            ["*CI is set: skipped for*a_module_that_is_not_installed*"]
        )
    else:
        result.assert_outcomes(skipped=3)
