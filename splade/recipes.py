"""The recipes of this folder (``splade/*.yaml``) as configurations, for a
recipe whose first stage is another recipe's model
(``mining.first_stage: splade_pp_sd.yaml``)"""

from pathlib import Path
from typing import List, Optional

from splade.configuration import SPLADEConfiguration

#: The folder of the recipes
FOLDER = Path(__file__).parent


def is_recipe(value: Optional[str]) -> bool:
    """Whether a ``mining.first_stage`` value names a recipe"""
    return bool(value) and str(value).endswith(".yaml")


def recipe_path(name: str) -> Path:
    """The file of a recipe (a name in this folder, or a path)"""
    path = Path(name)
    return path if path.is_absolute() else FOLDER / path


def load_recipe(name: str) -> SPLADEConfiguration:
    """A recipe's configuration, as ``experimaestro run-experiment`` reads
    it (its parents merged in), without any ``-c`` option"""
    from experimaestro.experiments.cli import ConfigurationLoader
    from experimaestro.utils.config import deep_merge, validate_attrs

    loader = ConfigurationLoader()
    loader.load(recipe_path(name))
    merged = {}
    for data in loader.yamls:
        deep_merge(merged, data)
    return validate_attrs(SPLADEConfiguration, merged)


def problems(cfg: SPLADEConfiguration, seen: List[str] = ()) -> List[str]:
    """Problems of a first stage given as a recipe: it exists, trains, and
    reads the same data (its chain too)"""
    mining = cfg.mining
    if mining is None or not is_recipe(mining.first_stage):
        return []
    name = mining.first_stage
    key = "mining.first_stage"
    if name in seen:
        return [f"{key}: {name} is its own first stage (a circle)"]
    if not recipe_path(name).is_file():
        return [f"{key}: no recipe {name} in {FOLDER}"]
    try:
        first = load_recipe(name)
    except Exception as e:  # a bad recipe: say which
        return [f"{key}: {name} cannot be read ({type(e).__name__}: {e})"]
    found = []
    if first.mode != cfg.mode or str(first.mode) != "train":
        found.append(f"{key}: {name} does not train a model (mode: {first.mode})")
    if first.data != cfg.data:
        found.append(
            f"{key}: {name} reads other data (its data section differs from this"
            " recipe's): the first stage must learn the same collection"
        )
    return found + problems(first, [*seen, name])
