"""`clusterscope analyze` end to end on real runs: tables, incrementality, determinism, bad snapshots."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backend import api
from backend.analysis.labels import probe_labels
from backend.analysis.snapshot import AnalysisError, analyze_snapshot
from backend.config import AnalysisConfig
from backend.jobs.analyse import AnalysisInputError
from backend.store import RunStore


def copy_run(src: RunStore, run_id: str, tmp_path: Path) -> RunStore:
    dst = RunStore(tmp_path / "copy")
    shutil.copytree(src.run_dir(run_id), dst.root / run_id)
    return dst


def test_tables_of_an_analysed_run(analysed_store: tuple[RunStore, str]) -> None:
    store, run_id = analysed_store
    points = api.read_analysis(store, run_id, "points", "fc2.relu", 2)
    samples = api.read_samples(store, run_id)
    assert points["sample_id"].tolist() == samples["sample_id"].tolist()
    assert np.isfinite(points[["umap_x", "umap_y", "pca_x", "pca_y"]].to_numpy()).all()
    assert points["cluster"].max() >= 1  # at least two clusters
    layers = api.read_analysis(store, run_id, "layers")
    assert sorted(zip(layers["layer"], layers["epoch"], strict=True)) == [(la, e) for la in ("fc1.relu", "fc2.relu")
                                                                           for e in (0, 1, 2)]
    final = layers[(layers["layer"] == "fc2.relu") & (layers["epoch"] == 2)].iloc[0]
    assert 0.5 < final["class_purity"] <= 1.0 and 0.0 <= final["noise_fraction"] < 0.5
    assert 0.8 < final["trust_umap"] <= 1.0 and final["trust_umap"] > final["trust_pca"]
    units = api.read_analysis(store, run_id, "units", "fc1.relu", 2)
    assert units["unit"].tolist() == list(range(16)) and units["hap"].dropna().between(0, 1).all()  # NaN: never fires
    stats = api.read_analysis(store, run_id, "unit_stats", "fc1.relu", 2)
    assert set(stats["level"]) == {"class", "subclass"} and len(stats) == 16 * (5 + 10)
    network = api.read_analysis(store, run_id, "network")
    assert network["epoch"].tolist() == [0, 1, 2] and network[["c1", "c2", "c3", "c4"]].notna().all().all()
    rotation = api.read_analysis(store, run_id, "rotation")
    assert (rotation[rotation["epoch"] == 0]["rotation"].abs() < 1e-6).all()
    assert set(rotation["layer"]) == {"fc1.linear", "fc2.linear", "classifier"}  # kernels only, no BN
    assert (rotation[rotation["epoch"] == 2]["rotation"] > 0).all()
    meta = pq.read_schema(store.analysis.path(run_id, "points", "fc1.relu", 0)).metadata
    assert b"clusterscope.params_hash" in meta and b'"n_neighbors": 30' in meta[b"clusterscope.params"]


def test_reanalysis_is_incremental(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    store = copy_run(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    start = time.perf_counter()
    report = api.analyze(store, run_id)
    assert report.analysed == [] and len(report.skipped) == 6
    assert time.perf_counter() - start < 30  # generous: this only guards against recomputing everything
    store.analysis.path(run_id, "units", "fc2.relu", 1).unlink()
    report = api.analyze(store, run_id)
    assert report.analysed == [("fc2.relu", 1)]
    fast = ["analysis.umap_epochs=20", "analysis.cluster_epochs=20"]  # short fits: the redo costs a quarter
    report = api.analyze(store, run_id, api.analysis_config(store, run_id, fast))
    assert len(report.analysed) == 6  # a changed parameter redoes every snapshot


def test_fixed_seeds_give_identical_embeddings(trained_store: tuple[RunStore, str]) -> None:
    store, run_id = trained_store
    info = store.read_run(run_id)
    labels = probe_labels(store.read_samples(run_id), info)
    ids, values = store.read_activations(run_id, "fc2.relu", 2)
    a = analyze_snapshot(values, sample_ids=ids, labels=labels, params=AnalysisConfig(), depth=1)
    b = analyze_snapshot(values, sample_ids=ids, labels=labels, params=AnalysisConfig(), depth=1)
    np.testing.assert_array_equal(a.points[["umap_x", "umap_y", "cluster"]], b.points[["umap_x", "umap_y", "cluster"]])
    c = analyze_snapshot(values, sample_ids=ids, labels=labels, params=AnalysisConfig(seed=1), depth=1)
    assert not np.allclose(a.points["umap_x"], c.points["umap_x"])


def test_threaded_umap_fits_equal_sequential_ones() -> None:
    from backend.analysis import embed

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 8)) + np.repeat(rng.normal(0, 4, (3, 8)), 100, axis=0)).astype(np.float32)
    g = embed.knn_graph(x, n_neighbors=10, metric="cosine", seed=0)
    fits = [{"n_components": 5, "min_dist": 0.0, "n_epochs": 20}, {"n_components": 2, "min_dist": 0.1, "n_epochs": 30}]
    threaded = embed.umap_embed_many(x, g, fits, metric="cosine", seed=0, threads=2)
    one_by_one = [embed.umap_embed(x, g, metric="cosine", seed=0, **f) for f in fits]
    for a, b in zip(threaded, one_by_one, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1-CPU sweep trial (Ray sets OMP_NUM_THREADS=1) runs its UMAP fits one after the other."""
    import os

    from backend.analysis import embed

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    free = embed._cpus()
    assert free == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert embed._cpus() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert embed._cpus() == free  # a cap, never more than the process may use
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested OpenMP levels: not a cap we read
    assert embed._cpus() == free


def test_aligned_layouts_move_less_than_independent_ones(trained_store: tuple[RunStore, str]) -> None:
    store, run_id = trained_store
    labels = probe_labels(store.read_samples(run_id), store.read_run(run_id))
    ids, v1 = store.read_activations(run_id, "fc2.relu", 1)
    _, v2 = store.read_activations(run_id, "fc2.relu", 2)
    first = analyze_snapshot(v1, sample_ids=ids, labels=labels, params=AnalysisConfig(), depth=1)
    aligned = analyze_snapshot(v2, sample_ids=ids, labels=labels, params=AnalysisConfig(), depth=1, init=first.layout)
    free = analyze_snapshot(v2, sample_ids=ids, labels=labels, params=AnalysisConfig(aligned=False), depth=1)

    def moved(layout: np.ndarray) -> float:
        scale = np.ptp(first.layout, axis=0).mean()
        return float(np.linalg.norm(layout - first.layout, axis=1).mean() / scale)

    assert moved(aligned.layout) < 0.8 * moved(free.layout)


def test_bad_snapshots_are_reported_and_the_rest_analysed(trained_store: tuple[RunStore, str], tmp_path: Path) -> None:
    store = copy_run(*trained_store, tmp_path)
    run_id = trained_store[1]
    store.activation_path(run_id, "fc1.relu", 1).write_bytes(b"not parquet")
    ids, values = store.read_activations(run_id, "fc2.relu", 2)
    values[:, 3] = np.nan  # a diverged run
    store.write_activations(run_id, "fc2.relu", 2, ids, values, reduction="max")
    report = api.analyze(store, run_id, replace(AnalysisConfig(), umap_epochs=20))
    assert set(report.errors) == {"fc1.relu@1", "fc2.relu@2"}
    assert "run 'tiny', layer 'fc1.relu', epoch 1" in report.errors["fc1.relu@1"]
    assert "not a readable Parquet file" in report.errors["fc1.relu@1"]
    assert "NaN or infinite" in report.errors["fc2.relu@2"] and "diverged" in report.errors["fc2.relu@2"]
    assert len(report.analysed) == 4
    assert not store.analysis.path(run_id, "points", "fc2.relu", 2).exists()  # nothing half-written
    assert store.analysis.read_status(run_id)["errors"].keys() == report.errors.keys()


def test_degenerate_snapshots_get_clear_messages(trained_store: tuple[RunStore, str]) -> None:
    store, run_id = trained_store
    labels = probe_labels(store.read_samples(run_id), store.read_run(run_id))
    ids, values = store.read_activations(run_id, "fc2.relu", 2)
    with pytest.raises(AnalysisError, match="the layer has 1 unit"):
        analyze_snapshot(values[:, :1], sample_ids=ids, labels=labels, params=AnalysisConfig(), depth=1)
    few = replace(labels, classes=labels.classes[:20], subclass=labels.subclass[:20], superclass=labels.superclass[:20],
                  fine=labels.fine[:20], train=labels.train[:20])
    with pytest.raises(AnalysisError, match="only 20 probe samples.*analysis.n_neighbors=30"):
        analyze_snapshot(values[:20], sample_ids=ids[:20], labels=few, params=AnalysisConfig(), depth=1)


def test_run_without_snapshots(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.create_run("empty", {"status": "complete"})
    with pytest.raises(AnalysisInputError, match="run 'empty' has no snapshots"):
        api.analyze(store, "empty", AnalysisConfig())


def test_training_raises_intraclass_measures_above_initialisation(analysed_store: tuple[RunStore, str]) -> None:
    """SCIENCE.md 5, finding 4: trained on superclasses, the network separates the digits more than at init."""
    store, run_id = analysed_store
    net = api.read_analysis(store, run_id, "network").set_index("epoch")
    assert net.loc[2, "c1"] > net.loc[0, "c1"]
    assert net.loc[2, "c2"] > net.loc[0, "c2"]


def test_compare_table(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from backend.cli import cli

    store = copy_run(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    shutil.copytree(store.run_dir(run_id), store.root / "tiny-b")
    info = store.read_run("tiny-b")
    info["config"]["train"]["lr"] = 0.01
    info["final"]["test_accuracy"] -= 0.1
    store.write_run("tiny-b", info)
    runs, table = api.compare(store, [run_id, "tiny-b"])
    assert "train.lr" in runs.columns
    assert set(table["measure"]) >= {"c1", "c2", "c3", "c4", "class_purity"}
    # equal measures, different accuracies: the two ordered pairs cancel (SCIENCE.md 3.2 reference tau)
    assert table.set_index("measure").loc["c1", "tau"] == 0.0
    result = CliRunner().invoke(cli, ["compare", run_id, "tiny-b", "--store", str(store.root), "--csv",
                                      str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert "granulated_total" in result.output and (tmp_path / "t.csv").is_file()
