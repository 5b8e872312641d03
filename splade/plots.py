"""Effectiveness against cost: the trade-off plot of a results table

One point per SPLADE model and test collection, effectiveness (nDCG@10, or
RR@10 when the table has no nDCG@10) against FLOPS (left) and against the
latency of a query, encoding included (right); BM25's effectiveness on each
test collection is a dashed reference line (BM25 has no FLOPS). Written as
PNG and SVG beside ``results.csv`` at the end of each experiment
(:func:`save_trade_off`), and by ``python -m splade.compare`` for several.

matplotlib is imported when a plot is drawn, not with this module, and
through its object interface (``Figure``, no ``pyplot``, no GUI backend):
nothing global is changed and no display is needed.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

__all__ = [
    "COSTS",
    "EFFECTIVENESS",
    "TradeOff",
    "effectiveness_measure",
    "point_label",
    "tag_columns",
    "save_trade_off",
    "trade_off",
]

logger = logging.getLogger(__name__)

#: Effectiveness measures, by preference
EFFECTIVENESS = ("nDCG@10", "RR@10")

#: Cost columns of the results table, and their axis labels
COSTS = {
    "flops": "FLOPS (expected multiplications per query-document pair)",
    "latency_query_ms": "ms per query (encoding + retrieval, one thread)",
}

#: Columns of the results table that are not tags of a model
_NOT_TAGS = {
    "dataset",
    "model",
    "run",
    "label",
    "nonzeros_d",
    "latency_ms",
    "index_mb",
    *COSTS,
}

#: The file name of the plot written beside ``results.csv`` (.png, .svg)
NAME = "trade-off"


@dataclass
class TradeOff:
    """What was plotted"""

    measure: str
    """The effectiveness measure (y axis)"""
    points: Dict[str, int] = field(default_factory=dict)
    """Number of points on each panel, by cost column"""
    references: int = 0
    """Number of BM25 reference lines on each panel"""
    files: List[Path] = field(default_factory=list)
    """The files written"""


def effectiveness_measure(table: pd.DataFrame) -> Optional[str]:
    """The measure on the y axis: the first of :data:`EFFECTIVENESS` that
    the table has a value of"""
    for measure in EFFECTIVENESS:
        if measure in table.columns and table[measure].notna().any():
            return measure
    return None


def point_label(row: pd.Series, columns) -> str:
    """A point's label: the model's tags that are set (e.g. the values of a
    sweep), and its model name when it is not ``splade``"""
    parts = [
        f"{column}={row[column]}"
        for column in tag_columns(columns)
        if _is_set(row.get(column))
    ]
    if row.get("model") not in (None, "splade") and _is_set(row.get("model")):
        parts.insert(0, str(row["model"]))
    return ", ".join(parts) or str(row.get("model", ""))


def tag_columns(columns) -> List[str]:
    """The columns of a results table that are tags of the models (e.g. the
    keys of a sweep): neither a measure nor a cost"""
    import ir_measures

    tags = []
    for column in columns:
        if column in _NOT_TAGS:
            continue
        try:
            ir_measures.parse_measure(str(column))
        except (NameError, ValueError, SyntaxError):
            tags.append(column)
    return tags


def _is_set(value) -> bool:
    if value is None:
        return False
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True


def _points(table: pd.DataFrame, measure: str, cost: str) -> pd.DataFrame:
    """The rows to plot against a cost: SPLADE models with a value of both"""
    if cost not in table.columns:
        return table.iloc[0:0]
    rows = table if "model" not in table.columns else table[table["model"] != "bm25"]
    rows = rows[rows[measure].notna() & rows[cost].notna()]
    return rows[pd.to_numeric(rows[cost], errors="coerce") > 0]


def _references(table: pd.DataFrame, measure: str) -> List[Tuple[str, float]]:
    """BM25's effectiveness on each test collection (once per value)"""
    if "model" not in table.columns:
        return []
    rows = table[(table["model"] == "bm25") & table[measure].notna()]
    found = {}
    for dataset, value in zip(rows["dataset"], rows[measure], strict=True):
        found.setdefault((str(dataset), round(float(value), 6)), float(value))
    return [(dataset, value) for (dataset, _), value in found.items()]


def trade_off(
    table: pd.DataFrame, stem: Path, title: str = "", dpi: int = 100
) -> Optional[TradeOff]:
    """Draws the trade-off plot of a results table into ``stem.png`` and
    ``stem.svg``; None (nothing written) when the table has no
    effectiveness measure or no cost column

    :param table: a results table (``results.csv``), or several gathered
        (then a ``label`` column names each point)
    :param title: the figure's title
    """
    measure = effectiveness_measure(table)
    costs = [c for c in COSTS if c in table.columns and table[c].notna().any()]
    if measure is None or not costs:
        return None

    from matplotlib.figure import Figure  # (heavy) only when drawing

    plotted = TradeOff(measure)
    datasets = sorted({str(d) for d in table["dataset"].dropna()})
    colours = {d: f"C{i % 10}" for i, d in enumerate(datasets)}
    markers = "osD^vP*Xh<>p"
    labels = (
        table["label"].astype(str)
        if "label" in table.columns
        else table.apply(lambda row: point_label(row, table.columns), axis=1)
    )
    shapes = {
        label: markers[i % len(markers)] for i, label in enumerate(sorted(set(labels)))
    }
    references = _references(table, measure)

    figure = Figure(figsize=(6 * len(costs), 4.8), dpi=dpi, layout="constrained")
    axes = figure.subplots(1, len(costs), squeeze=False)[0]
    for ax, cost in zip(axes, costs, strict=True):
        rows = _points(table, measure, cost)
        rows = rows.iloc[pd.to_numeric(rows[cost]).argsort(kind="stable")]
        above = _labels_above(rows[cost].astype(float), rows[measure].astype(float))
        for number, (index, row) in enumerate(rows.iterrows()):
            x, y = float(row[cost]), float(row[measure])
            ax.plot(
                [x],
                [y],
                linestyle="none",
                marker=shapes[labels[index]],
                markersize=8,
                color=colours[str(row["dataset"])],
                gid=f"point-{cost}-{number}",
            )
            ax.annotate(
                labels[index],
                (x, y),
                textcoords="offset points",
                xytext=(6, 4 if above[number] else -12),
                fontsize=8,
            )
        for dataset, value in references:
            ax.axhline(
                value,
                linestyle="--",
                linewidth=1,
                color=colours.get(dataset, "grey"),
                gid=f"bm25-{cost}-{dataset}",
            )
            ax.annotate(
                f"BM25 ({dataset})" if len(datasets) > 1 else "BM25",
                (0, value),
                xycoords=("axes fraction", "data"),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
                color=colours.get(dataset, "grey"),
            )
        values = pd.to_numeric(rows[cost], errors="coerce")
        if len(values) > 1 and values.max() / values.min() > 20:
            ax.set_xscale("log")
        elif len(values):
            # from 0 (costs compare as ratios), with room for the labels
            ax.set_xlim(0, values.max() * 1.35)
        _margins(ax, rows[measure].tolist() + [v for _, v in references])
        ax.set_xlabel(COSTS[cost])
        ax.set_ylabel(measure)
        ax.grid(alpha=0.3)
        plotted.points[cost] = len(rows)
    plotted.references = len(references)

    if len(datasets) > 1:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=colours[d], marker="o", linestyle="none", label=d)
            for d in datasets
        ]
        figure.legend(handles=handles, loc="outside lower center", ncols=len(datasets))
    figure.suptitle(title or f"{measure} against cost")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        # no date in the SVG: the same table gives the same file
        figure.savefig(path, metadata={"Date": None} if suffix == ".svg" else None)
        plotted.files.append(path)
    return plotted


def _labels_above(x: pd.Series, y: pd.Series) -> List[bool]:
    """Whether each point's label goes above it: the higher of two
    neighbours (nearest in cost) gets its label above, the lower one below,
    so that their labels do not overlap"""
    xs, ys = x.tolist(), y.tolist()
    span = (max(xs) - min(xs)) or 1.0
    above = []
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        others = [j for j in range(len(xs)) if j != i]
        if not others:
            above.append(True)
            continue
        j = min(others, key=lambda j: (abs(xs[j] - xi) / span, abs(ys[j] - yi)))
        above.append(yi > ys[j] or (yi == ys[j] and i < j))
    return above


def _margins(ax, values: List[float]):
    """The y axis spans the points and the reference lines"""
    values = [v for v in values if not math.isnan(v)]
    if values:
        low, high = min(values), max(values)
        pad = max((high - low) * 0.15, 0.02)
        ax.set_ylim(low - pad, high + pad)


def save_trade_off(table: pd.DataFrame, folder: Path, title: str = "") -> List[Path]:
    """Writes the trade-off plot of an experiment's results table in its
    results folder (``trade-off.png``, ``trade-off.svg``); a problem is
    logged, never raised: the experiment's results stand without the plot"""
    start = time.perf_counter()
    try:
        plotted = trade_off(table, Path(folder) / NAME, title)
    except Exception:
        logger.warning(
            "The trade-off plot could not be drawn (the results table is not affected)",
            exc_info=True,
        )
        return []
    if plotted is None:
        logger.info(
            "No trade-off plot: the results have no %s or no cost column"
            " (retrieval.efficiency_queries: 0?)",
            " or ".join(EFFECTIVENESS),
        )
        return []
    logger.info(
        "Trade-off plot (%s against %s, %.1f s): %s",
        plotted.measure,
        ", ".join(plotted.points),
        time.perf_counter() - start,
        ", ".join(str(p) for p in plotted.files),
    )
    return plotted.files
