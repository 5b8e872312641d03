"""Checks of the configuration, before any task is submitted

Every error names the configuration key (as written in YAML files or after
``-c``) so that a mistake is found in seconds, not after hours of training.
"""

from typing import List

import ir_measures

from splade.configuration import SPLADEConfiguration


class ConfigurationError(ValueError):
    """Bad configuration values, each given as ``"key: what is wrong"``"""

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = problems


def _check(problems: List[str], condition: bool, key: str, message: str):
    if not condition:
        problems.append(f"{key}: {message}")


def check(cfg: SPLADEConfiguration):
    """Raises a :class:`ConfigurationError` listing every bad value"""
    from splade.models import ARCHITECTURES
    from splade.training import TRAINING_DATA

    problems: List[str] = []
    model, opt = cfg.model, cfg.learner.optimization
    _check(problems, model.lambda_q >= 0, "model.lambda_q", "must be >= 0")
    _check(problems, model.lambda_d >= 0, "model.lambda_d", "must be >= 0")
    _check(
        problems, model.lambda_warmup_steps >= 0, "model.lambda_warmup_steps", "must be >= 0"
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
    _check(problems, cfg.learner.num_workers >= 0, "learner.num_workers", "must be >= 0")
    _check(problems, cfg.bm25.k1 >= 0, "bm25.k1", "must be >= 0")
    _check(problems, 0 <= cfg.bm25.b <= 1, "bm25.b", "must be in [0, 1]")
    _check(problems, cfg.bm25.validation_topk > 0, "bm25.validation_topk", "must be > 0")
    _check(problems, cfg.indexation.batch_size > 0, "indexation.batch_size", "must be > 0")
    _check(problems, cfg.indexation.max_docs >= 0, "indexation.max_docs", "must be >= 0")
    _check(problems, cfg.retrieval.topk > 0, "retrieval.topk", "must be > 0")
    _check(problems, cfg.retrieval.batch_size > 0, "retrieval.batch_size", "must be > 0")
    _check(problems, len(cfg.data.tests) > 0, "data.tests", "at least one test collection")
    _check(problems, cfg.data.validation_size >= 0, "data.validation_size", "must be >= 0")
    for key, size in cfg.data.test_sizes.items():
        _check(
            problems,
            key in cfg.data.tests,
            f"data.test_sizes.{key}",
            f"{key} is not a test collection (data.tests: {sorted(cfg.data.tests)})",
        )
        _check(problems, size > 0, f"data.test_sizes.{key}", "must be > 0")
    for name in cfg.retrieval.measures:
        try:
            ir_measures.parse_measure(name)
        except Exception:
            problems.append(f"retrieval.measures: {name!r} is not an ir_measures measure")

    if problems:
        raise ConfigurationError(*problems)
