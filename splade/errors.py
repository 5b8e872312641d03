"""Checks of the configuration, before any task is submitted

Every error names the configuration key (as written in YAML files or after
``-c``) so that a mistake is found in seconds, not after hours of training.
"""

import inspect
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional

import attr
import ir_measures
import yaml

from splade.configuration import SPLADEConfiguration


class ConfigurationError(ValueError):
    """Bad configuration values, each given as ``"key: what is wrong"``"""

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = problems


def _check(problems: List[str], condition: bool, key: str, message: str):
    if not condition:
        problems.append(f"{key}: {message}")


def check(cfg: SPLADEConfiguration, downloads: bool = True):
    """Raises a :class:`ConfigurationError` listing every bad value

    :param downloads: whether the run will download what it needs (not in a
        dry run): the base model must then be reachable
    """
    from splade.models import ARCHITECTURES
    from splade.training import TRAINING_DATA

    check_command_line()
    problems: List[str] = []
    if downloads and (problem := hf_model_problem(cfg.model.base_hf_id)):
        problems.append(f"model.base_hf_id: {problem}")
    model, opt = cfg.model, cfg.learner.optimization
    _check(problems, model.lambda_q >= 0, "model.lambda_q", "must be >= 0")
    _check(problems, model.lambda_d >= 0, "model.lambda_d", "must be >= 0")
    _check(
        problems,
        model.lambda_warmup_steps >= 0,
        "model.lambda_warmup_steps",
        "must be >= 0",
    )
    _check(
        problems,
        model.architecture in ARCHITECTURES,
        "model.architecture",
        f"{model.architecture!r} is not one of {sorted(ARCHITECTURES)}",
    )
    for key in ("query_maxlen", "document_maxlen"):
        _check(problems, getattr(model, key) > 0, f"model.{key}", "must be > 0")
    for key in ("batch_size", "max_epochs", "steps_per_epoch"):
        _check(
            problems,
            getattr(opt, key) > 0,
            f"learner.optimization.{key}",
            "must be > 0",
        )
    _check(problems, opt.lr > 0, "learner.optimization.lr", "must be > 0")
    _check(
        problems,
        opt.num_warmup_steps >= 0,
        "learner.optimization.num_warmup_steps",
        "must be >= 0",
    )
    _check(
        problems,
        cfg.learner.loss in TRAINING_DATA,
        "learner.loss",
        f"{cfg.learner.loss!r} is not one of {sorted(TRAINING_DATA)}",
    )
    _check(
        problems,
        cfg.learner.validation_interval > 0,
        "learner.validation_interval",
        "must be > 0",
    )
    _check(
        problems,
        cfg.learner.early_stop >= 0
        and cfg.learner.early_stop % max(cfg.learner.validation_interval, 1) == 0,
        "learner.early_stop",
        "must be >= 0 and a multiple of learner.validation_interval",
    )
    _check(
        problems, cfg.learner.num_workers >= 0, "learner.num_workers", "must be >= 0"
    )
    _check(problems, cfg.bm25.k1 >= 0, "bm25.k1", "must be >= 0")
    _check(problems, 0 <= cfg.bm25.b <= 1, "bm25.b", "must be in [0, 1]")
    _check(
        problems, cfg.bm25.validation_topk > 0, "bm25.validation_topk", "must be > 0"
    )
    _check(
        problems, cfg.indexation.batch_size > 0, "indexation.batch_size", "must be > 0"
    )
    _check(
        problems, cfg.indexation.max_docs >= 0, "indexation.max_docs", "must be >= 0"
    )
    _check(problems, cfg.retrieval.topk > 0, "retrieval.topk", "must be > 0")
    _check(
        problems, cfg.retrieval.batch_size > 0, "retrieval.batch_size", "must be > 0"
    )
    _check(
        problems, len(cfg.data.tests) > 0, "data.tests", "at least one test collection"
    )
    _check(
        problems, cfg.data.validation_size >= 0, "data.validation_size", "must be >= 0"
    )
    for key, size in cfg.data.test_sizes.items():
        _check(
            problems,
            key in cfg.data.tests,
            f"data.test_sizes.{key}",
            f"{key} is not a test collection (data.tests: {sorted(cfg.data.tests)})",
        )
        _check(problems, size > 0, f"data.test_sizes.{key}", "must be > 0")
    datasets = {
        "data.documents": cfg.data.documents,
        "data.train": cfg.data.train,
        "data.train_queries": cfg.data.train_queries,
        "data.validation": cfg.data.validation,
        "data.validation_exclude": cfg.data.validation_exclude,
        **{f"data.tests.{key}": value for key, value in cfg.data.tests.items()},
    }
    _check(
        problems,
        cfg.mode in MODES,
        "mode",
        f"{cfg.mode!r} is not one of {sorted(MODES)}",
    )
    _check(problems, cfg.bm25.negatives_topk > 0, "bm25.negatives_topk", "must be > 0")
    if cfg.mode == "zero-shot":
        # Training data are not used
        for key in ("data.train", "data.train_queries", "data.validation"):
            datasets.pop(key)
        datasets.pop("data.validation_exclude")
    local_problems = check_local(cfg)
    problems += local_problems
    for key, dataset_id in datasets.items():
        if dataset_id is None:
            continue
        if dataset_id == "local" or dataset_id.startswith("local:"):
            split = dataset_id.partition(":")[2]
            if cfg.data.local is None:
                problems.append(f"{key}: {dataset_id} names data.local, not set")
            elif split and split not in cfg.data.local.splits:
                problems.append(
                    f"{key}: data.local.splits has no {split!r}"
                    f" (it has {sorted(cfg.data.local.splits)})"
                )
        elif problem := dataset_problem(dataset_id):
            problems.append(f"{key}: {problem}")
    for name in cfg.retrieval.measures:
        try:
            ir_measures.parse_measure(name)
        except Exception:
            problems.append(
                f"retrieval.measures: {name!r} is not an ir_measures measure"
            )

    if problems:
        raise ConfigurationError(*problems)


#: Values of the ``mode`` key
MODES = {"train", "zero-shot"}


def check_local(cfg: SPLADEConfiguration) -> List[str]:
    """Problems of the local collection's files (read and checked here, so
    that a bad line stops the run before any task starts)"""
    from splade.data import inspect_local, local_paths
    from splade.local import CollectionError

    local = cfg.data.local
    if local is None:
        return []
    documents, splits = local_paths(local)
    problems = []
    files = {"data.local.documents": documents}
    for name, paths in splits.items():
        for kind, path in paths.items():
            files[f"data.local.splits.{name}.{kind}"] = path
    for key, path in files.items():
        if path is not None and not path.is_file():
            problems.append(f"{key}: no file {path}")
    if problems:
        return problems
    try:
        inspect_local(local)
    except CollectionError as e:
        key = next(k for k, p in files.items() if p == e.path)
        return [f"{key}: {e}"]
    return []


def unknown_keys(data: Dict[str, Any], cls=SPLADEConfiguration, prefix="") -> List[str]:
    """Keys of a configuration dictionary that are not configuration fields

    experimaestro ignores them silently: a typo (``lamda_d``) would leave
    the default value in place without a word.
    """
    fields = {f.name: f for f in attr.fields(cls)}
    unknown = []
    for key, value in data.items():
        if key not in fields:
            unknown.append(f"{prefix}{key}")
            continue
        if not isinstance(value, dict):
            continue
        field_type = fields[key].type
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
    """A YAML file and the files it inherits from (parent / imports)"""
    if not yaml_file.exists() and yaml_file.suffix != ".yaml":
        yaml_file = yaml_file.with_suffix(".yaml")
    data = yaml.safe_load(yaml_file.read_text()) or {}
    parents = data.get("imports") or ([data["parent"]] if data.get("parent") else [])
    chain = [yaml_file]
    for parent in parents:
        chain = yaml_chain(yaml_file.parent / parent) + chain
    return chain


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


def command_line() -> Optional[Dict[str, Any]]:
    """The merged configuration, YAML file and overrides of the running
    ``experimaestro run-experiment`` command (None when run otherwise)"""
    frame = inspect.currentframe()
    while frame is not None:
        if (
            frame.f_code.co_name == "experiments_cli"
            and "configuration" in frame.f_locals
        ):
            local = frame.f_locals
            return {
                "configuration": local["configuration"],
                "yaml_file": Path(local["yaml_file"]),
                "overrides": list(local.get("extra_conf") or []),
            }
        frame = frame.f_back
    return None


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


def hf_model_problem(base_hf_id: str) -> Optional[str]:
    """Why ``base_hf_id`` cannot be loaded (None if it can)"""
    if Path(base_hf_id).expanduser().is_dir() or base_hf_id.startswith("splade."):
        if (
            base_hf_id.startswith("splade.")
            or (Path(base_hf_id).expanduser() / "config.json").is_file()
        ):
            return None
        return (
            f"{base_hf_id} is a folder without config.json (not a Hugging Face model)"
        )
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(base_hf_id, "config.json")
        return None
    except Exception as e:
        return (
            f"cannot load {base_hf_id!r}: it is not a local folder, and the Hugging"
            f" Face hub cannot give it ({type(e).__name__}; offline?). Give a local"
            " folder holding a Hugging Face masked language model, e.g."
            " -c model.base_hf_id=../shared/models/splade-bert-tiny"
        )


def dataset_problem(dataset_id: str) -> Optional[str]:
    """Why ``dataset_id`` is not a datamaestro dataset (None if it is)"""
    from datamaestro.context import Context

    try:
        Context.instance().dataset(dataset_id)
        return None
    except Exception:
        return (
            f"no datamaestro dataset {dataset_id!r} (`datamaestro search <words>`"
            " lists the datasets)"
        )
