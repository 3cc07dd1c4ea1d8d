"""The Geometry page through AppTest (SCIENCE.md 7), on the analysed tiny run (fc1.relu, fc2.relu; epochs 0-2),
and on a copy of it as a version-2 store wrote it (no geometry columns, no cka.parquet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backend import api
from backend.analysis.geometry import GEOMETRY_COLUMNS
from tests.test_app_neurons_layers import chart, charts, open_page


def test_geometry_page(analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_page("geometry", store.root, monkeypatch, run=run_id)
    assert not at.exception and not at.error, [e.value for e in at.error]
    layers = chart(at, "Layers at epoch 2")
    z = np.array(layers["data"][0]["z"], dtype=float)
    assert layers["data"][0]["y"] == ["fc1.relu", "fc2.relu"] and np.allclose(np.diag(z), 1)
    assert layers["layout"]["xaxis"]["title"]["text"] == "layer"
    epochs = chart(at, "Epochs of fc2.relu")
    assert epochs["data"][0]["x"] == ["0", "1", "2"]
    n = len(store.read_samples(run_id, columns=["sample_id"]))  # the caption, from the CKA table's parameters
    assert any(f"CKA on {n:,} of {n:,} embedded samples" in c.value and "Debiased HSIC" in c.value for c in at.caption)
    settled = chart(at, "Which layers have settled")
    assert [t["name"] for t in settled["data"]] == ["fc1.relu", "fc2.relu"]
    curves = chart(at, "Representation geometry per layer")
    names = {(t["name"], t["line"]["dash"]) for t in curves["data"]}
    assert ("fc2.relu", "solid") in names and ("fc2.relu", "dash") in names  # classes and subclasses
    # the controls: another epoch and layer redraw the heatmaps and go to the URL
    at.selectbox(key="w-geo-epoch").set_value(0)
    at.selectbox(key="w-geo-layer").set_value("fc1.relu")
    at.run()
    assert chart(at, "Layers at epoch 0") and chart(at, "Epochs of fc1.relu")
    assert at.query_params["epoch"] == "0" and at.query_params["layer"] == "fc1.relu"
    at.multiselect(key="w-geo-panels").set_value(["twonn"])
    at.run()
    assert chart(at, "Representation geometry per layer")["layout"]["annotations"][0]["text"].startswith("TwoNN dimension")
    at.multiselect(key="w-geo-panels").set_value(["nc3"])
    at.run()
    nc3 = chart(at, "Representation geometry per layer")
    assert [t["name"] for t in nc3["data"]] == ["fc2.relu"]  # NC3: the layer that feeds the classifier only
    assert any(c.value.startswith("NC3 compares the classifier's weights") for c in at.caption)
    # the cluster genealogy follows the page's layer and epoch (app/views/geometry_genealogy.py)
    assert any(h.value == "Cluster genealogy" for h in at.subheader)
    assert at.radio(key="w-gen-across").options == ["epochs of fc1.relu", "layers at epoch 0"]


def without_cka(analysed: tuple[api.RunStore, str], root: Path) -> tuple[api.RunStore, str]:
    """A copy of the analysed run in a store at ``root``, its CKA table removed."""
    src, run_id = analysed
    shutil.copytree(src.run_dir(run_id), root / run_id)
    store = api.open_store(root)
    store.analysis.remove(run_id, "cka")
    return store, run_id


def test_geometry_page_on_a_version_2_run(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = without_cka(analysed_store, tmp_path / "v2")
    root = store.root
    for f in store.analysis.table_dir(run_id, "layers").rglob("*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(list(GEOMETRY_COLUMNS)), f)
    at = open_page("geometry", root, monkeypatch, run=run_id)
    assert not at.exception and not at.error
    assert any("clusterscope analyze" in i.value and "version 2" in i.value for i in at.info)
    assert charts(at) == []


def test_cka_waits_for_the_whole_analysis(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """While a run's analysis is under way (the demo's, in the background) CKA is not there yet: the page says it
    comes once every snapshot is analysed, not that the run was analysed before ClusterScope measured it."""
    store, run_id = without_cka(analysed_store, tmp_path / "partial")
    root = store.root
    for f in store.analysis.table_dir(run_id, "layers").rglob("epoch=0002.parquet"):
        f.unlink()  # the last epoch's snapshots not analysed yet
    at = open_page("geometry", root, monkeypatch, run=run_id)
    assert not at.exception and not at.error
    assert any("computed once its analysis has covered every snapshot" in i.value for i in at.info), at.info
    assert not any("version 2" in i.value for i in at.info)
    assert charts(at)  # the measures of the snapshots analysed so far are drawn

