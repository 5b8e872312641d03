"""The trade-off plot of a results table (splade.plots): files written, one
point per SPLADE model and test collection on each panel, BM25 as one
reference line per test collection, and no failure of the experiment for a
plotting problem"""

import logging
import re

import pandas as pd
import pytest

from splade.plots import save_trade_off, tag_columns, trade_off


def results_table(datasets=("debug",), lambdas=(0.01, 0.1, 1.0)) -> pd.DataFrame:
    """A results table as the experiment writes it (results.csv): BM25 and a
    sweep over model.lambda_d, on each test collection"""
    rows = []
    for number, dataset in enumerate(datasets):
        rows.append(
            {
                "dataset": dataset,
                "model": "bm25",
                "model.lambda_d": None,
                "RR@10": 0.43 + number / 10,
                "nDCG@10": 0.27 + number / 10,
            }
        )
        for weight in lambdas:
            rows.append(
                {
                    "dataset": dataset,
                    "model": "splade",
                    "model.lambda_d": weight,
                    "RR@10": 0.7 - weight / 5,
                    "nDCG@10": 0.6 - weight / 5,
                    "nonzeros_d": 600 * (1 - weight / 2),
                    "flops": 400 * (1.1 - weight),
                    "latency_ms": 0.5,
                    "latency_query_ms": 2.0 + weight,
                    "index_mb": 8.0,
                    "run": f"/runs/{dataset}/{weight}/run.txt",
                }
            )
    return pd.DataFrame(rows)  # fmt: skip


def svg_ids(path, prefix):
    return re.findall(rf'id="({prefix}[^"]*)"', path.read_text())


@pytest.mark.parametrize("datasets", [("debug",), ("scifact", "nfcorpus")])
def test_one_point_per_model_and_collection(tmp_path, datasets):
    table = results_table(datasets)
    plotted = trade_off(table, tmp_path / "trade-off", "sweep")
    splade_rows = int((table["model"] == "splade").sum())
    assert plotted.measure == "nDCG@10"
    assert plotted.points == {"flops": splade_rows, "latency_query_ms": splade_rows}
    assert plotted.references == len(datasets)
    png, svg = tmp_path / "trade-off.png", tmp_path / "trade-off.svg"
    assert plotted.files == [png, svg]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < png.stat().st_size < 300_000
    # the drawn file has the points and reference lines, not just the count
    assert len(svg_ids(svg, "point-flops-")) == splade_rows
    assert len(svg_ids(svg, "point-latency_query_ms-")) == splade_rows
    assert len(svg_ids(svg, "bm25-flops-")) == len(datasets)
    # each point is labelled with its sweep value
    for weight in (0.01, 0.1, 1.0):
        assert f"model.lambda_d={weight}" in svg.read_text()


def test_rr_when_there_is_no_ndcg(tmp_path):
    table = results_table().drop(columns=["nDCG@10"])
    assert trade_off(table, tmp_path / "plot").measure == "RR@10"


def test_values_that_are_not_numbers_are_left_out(tmp_path):
    table = results_table()
    table["flops"] = table["flops"].astype(object)
    table.loc[1, "flops"] = "n/a"
    assert trade_off(table, tmp_path / "plot").points["flops"] == 2


def test_a_panel_per_cost_present(tmp_path):
    """Without latencies (no efficiency measures of the encoder), FLOPS
    alone; rows without a cost are left out of that panel"""
    table = results_table().drop(columns=["latency_query_ms"])
    table.loc[table["model.lambda_d"] == 1.0, "flops"] = None
    plotted = trade_off(table, tmp_path / "plot")
    assert plotted.points == {"flops": 2}


def test_tags_are_the_columns_that_are_neither_measures_nor_costs():
    assert tag_columns(results_table().columns) == ["model.lambda_d"]


def test_nothing_to_plot_is_said_not_raised(tmp_path, caplog):
    table = results_table().drop(columns=["flops", "latency_query_ms"])
    with caplog.at_level(logging.INFO, logger="splade.plots"):
        assert save_trade_off(table, tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    assert "No trade-off plot" in caplog.text


def test_a_plotting_problem_does_not_fail_the_experiment(tmp_path, caplog):
    """A results folder that cannot be written (here: a file)"""
    folder = tmp_path / "results"
    folder.write_text("")
    with caplog.at_level(logging.WARNING, logger="splade.plots"):
        assert save_trade_off(results_table(), folder) == []
    assert "could not be drawn" in caplog.text
    assert "Traceback" in caplog.text  # what went wrong, for a bug report


def test_saved_beside_the_results(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="splade.plots"):
        files = save_trade_off(results_table(), tmp_path, "debug sweep")
    assert sorted(p.name for p in files) == ["trade-off.png", "trade-off.svg"]
    assert all(p.parent == tmp_path for p in files)
    assert "Trade-off plot (nDCG@10 against flops, latency_query_ms" in caplog.text
