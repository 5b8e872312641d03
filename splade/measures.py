"""The evaluation measures (``retrieval.measures``): ir_measures names,
checked and turned into xpmir measures"""

from typing import List

import ir_measures
from xpmir.measures import Measure

from splade.configuration import ConfigurationError, Retrieval
from splade.workarounds.xpmir import RelevanceMeasure

__all__ = ["measure", "measure_problem", "problems"]


def measure_problem(name: str) -> str | None:
    """Why ``name`` is not a measure this package computes (None if it is):
    an ir_measures measure, written ``Name`` or ``Name@k``"""
    try:
        parsed = ir_measures.parse_measure(name)
    except Exception:
        return f"{name!r} is not an ir_measures measure"
    identifier, _, cutoff = name.partition("@")
    if parsed.NAME != identifier or (cutoff and not cutoff.isdigit()):
        return f"{name!r}: only Name or Name@k measures are supported"
    return None


def problems(retrieval: Retrieval) -> List[str]:
    """Problems of ``retrieval.measures``"""
    return [
        f"retrieval.measures: {problem}"
        for name in retrieval.measures
        if (problem := measure_problem(name))
    ]


def measure(name: str, relevance: int = 1) -> Measure:
    """The xpmir measure of an ir_measures name (e.g. ``nDCG@10``), whose
    binary relevance starts at ``relevance``"""
    if problem := measure_problem(name):
        raise ConfigurationError(f"retrieval.measures: {problem}")
    identifier, _, cutoff = name.partition("@")
    cutoff = int(cutoff) if cutoff else None
    if relevance == 1:
        return Measure.C(identifier=identifier, cutoff=cutoff)
    return RelevanceMeasure.C(identifier=identifier, cutoff=cutoff, rel=relevance)
