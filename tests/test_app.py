"""The dashboard, through Streamlit's AppTest, against real stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend import api
from tests.conftest import figure_of

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def open_app(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(store_root))
    return AppTest.from_file(MAIN, default_timeout=60).run()


def test_empty_store_says_how_to_create_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(tmp_path / "empty", monkeypatch)
    assert not at.exception
    assert "make demo" in at.info[0].value and "clusterscope train" in at.info[0].value


def test_runs_page_lists_runs_and_draws_curves(trained_store: tuple[api.RunStore, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = trained_store
    at = open_app(store.root, monkeypatch)
    assert not at.exception
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert table["run_id"].tolist() == [run_id] and table["status"].tolist() == ["complete"]
    assert [s.value for s in at.subheader] == [run_id]
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # every run's test accuracy first (on the screen at 1280 x 720), then the run's card
    metrics = api.read_metrics(store, run_id)
    test_acc = metrics[metrics["split"] == "test"]["accuracy"].to_numpy() * 100
    overview = figure_of(charts[0])
    assert [t["name"] for t in overview["data"]] == [run_id] and overview["data"][0]["y"] == pytest.approx(list(test_acc))
    assert overview["layout"]["yaxis"]["title"]["text"] == "test accuracy (%)"
    acc = figure_of(charts[1])
    assert acc["layout"]["yaxis"]["title"]["text"] == "accuracy (%)"
    assert [t["name"] for t in acc["data"]] == ["train", "test"]
    assert acc["data"][0]["x"] == [0, 1, 2]
    assert acc["data"][1]["y"] == pytest.approx(list(test_acc))


def test_corrupt_run_shows_a_message_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = api.open_store(tmp_path / "s")
    store.create_run("ok-run", {"status": "complete", "config": {}})
    store.metrics_path("ok-run").write_bytes(b"garbage")
    at = open_app(store.root, monkeypatch)
    assert not at.exception
    assert any("not a readable Parquet file" in e.value for e in at.error)
