"""Several experiments' results as one table and one plot

``python -m splade.compare <experiment id or results folder>...`` gathers
the results tables (``results.csv``) of experiments of the workspace into
one table, each row with its experiment, recipe (title), date and the
configuration keys where the experiments differ (read from the
``configuration.yaml`` each run writes beside its results), as Markdown and
CSV, with the trade-off plot of all their models (:mod:`splade.plots`).

An experiment is named by its id (``splade-debug``: its latest run, in the
workspace that experimaestro picks for this id, or ``--workdir``), by
``<id>/<run id>`` (one of its runs, e.g. ``splade-debug/20261203_083224``),
or by a folder: a results folder, a run's folder or an experiment's.
"""

import argparse
import datetime
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd
import yaml

from splade.plots import point_label, tag_columns, trade_off
from splade.results_folder import CONFIGURATION, RESULTS

__all__ = [
    "Experiment",
    "differences",
    "find_results",
    "gather",
    "load",
    "markdown_table",
    "write",
]

logger = logging.getLogger(__name__)

#: Keys of the configuration that do not make results differ (names,
#: descriptions, how the YAML files were found)
IGNORED = {
    "id",
    "title",
    "subtitle",
    "paper",
    "description",
    "file",
    "module",
    "pythonpath",
    "parent",
    "imports",
    "pre_experiment",
    "add_timestamp",
    "dirty_git",
    "grid_search",
}

#: Columns that the comparison puts before those of the results tables
FIRST = ["experiment", "recipe", "date", "differences"]


@dataclass
class Experiment:
    """One run of an experiment, read from its results folder"""

    name: str
    """``<experiment id>/<run id>``"""
    recipe: str
    """The recipe's title (or its id)"""
    date: str
    """When the run started (``YYYY-MM-DD HH:MM``)"""
    results: Path
    """Its results folder"""
    table: pd.DataFrame
    """Its ``results.csv``"""
    configuration: Optional[Dict[str, object]]
    """Its configuration, flattened to dotted keys (None when the run did
    not write it)"""
    swept: List[str]
    """Keys of its sweep (``grid_search``): they vary inside the experiment,
    and are columns of its table"""


def find_results(name: str, workdir: Optional[Path] = None) -> Path:
    """The results folder of an experiment named by a folder, an id or
    ``<id>/<run id>``"""
    path = Path(name).expanduser()
    if path.is_dir():
        for candidate in (path, path / "results", path / "current" / "results"):
            if (candidate / RESULTS).is_file():
                return candidate
        raise SystemExit(
            f"{name}: no results.csv in this folder, its results/ or current/results/"
        )
    experiment, _, run = name.partition("/")
    root = _workspace(experiment, workdir) / "experiments"
    folder = root / experiment / (run or "current") / "results"
    if (folder / RESULTS).is_file():
        return folder
    known = (
        sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    )
    where = f"experiments in {root}: {', '.join(known) or 'none'}"
    if (root / experiment).is_dir():
        runs = sorted(
            p.name
            for p in (root / experiment).iterdir()
            if p.is_dir() and p.name != "current"
        )
        where = f"runs of {experiment}: {', '.join(runs) or 'none'}"
    raise SystemExit(
        f"{name}: no results in {folder} (unfinished or failed run?; {where})"
    )


def _workspace(experiment: str, workdir: Optional[Path]) -> Path:
    """The workspace folder that experimaestro uses for an experiment id"""
    if workdir is not None:
        return Path(workdir).expanduser()
    from experimaestro.settings import find_workspace

    try:
        return Path(find_workspace(experiment_id=experiment).path).expanduser()
    except Exception as error:
        raise SystemExit(
            f"{experiment}: no experimaestro workspace found for this id ({error});"
            " give --workdir, or the results folder"
        ) from error


def flatten(values, prefix: str = "") -> Dict[str, object]:
    """A nested configuration as dotted keys (lists kept whole)"""
    flat = {}
    for key, value in (values or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _started(run: Path, results: Path) -> str:
    """When a run started: experimaestro's ``status.json``, else the date of
    its results table"""
    try:
        started = json.loads((run / "status.json").read_text())["started_at"]
        moment = datetime.datetime.fromisoformat(started)
    except (OSError, KeyError, ValueError, TypeError):
        moment = datetime.datetime.fromtimestamp((results / RESULTS).stat().st_mtime)
    return moment.strftime("%Y-%m-%d %H:%M")


def load(results: Path) -> Experiment:
    """Reads an experiment's results folder"""
    results = Path(results).resolve()
    run = results.parent
    configuration, swept, recipe = None, [], run.parent.name
    if (results / CONFIGURATION).is_file():
        values = yaml.safe_load((results / CONFIGURATION).read_text()) or {}
        swept = list((values.get("grid_search") or {}).keys())
        recipe = values.get("title") or values.get("id") or recipe
        configuration = {
            key: value
            for key, value in flatten(values).items()
            if key.split(".")[0] not in IGNORED
        }
    return Experiment(
        name=f"{run.parent.name}/{run.name}",
        recipe=recipe,
        date=_started(run, results),
        results=results,
        table=pd.read_csv(results / RESULTS),
        configuration=configuration,
        swept=swept,
    )


def _text(value) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def differences(experiments: List[Experiment]) -> List[str]:
    """For each experiment, the configuration keys whose values are not the
    same in all of them (``key=value, ...``; the keys of a sweep are left
    out: their values are columns of the rows)"""
    known = [e.configuration for e in experiments if e.configuration is not None]
    keys = sorted({k for c in known for k in c})
    varying = [
        key for key in keys if len({_text(c.get(key, "(unset)")) for c in known}) > 1
    ]
    found = []
    for experiment in experiments:
        if experiment.configuration is None:
            found.append(f"(no {CONFIGURATION})")
            continue
        found.append(
            ", ".join(
                f"{key}={_text(experiment.configuration.get(key, '(unset)'))}"
                for key in varying
                if key not in experiment.swept
            )
        )
    return found


def gather(experiments: List[Experiment]) -> pd.DataFrame:
    """One table of the experiments' results: their rows, each with its
    experiment, recipe, date and configuration differences, then the
    columns of the results tables (tags, measures, costs), and a ``label``
    for the plot

    A tag that is a configuration key (the key of a sweep, e.g.
    ``model.lambda_d``) is filled in, on the SPLADE rows of the experiments
    that did not sweep it, with their configuration's value: a sweep and
    single runs then read as one table.
    """
    tables = []
    for experiment, difference in zip(
        experiments, differences(experiments), strict=True
    ):
        table = experiment.table.copy()
        values = [experiment.name, experiment.recipe, experiment.date, difference]
        for position, (column, value) in enumerate(zip(FIRST, values, strict=True)):
            table.insert(position, column, value)
        tables.append(table)
    gathered = pd.concat(tables, ignore_index=True)

    tags = [c for c in tag_columns(gathered.columns) if c not in FIRST]
    for experiment in experiments:
        rows = gathered["experiment"] == experiment.name
        if "model" in gathered.columns:
            rows &= gathered["model"] != "bm25"
        for tag in tags:
            value = (experiment.configuration or {}).get(tag)
            if value is not None and not isinstance(value, (list, dict)):
                gathered[tag] = gathered[tag].astype(object)
                gathered.loc[rows & gathered[tag].isna(), tag] = value

    names = _short_names(experiments)
    own = [c for c in gathered.columns if c not in FIRST]
    gathered["label"] = [
        _label(names[row["experiment"]], point_label(row, own), len(experiments))
        for _, row in gathered.iterrows()
    ]
    first = FIRST + [c for c in ("dataset", "model") if c in gathered.columns]
    last = [c for c in ("run", "label") if c in gathered.columns]
    middle = [c for c in gathered.columns if c not in first + last]
    middle = [c for c in middle if c in tags] + [c for c in middle if c not in tags]
    return gathered[first + middle + last]


def _short_names(experiments: List[Experiment]) -> Dict[str, str]:
    """What tells each experiment apart on the plot: its configuration
    differences, or its id (with its run when ids repeat)"""
    ids = [e.name.split("/")[0] for e in experiments]
    names = {}
    for experiment, difference, name in zip(
        experiments, differences(experiments), ids, strict=True
    ):
        if difference and experiment.configuration is not None:
            names[experiment.name] = difference
        else:
            names[experiment.name] = name if ids.count(name) == 1 else experiment.name
    return names


def _label(name: str, point: str, count: int) -> str:
    if count == 1:
        return point
    return name if point == "splade" else f"{name}: {point}"


def markdown_table(table: pd.DataFrame) -> str:
    """A table in Markdown (numbers with at most 4 decimals; no ``run``,
    ``label`` columns)"""
    table = table.drop(columns=["run", "label"], errors="ignore")

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.4f}".rstrip("0").rstrip(".")
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(str(c) for c in table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write(table: pd.DataFrame, output: Path, title: str = "") -> List[Path]:
    """Writes the gathered table (``comparison.csv``, ``comparison.md``) and
    its trade-off plot (``trade-off.png``, ``.svg``) in a folder"""
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "comparison.csv", output / "comparison.md"]
    table.drop(columns=["label"], errors="ignore").to_csv(written[0], index=False)
    written[1].write_text(markdown_table(table))
    plotted = trade_off(table, output / "trade-off", title)
    if plotted is None:
        logger.warning("No trade-off plot: no nDCG@10 or RR@10, or no cost column")
    else:
        written += plotted.files
    return written


def main(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(
        prog="python -m splade.compare",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[2],
    )
    parser.add_argument(
        "experiments",
        nargs="+",
        metavar="EXPERIMENT",
        help="experiment id, <id>/<run id>, or results folder",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="the experimaestro workspace (default: the one whose triggers match"
        " each id, as experimaestro run-experiment picks it)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("comparison"),
        help="folder of the outputs (default: ./comparison)",
    )
    parser.add_argument("--title", default="", help="title of the plot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    experiments = [load(find_results(name, args.workdir)) for name in args.experiments]
    table = gather(experiments)
    written = write(table, args.output, args.title)
    sys.stdout.write(markdown_table(table))
    sys.stdout.write("\n" + "\n".join(f"Written: {path}" for path in written) + "\n")


if __name__ == "__main__":
    main()
