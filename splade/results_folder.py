"""What an experiment leaves in its results folder besides ``results.csv``

experimaestro gives each run of an experiment a results folder
(``<workspace>/experiments/<id>/<run id>/results``, ``current`` being the
latest run), where xpmir writes ``results.csv`` (:mod:`splade.results`). The
experiment adds its resolved configuration (``configuration.yaml``, this
module) and its trade-off plot (``trade-off.png``, ``.svg``:
:mod:`splade.plots`), so that ``python -m splade.compare`` can tell runs
apart and put them side by side.
"""

import logging
from enum import Enum
from pathlib import Path
from typing import Optional

import attrs
import yaml

__all__ = ["CONFIGURATION", "RESULTS", "save_configuration"]

logger = logging.getLogger(__name__)

#: The results table (written by xpmir)
RESULTS = "results.csv"

#: The configuration of the run
CONFIGURATION = "configuration.yaml"


def _plain(instance, attribute, value):
    """A value as YAML writes it (called before attrs recurses into it)"""
    if attrs.has(type(value)):
        return value
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


def save_configuration(cfg, folder: Path) -> Optional[Path]:
    """Writes the resolved configuration of an experiment (YAML files and
    ``-c`` values merged, defaults included) in its results folder; a
    problem is logged, never raised (the experiment does not need the file)"""
    path = Path(folder) / CONFIGURATION
    try:
        values = attrs.asdict(cfg, value_serializer=_plain)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
    except Exception:
        logger.warning("Could not write %s", path, exc_info=True)
        return None
    return path
