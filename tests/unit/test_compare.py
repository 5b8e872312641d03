"""``python -m splade.compare``: the results of several experiments of a
workspace as one table (Markdown and CSV) and one plot, each row with its
experiment, recipe, date and configuration differences"""

import json
import os
import re

import pandas as pd
import pytest
import yaml
from conftest import ROOT, load

from splade.compare import differences, find_results, flatten, gather, main
from splade.compare import load as load_run
from splade.results_folder import CONFIGURATION, save_configuration


def measures(model, dataset="debug", **tags):
    row = {"dataset": dataset, "model": model, **tags, "RR@10": 0.5, "nDCG@10": 0.4}
    if model != "bm25":
        row.update(flops=200.0, latency_ms=0.5, latency_query_ms=2.5, index_mb=8.0)
    return row


def make_run(workspace, experiment, run, cfg, rows, started):
    """A finished run as experimaestro and the experiment leave it"""
    folder = workspace / "experiments" / experiment / run
    (folder / "results").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "results" / "results.csv", index=False)
    if cfg is not None:
        save_configuration(cfg, folder / "results")
    (folder / "status.json").write_text(json.dumps({"started_at": started}))
    current = folder.parent / "current"
    if current.is_symlink():
        current.unlink()
    os.symlink(run, current)
    return folder


@pytest.fixture
def workspace(tmp_path):
    """splade-debug (run twice), splade-debug-sweep (3 weights) and an
    experiment of a version that did not save its configuration"""
    ws = tmp_path / "workspace"
    debug = load(ROOT / "splade" / "debug.yaml")
    old = load(ROOT / "splade" / "debug.yaml", "learner.optimization.lr=0.01")
    make_run(
        ws,
        "splade-debug",
        "20261201_100000",
        old,
        [measures("bm25"), measures("splade")],
        "2026-12-01T10:00:00.1",
    )
    make_run(
        ws,
        "splade-debug",
        "20261202_100000",
        debug,
        [measures("bm25"), measures("splade")],
        "2026-12-02T10:00:00.1",
    )
    sweep = load(ROOT / "splade" / "debug_sweep.yaml")
    make_run(
        ws,
        "splade-debug-sweep",
        "20261203_100000",
        sweep,
        [measures("bm25")]
        + [measures("splade", **{"model.lambda_d": w}) for w in (0.01, 0.1, 1.0)],
        "2026-12-03T10:00:00.1",
    )
    make_run(
        ws,
        "splade-old",
        "20261101_100000",
        None,
        [measures("bm25"), measures("splade")],
        "2026-11-01T09:30:00",
    )
    return ws  # fmt: skip


def test_an_experiment_is_found_by_id_run_or_folder(workspace):
    latest = workspace / "experiments/splade-debug/current/results"
    assert find_results("splade-debug", workspace).resolve() == latest.resolve()
    first = find_results("splade-debug/20261201_100000", workspace)
    assert first == workspace / "experiments/splade-debug/20261201_100000/results"
    for folder in (first, first.parent, first.parent.parent):
        assert find_results(str(folder)).parent.parent.name == "splade-debug"


def test_an_unknown_experiment_is_reported_with_those_that_exist(workspace):
    with pytest.raises(SystemExit, match="splade-debug, splade-debug-sweep"):
        find_results("splade-nothing", workspace)
    with pytest.raises(SystemExit, match="runs of splade-debug: 20261201_100000"):
        find_results("splade-debug/20991231_000000", workspace)


def test_the_differences_are_the_keys_that_differ(workspace):
    runs = [
        load_run(find_results(name, workspace))
        for name in (
            "splade-debug/20261201_100000",
            "splade-debug",
            "splade-debug-sweep",
        )
    ]
    # the sweep's own key is a column of its rows, not a difference
    assert differences(runs) == [
        "learner.optimization.lr=0.01",
        "learner.optimization.lr=0.002",
        "learner.optimization.lr=0.002",
    ]
    assert runs[2].swept == ["model.lambda_d"]
    assert runs[2].recipe == "Debug recipe: sweep over the FLOPS weight of documents"
    assert runs[0].date == "2026-12-01 10:00"


def test_one_table_and_one_plot(workspace, tmp_path, capsys):
    output = tmp_path / "out"
    main(["splade-debug", "splade-debug-sweep", "splade-old",
          "--workdir", str(workspace), "--output", str(output)])  # fmt: skip
    table = pd.read_csv(output / "comparison.csv")
    assert len(table) == 2 + 4 + 2
    assert list(table.columns[:6]) == [
        "experiment", "recipe", "date", "differences", "dataset", "model",
    ]  # fmt: skip
    by_experiment = table.groupby("experiment").size().to_dict()
    assert by_experiment == {
        "splade-debug/20261202_100000": 2,
        "splade-debug-sweep/20261203_100000": 4,
        "splade-old/20261101_100000": 2,
    }
    old = table[table["experiment"].str.startswith("splade-old")]
    assert set(old["differences"]) == {f"(no {CONFIGURATION})"}
    assert set(old["date"]) == {"2026-11-01 09:30"}
    sweep = table[table["experiment"].str.startswith("splade-debug-sweep")]
    assert sorted(sweep["model.lambda_d"].dropna()) == [0.01, 0.1, 1.0]
    # the sweep's key is a column: the other runs' SPLADE rows get their
    # configuration's value (BM25 rows and unknown configurations: none)
    assert table.columns[6] == "model.lambda_d"
    debug = table[table["experiment"].str.startswith("splade-debug/")]
    lambda_d = load(ROOT / "splade" / "debug.yaml").model.lambda_d
    assert debug.set_index("model")["model.lambda_d"].to_dict() == pytest.approx(
        {"bm25": float("nan"), "splade": lambda_d}, nan_ok=True
    )
    assert old["model.lambda_d"].isna().all()

    markdown = (output / "comparison.md").read_text()
    assert markdown == capsys.readouterr().out.split("\nWritten:")[0]
    lines = markdown.splitlines()
    assert len(lines) == 2 + len(table)
    assert lines[0].strip("| ").split(" | ") == list(table.columns)
    assert all(line.count(" | ") == len(table.columns) - 1 for line in lines[2:])

    svg = (output / "trade-off.svg").read_text()
    splade_rows = int((table["model"] == "splade").sum())
    assert len(re.findall(r'id="point-flops-', svg)) == splade_rows
    # the three experiments' BM25 rows are the same line
    assert len(re.findall(r'id="bm25-flops-', svg)) == 1
    assert (output / "trade-off.png").stat().st_size > 5_000


def test_the_configuration_is_saved_whole(tmp_path):
    cfg = load(ROOT / "splade" / "debug.yaml", "retrieval.engine.name=seismic")
    saved = yaml.safe_load(save_configuration(cfg, tmp_path).read_text())
    flat = flatten(saved)
    assert flat["retrieval.engine.name"] == "seismic"
    assert flat["model.base_hf_id"] == "splade.debug.bert"
    assert (
        flat["retrieval.engine.seismic.heap_factor"]
        == cfg.retrieval.engine.seismic.heap_factor
    )
    assert flat["id"] == "splade-debug"


def test_a_configuration_that_cannot_be_saved_is_logged(tmp_path, caplog):
    (tmp_path / "results").write_text("")  # a file where the folder should be
    cfg = load(ROOT / "splade" / "debug.yaml")
    assert save_configuration(cfg, tmp_path / "results") is None
    assert "Could not write" in caplog.text


def test_points_are_labelled_by_what_differs(workspace):
    """Two runs of one recipe: by their differences; runs that differ only
    by their sweep: by their id and tags"""
    older, newer = (
        load_run(find_results(name, workspace))
        for name in ("splade-debug/20261201_100000", "splade-debug")
    )
    table = gather([older, newer])
    assert table.loc[table["model"] == "splade", "label"].tolist() == [
        "learner.optimization.lr=0.01",
        "learner.optimization.lr=0.002",
    ]
    sweep = load_run(find_results("splade-debug-sweep", workspace))
    labels = gather([newer, sweep]).query("model == 'splade'")["label"].tolist()
    assert labels == [
        "splade-debug: model.lambda_d=0.1",
        "splade-debug-sweep: model.lambda_d=0.01",
        "splade-debug-sweep: model.lambda_d=0.1",
        "splade-debug-sweep: model.lambda_d=1.0",
    ]
