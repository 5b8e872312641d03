"""Checks of the configuration, before any task is submitted

Ranges and choices are checked when the YAML files are read (they are
declared in :mod:`splade.configuration`). What remains is checked here, by
asking each part of the package about its own section: the data
(:mod:`splade.datasets`: ids, local files read line by line), the model
(:mod:`splade.models`: can it be loaded), training (:mod:`splade.training`:
loss and training data), the mining (:mod:`splade.mining`,
:mod:`splade.recipes`: teachers, pool, a first stage given as a recipe),
the engine (:mod:`splade.engines`), the measures
(:mod:`splade.measures`) and the test collections
(:mod:`splade.test_collections`); plus the keys that experimaestro would
ignore silently (a typo). Every problem names its configuration key, so that a
mistake is found in seconds, not after hours of training.
"""

import typing
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import attr
import yaml

from splade import (
    engines,
    measures,
    mining,
    models,
    recipes,
    test_collections,
    training,
)
from splade.configuration import ConfigurationError, SPLADEConfiguration
from splade.datasets import Datasets
from splade.workarounds.experimaestro import command_line


def check(
    cfg: SPLADEConfiguration,
    datasets: Optional[Datasets] = None,
    variants: Sequence[SPLADEConfiguration] = (),
    downloads: bool = True,
):
    """Raises a :class:`ConfigurationError` listing every problem

    :param datasets: the experiment's datasets (made from ``cfg.data`` when
        not given)
    :param variants: the configurations of a sweep (``grid_search``), each
        checked (instead of ``cfg``'s own model, engine and training)
    :param downloads: whether the run will download what it needs (not in a
        dry run): the base model must then be reachable
    """
    check_command_line()
    datasets = datasets or Datasets(cfg.data)
    problems: List[str] = datasets.problems(cfg.mode)
    problems += measures.problems(cfg.retrieval)
    problems += test_collections.problems(cfg.data)
    # (the configurations that run: a sweep's variants, not the sweep itself,
    # whose model may be a value that no variant keeps)
    for variant in variants or [cfg]:
        problems += models.problems(variant.model, downloads, variant.mode)
        problems += training.problems(variant)
        problems += mining.problems(variant)
        problems += recipes.problems(variant)
        problems += engines.problems(
            variant.retrieval.engine, variant.indexation.shards, start=downloads
        )
        if shared(variant) != shared(cfg):
            problems.append(
                "grid_search: data, bm25, mode, indexation.max_docs and"
                " retrieval.measures are shared by every variant (the test"
                " collections, BM25 and the validation collection are built"
                " once): sweep the other keys"
            )
    if problems:
        # Once each, in order (variants repeat the problems they share)
        raise ConfigurationError(*dict.fromkeys(problems))


def shared(cfg: SPLADEConfiguration):
    """The values every variant of a sweep shares"""
    return (
        cfg.data,
        cfg.bm25,
        cfg.mode,
        cfg.indexation.max_docs,
        cfg.retrieval.measures,
    )


def unknown_keys(data: Dict[str, Any], cls=SPLADEConfiguration, prefix="") -> List[str]:
    """Keys of a configuration dictionary that are not configuration fields"""
    fields = {f.name: f for f in attr.fields(cls)}
    unknown = []
    for key, value in data.items():
        if key not in fields:
            unknown.append(f"{prefix}{key}")
            continue
        if not isinstance(value, dict):
            continue
        field_type = fields[key].type
        if typing.get_origin(field_type) is typing.Annotated:
            field_type = typing.get_args(field_type)[0]
        args = [a for a in typing.get_args(field_type) if a is not type(None)]
        if typing.get_origin(field_type) is typing.Union and len(args) == 1:
            field_type = args[0]  # Optional[...]
        if attr.has(field_type):
            unknown += unknown_keys(value, field_type, f"{prefix}{key}.")
        elif typing.get_origin(field_type) is dict and attr.has(args[-1]):
            for name, item in value.items():
                if isinstance(item, dict):
                    unknown += unknown_keys(item, args[-1], f"{prefix}{key}.{name}.")
    return unknown


def yaml_chain(yaml_file: Path) -> List[Path]:
    """A YAML file and the files it imports (``imports:``, or the deprecated
    ``parent:`` that experimaestro 2.7 still reads), in the order
    experimaestro merges them (the file itself last)"""
    if not yaml_file.exists() and yaml_file.suffix != ".yaml":
        yaml_file = yaml_file.with_suffix(".yaml")
    data = yaml.safe_load(yaml_file.read_text()) or {}
    parents = data.get("imports") or ([data["parent"]] if data.get("parent") else [])
    chain = []
    for parent in parents:
        chain += yaml_chain(yaml_file.parent / parent)
    return chain + [yaml_file]


def where(key: str, yaml_files: List[Path], overrides: List[str]) -> str:
    """Where a dotted key was set: a YAML file, or a -c option"""
    places = []
    for path in yaml_files:
        value = yaml.safe_load(path.read_text()) or {}
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            places.append(str(path))
    places += [f"-c {o}" for o in overrides if o.split("=", 1)[0] == key]
    return ", ".join(places) or "?"


def check_command_line():
    """Raises a :class:`ConfigurationError` naming every unknown key of the
    YAML files and -c options of the running command, and where it is"""
    command = command_line()
    if command is None:
        return
    unknown = unknown_keys(command["configuration"])
    if unknown:
        files = yaml_chain(command["yaml_file"])
        raise ConfigurationError(
            *(
                f"{key}: unknown configuration key (set in "
                f"{where(key, files, command['overrides'])});"
                " see splade/configuration.py"
                for key in unknown
            )
        )
