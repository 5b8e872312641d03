"""Registers the experimaestro workspace of the SPLADE experiments

``python -m splade.workspace`` adds a workspace to experimaestro's settings
(``~/.config/experimaestro/settings.yaml``) whose trigger matches the ids of
the SPLADE experiments (``splade-*``), so that ``experimaestro
run-experiment splade/debug.yaml`` needs no ``--workdir``. Existing settings
are kept; nothing is changed if a workspace named ``splade`` exists.
"""

import argparse
import os
import shutil
from pathlib import Path

import yaml

WORKSPACE_ID = "splade"
TRIGGERS = ["splade-*", "splade"]


def settings_path() -> Path:
    return Path("~/.config/experimaestro/settings.yaml").expanduser()


def register(path: Path, settings: Path) -> str:
    """Adds the workspace to the settings file; returns what was done"""
    if settings.is_file():
        content = yaml.safe_load(settings.read_text()) or {}
    else:
        # New settings: no pause at start-up when CodeCarbon is not installed
        content = {"carbon": {"warn_if_unavailable": False}}
    workspaces = content.setdefault("workspaces", []) or []
    content["workspaces"] = workspaces
    for workspace in workspaces:
        if workspace.get("id") == WORKSPACE_ID:
            path = workspace.get("path")
            return f"workspace '{WORKSPACE_ID}' already in {settings} ({path})"

    workspaces.append({"id": WORKSPACE_ID, "path": str(path), "triggers": TRIGGERS})
    settings.parent.mkdir(parents=True, exist_ok=True)
    if settings.is_file():
        shutil.copyfile(settings, settings.with_suffix(".yaml.bak"))
    tmp = settings.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(content, sort_keys=False))
    os.replace(tmp, settings)
    return f"workspace '{WORKSPACE_ID}' ({path}) added to {settings}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--path",
        type=Path,
        default=Path("~/experiments/splade"),
        help="Folder of the workspace (default: ~/experiments/splade)",
    )
    args = parser.parse_args()
    print(register(args.path.expanduser().absolute(), settings_path()))  # noqa: T201


if __name__ == "__main__":
    main()
