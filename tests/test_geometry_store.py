"""The geometry columns of analysis/layers and analysis/cka.parquet on a real analysed run (SCIENCE.md 7,
docs/store.md), their re-analysis rule, and how a version-2 run reads."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backend import api
from backend.analysis.geometry import GEOMETRY_COLUMNS
from backend.store import RunStore


def _copy(src: RunStore, run_id: str, tmp_path: Path) -> RunStore:
    dst = RunStore(tmp_path / "copy")
    shutil.copytree(src.run_dir(run_id), dst.root / run_id)
    return dst


def test_geometry_columns_and_cka_table(analysed_store: tuple[RunStore, str]) -> None:
    store, run_id = analysed_store
    geo = api.layer_geometry(store, run_id)
    assert list(geo.columns[3:-1]) == list(GEOMETRY_COLUMNS) == list(api.GEOMETRY_MEASURES)
    assert geo.columns[-1] == "nc3_reason"
    last = geo[geo["epoch"] == 2]
    # the tiny run is trained on superclasses with predictions recorded: every value is there (NC3: last layer only)
    assert last[[c for c in GEOMETRY_COLUMNS if c != "nc3_class"]].notna().all().all(), last
    assert last[["knn_class", "probe_class", "nc4_class", "knn_subclass"]].stack().between(0, 1).all()
    assert (last["nc1_class"] > 0).all() and (last["twonn_id"] > 0).all()
    cka = api.read_cka(store, run_id)
    layers = api.run_info(store, run_id).layers
    m = api.cka_layers(cka, 2, list(layers))
    assert m.shape == (2, 2) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T) and 0 < m.iloc[0, 1] < 1
    e = api.cka_epochs(cka, "fc2.relu")
    assert list(e.index) == [0, 1, 2] and np.allclose(np.diag(e), 1)
    to_last = api.cka_to_last(cka)
    assert len(to_last) == 6 and np.allclose(to_last[to_last["epoch"] == 2]["cka"], 1)


def test_cka_is_redone_only_when_needed(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    path = store.analysis.path(run_id, "cka")
    before = path.stat().st_mtime_ns
    api.analyze(store, run_id)
    assert path.stat().st_mtime_ns == before  # up to date: not rewritten
    # the re-analyses with short UMAP fits (a quarter of the time): the second differs from the first in the
    # geometry settings only
    fast = ["analysis.umap_epochs=20", "analysis.cluster_epochs=20"]
    off = api.analysis_config(store, run_id, ["analysis.geometry=false", *fast])
    report = api.analyze(store, run_id, off)
    assert len(report.analysed) == 6 and not path.exists()  # a changed parameter redoes every snapshot
    assert api.layer_geometry(store, run_id)[list(GEOMETRY_COLUMNS)].isna().all().all()
    report = api.analyze(store, run_id, api.analysis_config(store, run_id, ["analysis.cka_batch=16", *fast]))
    assert len(report.analysed) == 6 and path.exists() and not report.errors


def test_a_version_2_run_reads_with_nan(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    store.analysis.remove(run_id, "cka")
    for f in store.analysis.table_dir(run_id, "layers").rglob("*.parquet"):  # as version 2 wrote them
        table = pq.read_table(f)
        pq.write_table(table.drop_columns(list(GEOMETRY_COLUMNS)), f)
    geo = api.layer_geometry(store, run_id)
    assert len(geo) == 6 and geo[list(GEOMETRY_COLUMNS)].isna().all().all()
    assert api.read_cka(store, run_id).empty and api.cka_to_last(api.read_cka(store, run_id)).empty
    assert api.read_analysis(store, run_id, "layers")["nc1_class"].isna().all()


def test_nc3_of_the_layer_that_feeds_the_classifier(analysed_store: tuple[RunStore, str]) -> None:
    """NC3 (SCIENCE.md 7) from the stored checkpoints: finite for fc2.relu (the classifier's input) at every
    epoch, equal to the formula on the checkpoint's weights and the training samples' post-ReLU values; NaN
    with its reason for fc1.relu."""
    from backend.analysis.geometry import nc3
    from backend.analysis.labels import probe_labels

    store, run_id = analysed_store
    geo = api.layer_geometry(store, run_id)
    last, first = geo[geo["layer"] == "fc2.relu"], geo[geo["layer"] == "fc1.relu"]
    assert len(last) == 3 and last["nc3_class"].between(0, 4).all() and (last["nc3_reason"] == "").all()
    assert first["nc3_class"].isna().all() and first["nc3_reason"].str.contains("feeds the classifier \\(fc2.relu\\)").all()
    labels = probe_labels(store.read_samples(run_id), store.read_run(run_id))
    _, values = store.read_activations(run_id, "fc2.relu", 2)
    w = store.load_checkpoint(run_id, 2)["classifier.weight"].numpy()
    t = labels.train
    expected = nc3(w, np.maximum(values[t], 0), labels.classes[t])
    assert float(last[last["epoch"] == 2]["nc3_class"].iloc[0]) == pytest.approx(expected, rel=1e-9)
    assert api.run_measures(store, run_id)["nc3_class"] == pytest.approx(expected, rel=1e-9)  # the Kendall row


def test_nc3_is_nan_with_its_reason(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """No checkpoint of the epoch, a classifier of another width, a model whose classifier is not identified."""
    from backend.jobs.analyse_geometry import classifier_weights

    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    store.checkpoint_path(run_id, 1).unlink()
    store.analysis.remove(run_id, "layers", "fc2.relu", 1)
    report = api.analyze(store, run_id)
    assert report.analysed == [("fc2.relu", 1)], report.summary()
    geo = api.layer_geometry(store, run_id).set_index(["layer", "epoch"])
    assert geo.loc[("fc2.relu", 1), "nc3_reason"].startswith("no checkpoint of epoch 1")
    assert np.isnan(geo.loc[("fc2.relu", 1), "nc3_class"]) and np.isfinite(geo.loc[("fc2.relu", 2), "nc3_class"])
    w, why = classifier_weights(store, run_id, "fc2.relu", 2, 5, analysis_input="post_relu")  # a layer of 5 units against the 16 inputs
    assert w is None and why == "the classifier takes 16 inputs but layer 'fc2.relu' has 5 units"
    w, why = classifier_weights(store, run_id, "fc2.relu", 2, 16, analysis_input="post_relu")
    assert w is not None and w.shape[1] == 16 and why == ""
    info = store.read_run(run_id)
    store.update_run(run_id, model=info["model"] | {"name": "tv:resnet18"})
    w, why = classifier_weights(store, run_id, "fc2.relu", 0, 16, analysis_input="post_relu")
    assert w is None and why.startswith("the classifier of model 'tv:resnet18' is not identified")


@pytest.mark.parametrize("model", [("mlp", "model.depth=3"), ("vgg", "model.stages=2"), ("resnet", "model.depth=8")])
def test_the_classifier_input_rule_matches_the_models(model: tuple[str, str]) -> None:
    """classifier_input_layer names each of our models' last probe layer (the ReLU whose output, pooled for conv
    layers, is the classifier's input), and its width is the classifier's in_features."""
    from backend.config import load_config
    from backend.jobs.analyse_geometry import classifier_input_layer
    from backend.store import RunInfo
    from backend.training.models import build_model
    from backend.training.snapshots import probe_layers

    name, extra = model
    cfg = load_config(None, (f'model.name="{name}"', extra, "model.width=8", "model.width_factor=0.25"))
    shape = (8,) if name == "mlp" else (3, 8, 8)
    net = build_model(cfg.model, shape, 3, seed=0)
    last = probe_layers(net, shape)[-1]
    info = RunInfo.from_dict({"model": {"name": name}, "config": {"model": dataclasses.asdict(cfg.model)}})
    assert classifier_input_layer(info) == last.name and last.units == net.classifier.in_features
    assert classifier_input_layer(RunInfo.from_dict({"model": {"name": "tv:resnet18"}})) is None


def test_cka_on_a_capped_sample(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """analysis.cka_max_samples: CKA on a seeded stratified subset of the embedded samples; changing it redoes
    cka.parquet only (no snapshot), and the values are the (debiased) closed form on exactly those rows."""
    from backend.analysis.geometry import cka_matrix
    from backend.analysis.labels import probe_labels
    from backend.jobs.analyse_geometry import cka_rows

    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    n = len(store.read_samples(run_id, columns=["sample_id"]))
    assert api.analysis_config(store, run_id).cka_max_samples >= n  # the tiny run: every sample by default
    capped = api.analysis_config(store, run_id, ["analysis.cka_max_samples=120"])
    report = api.analyze(store, run_id, capped)
    assert not report.analysed and not report.errors, report.summary()
    fine = probe_labels(store.read_samples(run_id), store.read_run(run_id)).fine
    rows = cka_rows(fine, np.arange(n), capped)
    assert len(rows) == 120 and len(np.unique(fine[rows])) == len(np.unique(fine))  # stratified: every label
    reps = [np.maximum(store.read_activations(run_id, "fc2.relu", e)[1][rows], 0) for e in (0, 1, 2)]
    e = api.cka_epochs(api.read_cka(store, run_id), "fc2.relu")
    np.testing.assert_allclose(e.to_numpy(), cka_matrix(reps, debiased=True), rtol=1e-6)
    assert api.cka_params(store, run_id)["cka_samples"] == 120 and api.cka_params(store, run_id)["cka_of"] == n
    full = api.cka_epochs(api.read_cka(analysed_store[0], run_id), "fc2.relu")
    assert not np.allclose(e.to_numpy(), full.to_numpy(), rtol=1e-6)
    with pytest.raises(api.ConfigError, match="analysis.cka_max_samples"):
        api.analysis_config(store, run_id, ["analysis.cka_max_samples=3"])


def test_a_version_3_run_reads_without_nc3_and_neighbours(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """Store version 4 adds nc3_class, nc3_reason to analysis/layers and analysis/neighbours/: a version-3 run
    reads with NC3 NaN (its reason says why) and its changes as they are; its snapshots count as stale."""
    from backend.jobs.analyse import SNAPSHOT_TABLES, _up_to_date
    from backend.queries_geometry import NC3_BEFORE_4

    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    for f in store.analysis.table_dir(run_id, "layers").rglob("*.parquet"):  # as version 3 wrote them
        table = pq.read_table(f)
        pq.write_table(table.drop_columns(["nc3_class", "nc3_reason"]).replace_schema_metadata(table.schema.metadata), f)
    shutil.rmtree(store.analysis.table_dir(run_id, "neighbours"))
    geo = api.layer_geometry(store, run_id)
    assert len(geo) == 6 and geo["nc3_class"].isna().all() and (geo["nc3_reason"] == NC3_BEFORE_4).all()
    assert geo["nc1_class"].notna().all()
    assert api.neighbour_change(store, run_id, "fc1.relu", 2)["neighbour_change"].notna().all()
    phash = store.analysis.params_hash(run_id, "layers", "fc1.relu", 2)
    assert "neighbours" in SNAPSHOT_TABLES and not _up_to_date(store, run_id, "fc1.relu", 2, phash or "")


def test_cka_epoch_grid_of_a_long_run(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """analysis.cka_max_epochs: every two epochs of an evenly spaced grid (first and last kept), every other epoch
    against the last only, so each epoch against the last stays complete and equal to the uncapped values."""
    from backend.jobs.analyse_geometry import cka_epoch_grid

    assert cka_epoch_grid(list(range(10)), 4) == [0, 3, 6, 9] and cka_epoch_grid([0, 5], 4) == [0, 5]
    assert cka_epoch_grid(list(range(30)), 0) == list(range(30))
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    report = api.analyze(store, run_id, api.analysis_config(store, run_id, ["analysis.cka_max_epochs=2"]))
    assert not report.analysed and not report.errors, report.summary()
    cka, full = api.read_cka(store, run_id), api.read_cka(analysed_store[0], run_id)
    epochs = cka[(cka["kind"] == "epoch") & (cka["layer_a"] == "fc2.relu")]
    assert set(zip(epochs["epoch_a"], epochs["epoch_b"], strict=True)) == {(0, 0), (0, 2), (2, 0), (2, 2), (1, 1), (1, 2), (2, 1)}
    pd.testing.assert_frame_equal(api.cka_to_last(cka).sort_values(["layer", "epoch"], ignore_index=True),
                                  api.cka_to_last(full).sort_values(["layer", "epoch"], ignore_index=True), rtol=1e-9)
    assert api.cka_layers(cka, 1, ["fc1.relu", "fc2.relu"]).notna().all().all()  # layer x layer untouched
    shown = api.cka_epochs(cka, "fc2.relu")  # the grid of 2, without epoch 1 (compared with the last only)
    assert list(shown.index) == [0, 2] == list(shown.columns) and shown.notna().all().all()
    rows = [(a, b) for a in (0, 4, 8) for b in (0, 4, 8)] + [(e, b) for e in (2, 6) for b in (e, 8)] + [(8, 2), (8, 6)]
    grid = pd.DataFrame([("epoch", "x", a, "x", b, 0.5) for a, b in rows],
                        columns=["kind", "layer_a", "epoch_a", "layer_b", "epoch_b", "cka"])
    assert list(api.cka_epochs(grid, "x").index) == [0, 4, 8] == list(api.cka_epochs(grid, "x").columns)
