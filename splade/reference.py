"""The configuration reference, generated from :mod:`splade.configuration`

Every key of the YAML files, with its type, default, allowed values and
documentation, read from the code itself: the attrs fields of
:class:`~splade.configuration.SPLADEConfiguration`, recursively (the
sections, ``Optional`` sections and ``Dict[str, section]`` entries), the
docstring under each field and under each member of a choice, taken from
the classes' source (AST), or from the field's ``metadata["doc"]`` when the
class is made at run time (``retrieval.engine``, from the engines'
registry), and the ranges of ``Annotated[..., Ge/Gt/Interval/...]``.

``python -m splade.reference`` prints it (Markdown); the documentation site
makes its page from it at each build (``docs/hooks.py``), so that the
reference cannot drift from the code.
"""

import argparse
import ast
import dataclasses
import inspect
import json
import re
import textwrap
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Dict,
    List,
    Literal,
    Optional,
    Tuple,
    Union,
    get_args,
    get_origin,
)

import annotated_types
import attr
import yaml
from experimaestro.experiments import ConfigurationBase

from splade.configuration import Names, SPLADEConfiguration

__all__ = ["Key", "Section", "markdown", "sections"]


@dataclass
class Key:
    """A key of the YAML files that holds a value (not a section)"""

    path: str
    """Dotted path, e.g. ``data.validation_size``"""
    type: str
    """The type, in words (with its range)"""
    default: Optional[str]
    """The default value as written in YAML; None when the key is required"""
    doc: str
    """Its documentation (Markdown)"""
    choices: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    """Allowed values and the documentation of each"""


@dataclass
class Section:
    """A section of the YAML files (a configuration class)"""

    path: str
    """Dotted path (``""`` for the top level); ``<name>`` for the entries of
    a mapping"""
    doc: str
    """The field's documentation, then the class's (Markdown)"""
    keys: List[Key]
    note: str = ""
    """How the section is set (e.g. optional, unset by default)"""


# --- Docstrings from the source


@lru_cache(maxsize=None)
def _class_docs(cls: type) -> Dict[str, str]:
    """The docstrings under the assignments of a class body (fields, enum
    members), by name; empty when the source cannot be read"""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    body = next(
        (n.body for n in tree.body if isinstance(n, ast.ClassDef)), []
    )  # the class itself
    docs = {}
    for statement, following in zip(body, body[1:], strict=False):
        if isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        elif isinstance(statement, ast.Assign):
            targets = statement.targets
        else:
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            for target in targets:
                if isinstance(target, ast.Name):
                    docs[target.id] = inspect.cleandoc(following.value.value)
    return docs


def field_doc(cls: type, field: attr.Attribute) -> str:
    """The documentation of a field: its ``metadata["doc"]``, or the
    docstring under it in the source of the class that declares it (the
    nearest in the method resolution order)"""
    if "doc" in field.metadata:
        return inspect.cleandoc(field.metadata["doc"])
    for klass in cls.__mro__:
        if field.name in _class_docs(klass):
            return _class_docs(klass)[field.name]
    return ""


def member_doc(member: Enum) -> str:
    """The documentation of a member of a choice: the docstring under it in
    the source, or its own ``__doc__`` (set on the members made at run time,
    e.g. the engine names)"""
    for klass in type(member).__mro__:
        if member.name in _class_docs(klass):
            return _class_docs(klass)[member.name]
    return inspect.cleandoc(vars(member).get("__doc__") or "")


def class_doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


# --- reStructuredText of the docstrings to Markdown

_ROLE = re.compile(r":(?:class|mod|func|meth|data|attr|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``", re.S)
_CODE = re.compile(r"(`[^`]*`)")


def to_markdown(text: str) -> str:
    """Sphinx roles and ````literals```` as Markdown code; ``<`` outside code
    escaped; a blank line before a list that follows a paragraph"""
    text = _ROLE.sub(lambda m: f"``{m.group(1)}``", text)
    text = _LITERAL.sub(lambda m: "`" + m.group(1).replace("\n", " ") + "`", text)
    parts = _CODE.split(text)
    text = "".join(
        part if part.startswith("`") else part.replace("<", "&lt;") for part in parts
    )
    lines = []
    for line in text.split("\n"):
        if (
            line.lstrip().startswith("- ")
            and lines
            and lines[-1].strip()
            and not lines[-1].lstrip().startswith("- ")
        ):
            lines.append("")
        lines.append(line)
    return "\n".join(lines)


# --- Types, ranges and defaults in words

_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _range(metadata) -> str:
    """The range constraints of annotated_types, in words"""
    bounds = {}
    words = []
    for constraint in metadata:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(constraint, name, None) is not None:
                bounds[name] = getattr(constraint, name)
        if isinstance(constraint, annotated_types.MinLen):
            count = constraint.min_length
            words.append(f"at least {count} {'entry' if count == 1 else 'entries'}")
        if isinstance(constraint, annotated_types.MaxLen):
            count = constraint.max_length
            words.append(f"at most {count} {'entry' if count == 1 else 'entries'}")
    lower = [(k, v) for k, v in bounds.items() if k in ("gt", "ge")]
    upper = [(k, v) for k, v in bounds.items() if k in ("lt", "le")]
    if lower and upper:
        (low, a), (high, b) = lower[0], upper[0]
        words.insert(
            0, f"in {'[' if low == 'ge' else ']'}{a}, {b}{']' if high == 'le' else '['}"
        )
    else:
        signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
        words[:0] = [f"{signs[k]} {v}" for k, v in lower + upper]
    return ", ".join(words)


def _is_section(tp) -> bool:
    return isinstance(tp, type) and attr.has(tp)


def _optional(tp) -> Tuple[Any, bool]:
    """``Optional[X]`` -> (X, True)"""
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def describe(tp) -> Tuple[str, List[Tuple[str, str]]]:
    """A type in words, and its allowed values (with their documentation)"""
    if tp is Names:
        return "list of strings (`[a, b]`, or `a,b` after `-c`)", []
    tp, optional = _optional(tp)
    suffix = ", or `null`" if optional else ""
    if get_origin(tp) is Annotated:
        base, *metadata = get_args(tp)
        text, choices = describe(base)
        if bounds := _range(metadata):
            text += (", " if bounds.startswith("at ") else " ") + bounds
        return text + suffix, choices
    if isinstance(tp, type) and issubclass(tp, Enum):
        choices = [(str(m.value), to_markdown(member_doc(m))) for m in tp]
        return "string, one of the choices below" + suffix, choices
    if get_origin(tp) is Literal:
        values = get_args(tp)
        choices = [(str(v), "") for v in values]
        kind = describe(type(values[0]))[0] if values else "value"
        return f"{kind}, one of the choices below" + suffix, choices
    if get_origin(tp) in (list, List):
        (item,) = get_args(tp) or (Any,)
        return f"list of {_plural(describe(item)[0])}" + suffix, []
    if get_origin(tp) in (dict, Dict):
        key, value = get_args(tp) or (str, Any)
        return (
            f"mapping of {describe(key)[0]} to {describe(value)[0]}" + suffix,
            [],
        )
    if tp is Any:
        return "any value" + suffix, []
    if _is_section(tp):
        return "section" + suffix, []
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp))) + suffix, []


def _plural(text: str) -> str:
    return {"string": "strings", "integer": "integers", "number": "numbers"}.get(
        text, text
    )


def _plain(value):
    """A default value as YAML writes it"""
    if isinstance(value, Enum):
        return value.value
    if attr.has(type(value)):
        return _plain(attr.asdict(value, recurse=False))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def default_of(field: attr.Attribute) -> Tuple[bool, Any]:
    """(whether the field has a default, the default)"""
    default = field.default
    if default is attr.NOTHING or (
        type(default).__name__ == "MissingSentinel" and not default
    ):
        return False, None
    if isinstance(default, attr.Factory):
        return True, default.factory()
    return True, default


def yaml_value(value) -> str:
    """A value in YAML flow style (one line)"""
    value = _plain(value)
    if isinstance(value, str):
        return json.dumps(value) if value == "" else value
    if isinstance(value, float):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


# --- The walk


def sections(
    cls: type = SPLADEConfiguration, path: str = "", doc: str = "", note: str = ""
) -> List[Section]:
    """The sections of ``cls`` (first its own keys, then its sub-sections,
    depth first); without the keys of experimaestro's
    :class:`ConfigurationBase` (see :func:`experiment_keys`)"""
    own = Section(path, doc, [], note)
    found = [own]
    base = {f.name for f in attr.fields(ConfigurationBase)}
    for field in attr.fields(cls):
        if cls is SPLADEConfiguration and field.name in base:
            continue
        key = f"{path}.{field.name}" if path else field.name
        raw = field_doc(cls, field)
        tp, optional = _optional(field.type)
        if get_origin(tp) is Annotated:  # (a range of a mapping of sections)
            tp = get_args(tp)[0]
        if _is_section(tp):
            note = "Optional: unset (`null`) by default." if optional else ""
            found += sections(tp, key, _join(raw, class_doc(tp)), note)
            continue
        if get_origin(tp) in (dict, Dict) and _is_section(get_args(tp)[1]):
            entry = get_args(tp)[1]
            note = f"A mapping: `{key}.<name>` is a section of the keys below."
            has_default, default = default_of(field)
            if has_default:
                note += f" Default: `{yaml_value(default)}`."
            found += sections(
                entry, f"{key}.<name>", _join(raw, class_doc(entry)), note
            )
            continue
        own.keys.append(_key(cls, field, key, to_markdown(raw)))
    return found


def _key(cls: type, field: attr.Attribute, key: str, text: str) -> Key:
    kind, choices = describe(field.type)
    has_default, default = default_of(field)
    return Key(
        path=key,
        type=kind,
        default=yaml_value(default) if has_default else None,
        doc=text,
        choices=choices,
    )


def experiment_keys() -> Section:
    """The keys that experimaestro reads in every experiment's YAML file
    (:class:`ConfigurationBase`: ``id``, ``parent``, ``grid_search``, ...)"""
    return Section(
        "",
        "Keys that experimaestro reads in every experiment's YAML file "
        "(its `ConfigurationBase`).",
        [
            _key(
                SPLADEConfiguration,
                f,
                f.name,
                to_markdown(field_doc(SPLADEConfiguration, f)),
            )
            for f in attr.fields(ConfigurationBase)
        ],
    )


def _join(*texts: str) -> str:
    """Texts as paragraphs, leaving out one that repeats another"""
    kept: List[str] = []
    for text in texts:
        words = " ".join(text.split()).lower().rstrip(".")
        if words and not any(words in " ".join(k.split()).lower() for k in kept):
            kept = [k for k in kept if " ".join(k.split()).lower() not in words]
            kept.append(text)
    return "\n\n".join(to_markdown(t) for t in kept)


# --- Markdown


def _anchor(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "", path.replace("<name>", "name")) or "top"


def _heading(level: int, title: str, path: str) -> str:
    return f"{'#' * level} {title} {{#{_anchor(path)}}}"


def _render_key(key: Key) -> List[str]:
    default = "required" if key.default is None else f"default `{key.default}`"
    lines = [_heading(3, f"`{key.path}`", key.path), "", f"*{key.type}*; {default}", ""]
    if key.doc:
        lines += [key.doc, ""]
    if key.choices:
        for value, doc in key.choices:
            doc = " ".join(doc.split())
            lines.append(f"- `{value}`" + (f": {doc}" if doc else ""))
        lines.append("")
    return lines


def markdown() -> str:
    """The configuration reference page"""
    found = sections()
    lines = [
        "# Configuration reference",
        "",
        "Every key of the YAML recipes, generated from `splade/configuration.py`",
        "at each build of this site (`python -m splade.reference` prints it):",
        "type, default, allowed values and documentation. Set a key in a YAML",
        "file (nested sections) or on the command line with",
        "`-c section.key=value`; `--show` prints the resolved configuration.",
        "Unknown keys, and values of the wrong type or out of range, stop the",
        "command before any task starts, naming the key.",
        "",
        "Sections: "
        + ", ".join(
            f"[`{s.path or 'top level'}`](#{_anchor(s.path or 'top-level')})"
            for s in found
        )
        + ", [experiment keys](#experiment-keys).",
        "",
    ]
    for section in found:
        title = f"`{section.path}`" if section.path else "Top level"
        lines += [_heading(2, title, section.path or "top-level"), ""]
        for text in (section.doc, section.note):
            if text:
                lines += [text, ""]
        if section.path == "":
            lines += [to_markdown(class_doc(SPLADEConfiguration)), ""]
        for key in section.keys:
            lines += _render_key(key)
    base = experiment_keys()
    lines += [_heading(2, "Experiment keys", "experiment-keys"), "", base.doc, ""]
    for key in base.keys:
        lines += _render_key(key)
    return "\n".join(lines).rstrip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", type=Path, help="File to write (default: standard output)"
    )
    args = parser.parse_args()
    text = markdown()
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")  # noqa: T201


if __name__ == "__main__":
    main()
