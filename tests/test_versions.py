"""Version tokens (backend/store/versions.py): what the dashboard's caches are keyed on (app/loaders.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backend import api, schema
from backend.errors import StoreError
from tests.conftest import figure_of

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def metrics_rows(epochs: int) -> list[dict]:
    return [{"epoch": e, "split": split, "loss": 1.0, "accuracy": 0.1 * (e + 1), "lr": 0.1}
            for e in range(epochs) for split in ("train", "test")]


def test_run_and_store_versions_change_with_their_files_only(store: api.RunStore) -> None:
    empty = api.store_version(store)
    store.create_run("r1", {"status": "running"})
    added = api.store_version(store)
    assert added != empty
    run, metrics = api.run_version(store, "r1"), api.run_version(store, "r1", "metrics")
    store.write_metrics("r1", metrics_rows(1))
    assert api.run_version(store, "r1", "metrics") != metrics and api.run_version(store, "r1") == run
    store.write_metrics("r1", metrics_rows(1))  # the same bytes again: a new file all the same
    assert api.run_version(store, "r1", "metrics") != metrics
    store.update_run("r1", status="complete")
    assert api.run_version(store, "r1") != run and api.store_version(store) != added
    snaps, act = api.run_version(store, "r1", "snapshots"), api.run_version(store, "r1", "activations", layer="fc1", epoch=0)
    store.write_activations("r1", "fc1", 0, np.arange(4), np.ones((4, 2)), reduction="max")
    assert api.run_version(store, "r1", "snapshots") != snaps
    assert api.run_version(store, "r1", "activations", layer="fc1", epoch=0) != act
    assert api.run_version(store, "r1", "activations", layer="fc1", epoch=5) == act  # another epoch: still missing
    hash(api.store_version(store))


def test_analysis_versions_follow_one_file_or_the_whole_table(store: api.RunStore) -> None:
    store.create_run("r1", {"status": "complete"})
    whole, one = api.analysis_version(store, "r1", "layers"), api.analysis_version(store, "r1", "layers", "fc1", 3)
    frame = schema.ANALYSIS_SCHEMAS["layers"].empty_table().to_pandas().drop(columns=["layer", "epoch"])
    store.analysis.write("r1", "layers", frame, params="{}", params_hash="h", layer="fc1", epoch=3)
    assert api.analysis_version(store, "r1", "layers") != whole
    assert api.analysis_version(store, "r1", "layers", "fc1", 3) != one
    assert api.has_analysis(store, "r1")
    before = api.analysis_version(store, "r1", "layers")
    store.analysis.write("r1", "layers", frame, params="{}", params_hash="h", layer="fc2", epoch=3)
    assert api.analysis_version(store, "r1", "layers") != before


def test_bad_version_requests_say_what_is_expected(store: api.RunStore) -> None:
    with pytest.raises(StoreError, match="needs a layer and an epoch"):
        api.run_version(store, "r1", "activations")
    with pytest.raises(StoreError, match="is not one of run, metrics"):
        api.run_version(store, "r1", "weights")
    with pytest.raises(StoreError, match="analysis table 'nope'"):
        api.analysis_version(store, "r1", "nope")
    with pytest.raises(StoreError, match="is not valid"):
        api.run_version(store, "../x")


def test_the_runs_page_follows_the_store_without_a_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loaders' caches are keyed on the version tokens: a run's new metrics and a new run show on the next
    rerun, with no cache cleared."""
    store = api.open_store(tmp_path / "s")
    store.create_run("a", {"status": "complete", "config": {}})
    store.write_metrics("a", metrics_rows(1))
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(store.root))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception and at.dataframe[0].value["run_id"].tolist() == ["a"]
    assert accuracy_curve(at, "a") == pytest.approx([10.0])
    store.write_metrics("a", metrics_rows(3))
    store.create_run("b", {"status": "complete", "config": {}})
    at.run()
    assert not at.exception and at.dataframe[0].value["run_id"].tolist() == ["a", "b"]
    assert accuracy_curve(at, "a") == pytest.approx([10.0, 20.0, 30.0])


def accuracy_curve(at: AppTest, run_id: str) -> list[float]:
    """The run's test accuracy (%) in the Runs page's first figure (every run's test accuracy over training)."""
    return next(t["y"] for t in figure_of(at.get("plotly_chart")[0])["data"] if t["name"] == run_id)


def test_run_info_reads_run_json_once_into_typed_fields(store: api.RunStore) -> None:
    """api.run_info: the fields the backend reads, the effective status, and run.json left as it was."""
    layers = [{"name": "fc1", "units": 8}, {"name": "fc2", "units": 4}]
    store.create_run("r1", {"status": "running", "pid": 2**22 + 7, "host": "elsewhere", "layers": layers,
                            "config": {"data": {"name": "digits", "target": "superclass"}, "train": {"lr": 0.1}},
                            "dataset": {"name": "digits", "target": "superclass"}, "model": {"name": "mlp"},
                            "recorded_epochs": [0, 2], "final": {"train_accuracy": 0.9, "test_accuracy": 0.8}})
    before = store.run_json_path("r1").read_bytes()
    info = api.run_info(store, "r1")
    assert isinstance(info, api.RunInfo) and info.run_id == "r1" and info.layers == ("fc1", "fc2")
    assert info.model_name == "mlp" and info.target == "superclass" and info.recorded_epochs == (0, 2)
    assert (info.train_accuracy, info.test_accuracy) == (0.9, 0.8) and info.section("train") == {"lr": 0.1}
    assert info.section("analysis") == {} and info.raw["host"] == "elsewhere"
    assert info.status == api.read_run(store, "r1")["status"]  # the effective status, as read_run gives it
    with pytest.raises(AttributeError):
        info.status = "complete"  # type: ignore[misc]
    info.raw["layers"].append({"name": "x"})  # a copy: the store's next read is unchanged
    assert api.run_info(store, "r1").layers == ("fc1", "fc2") and store.run_json_path("r1").read_bytes() == before
    bare = api.RunInfo.from_dict({"status": "complete"})
    assert (bare.layers, bare.final, bare.test_accuracy, bare.model_name) == ((), {}, None, None)
