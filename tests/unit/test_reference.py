"""The configuration reference (splade.reference) is made from the code:
every key of the YAML files, with its type, default, range, choices and
docstring, so that the documentation site cannot drift from
splade/configuration.py"""

import re
from typing import Annotated, Dict, Literal, Optional

import attr
import yaml
from annotated_types import Ge, Interval, MinLen
from attrs import Factory
from conftest import RECIPES, ROOT
from experimaestro.experiments import configuration

from splade.configuration import (
    Architecture,
    Choice,
    EngineName,
    Loss,
    Mode,
    Names,
    Regularization,
)
from splade.engines import ENGINES
from splade.engines import sections as engine_sections
from splade.reference import main, markdown, member_doc, sections, to_markdown


class Colour(Choice):
    """A colour"""

    RED = "red"
    """The colour of ``red`` things"""

    BLUE = "blue"


@configuration
class Inner:
    """The inner section"""

    depth: Annotated[int, Ge(1)] = 2
    """How deep (:class:`Colour`)"""


@configuration
class Outer:
    """The outer section"""

    colour: Colour = Colour.RED
    """Its colour"""

    ratio: Annotated[float, Interval(gt=0, le=1)] = 0.5
    """A ratio"""

    kind: Literal["a", "b"] = "a"
    """A kind"""

    names: Names = Factory(lambda: ["x", "y"])
    """Names, ``<one>`` or more"""

    inner: Inner = Factory(Inner)
    """The inner one"""

    maybe: Optional[Inner] = None
    """An optional section"""

    named: Annotated[Dict[str, Inner], MinLen(1)] = Factory(lambda: {"k": Inner()})
    """Sections by name"""

    undocumented: int = 0

    made: str = attr.field(default="m", metadata={"doc": "Documented by metadata"})


def by_path(found):
    return {key.path: key for section in found for key in section.keys}


def test_a_configuration_class_read_from_its_source():
    found = sections(Outer, "outer", "The outer")
    assert [s.path for s in found] == [
        "outer",
        "outer.inner",
        "outer.maybe",
        "outer.named.<name>",
    ]
    keys = by_path(found)
    colour = keys["outer.colour"]
    assert (colour.type, colour.default, colour.doc) == (
        "string, one of the choices below",
        "red",
        "Its colour",
    )
    # enumeration members with the docstring under each (none: empty)
    assert colour.choices == [("red", "The colour of `red` things"), ("blue", "")]
    assert keys["outer.ratio"].type == "number in ]0, 1]"
    assert keys["outer.kind"].choices == [("a", ""), ("b", "")]
    assert keys["outer.names"].default == "[x, y]"
    assert keys["outer.names"].doc == "Names, `<one>` or more"
    assert keys["outer.inner.depth"].type == "integer ≥ 1"
    assert keys["outer.inner.depth"].doc == "How deep (`Colour`)"
    assert keys["outer.named.<name>.depth"].default == "2"
    assert keys["outer.undocumented"].doc == ""
    assert keys["outer.made"].doc == "Documented by metadata"
    assert "unset (`null`) by default" in found[2].note
    assert found[1].doc == "The inner one\n\nThe inner section"


def test_every_key_of_the_package_is_documented():
    found = sections()
    undocumented = [k.path for s in found for k in s.keys if not k.doc.strip()]
    assert undocumented == []
    # every member of every enumeration too (Literal values are documented
    # by their field's docstring)
    for choice in (Mode, Architecture, Loss, Regularization, EngineName):
        assert all(member_doc(member) for member in choice), choice


def test_the_engines_come_from_their_registry():
    found = sections()
    names = by_path(found)["retrieval.engine.name"]
    assert [value for value, _ in names.choices] == list(ENGINES)
    for value, doc in names.choices:
        first_words = " ".join(ENGINES[value].__doc__.split()[:3])
        assert to_markdown(first_words) in " ".join(doc.split())
    paths = {s.path for s in found}
    for key, settings in engine_sections().items():
        assert f"retrieval.engine.{key}" in paths
        for field in attr.fields(settings):
            assert f"retrieval.engine.{key}.{field.name}" in by_path(found)
    seismic = by_path(found)["retrieval.engine.seismic.heap_factor"]
    default = attr.fields_dict(engine_sections()["seismic"])["heap_factor"].default
    assert (seismic.type, seismic.default) == ("number in ]0, 1]", str(default))


def recipe_keys(path):
    """The dotted keys that a recipe sets (mapping entries as <name>)"""
    data = yaml.safe_load(path.read_text()) or {}

    def walk(value, prefix):
        if not isinstance(value, dict):
            yield prefix
            return
        for key, inner in value.items():
            yield from walk(inner, f"{prefix}.{key}" if prefix else str(key))

    return set(walk(data, ""))


def test_every_key_a_recipe_sets_is_in_the_page():
    page = markdown()
    headings = set(re.findall(r"^#{2,3} `([^`]+)`", page, re.M))
    keys = {k.path for s in sections() for k in s.keys}
    assert keys <= headings
    mappings = {"data.tests", "data.averages", "data.binary_relevance",
                "data.test_sizes", "grid_search"}  # fmt: skip
    for recipe in RECIPES + sorted((ROOT / "splade").glob("_*.yaml")):
        for key in recipe_keys(recipe):
            key = re.sub(r"^(data\.local\.splits|data\.test_requirements)\.[^.]+",
                         r"\1.<name>", key)  # fmt: skip
            if any(key.startswith(m + ".") for m in mappings):
                continue
            assert key in headings, f"{recipe.name}: {key}"


def test_the_choices_of_the_package_are_listed_with_their_documentation():
    page = markdown()
    for choice in (Loss, EngineName):
        for member in choice:
            assert f"- `{member.value}`: " in page
    assert "- `kl_div`: KL divergence" in page
    assert "- `seismic`: Seismic (Bruch et al., SIGIR 2024" in page


def test_restructured_text_becomes_markdown():
    text = to_markdown(
        "See :class:`~splade.configuration.Loss` and ``a <b>``, not <b>.\n"
        "A list:\n- one\n- two"
    )
    assert text == (
        "See `splade.configuration.Loss` and `a <b>`, not &lt;b>.\n"
        "A list:\n\n- one\n- two"
    )


def test_the_command_prints_the_page(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("sys.argv", ["splade.reference"])
    main()
    assert capsys.readouterr().out == markdown()
    monkeypatch.setattr(
        "sys.argv", ["splade.reference", "--output", str(tmp_path / "r.md")]
    )
    main()
    assert (tmp_path / "r.md").read_text() == markdown()


def test_an_enum_member_without_docstring_does_not_inherit_the_class_one():
    assert Colour.BLUE.__doc__ == "A colour"  # what Python gives
    assert member_doc(Colour.BLUE) == ""
