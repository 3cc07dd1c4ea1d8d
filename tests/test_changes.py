"""Neighbourhood change between consecutive snapshots (SCIENCE.md 7): the pure maths and the stored tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from backend import api
from backend.analysis.changes import graph_neighbours, knn_indices, neighbourhood_change
from backend.analysis.embed import knn_graph, pca_reduce
from backend.analysis.snapshot import representation
from backend.config import AnalysisConfig
from backend.errors import ClusterScopeError


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_matches_scikit_learn(metric: str) -> None:
    x = np.random.default_rng(0).normal(size=(300, 7))
    ours = knn_indices(x, k=5, metric=metric, chunk=64)
    ref = NearestNeighbors(n_neighbors=6, metric=metric, algorithm="brute").fit(x).kneighbors(x)[1][:, 1:]
    assert (np.sort(ours, axis=1) == np.sort(ref, axis=1)).mean() > 0.999  # float32 vs float64: a rare border swap
    assert not (ours == np.arange(300)[:, None]).any()  # the sample itself is never its own neighbour


def test_jaccard_distance() -> None:
    a = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    b = np.array([[4, 3, 2, 1], [5, 6, 7, 8], [1, 2, 9, 8]])
    np.testing.assert_allclose(neighbourhood_change(a, b), [0.0, 1.0, 1 - 2 / 6])
    with pytest.raises(ClusterScopeError, match="same shape"):
        neighbourhood_change(a, b[:, :3])
    with pytest.raises(ClusterScopeError, match="1 <= k < n_samples"):
        knn_indices(np.zeros((3, 2)), k=3, metric="euclidean")
    with pytest.raises(ClusterScopeError, match="metric must be 'euclidean' or 'cosine'; got 'manhattan'"):
        knn_indices(np.zeros((3, 2)), k=1, metric="manhattan")
    zero = knn_indices(np.array([[0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [-1.0, 0.0]]), k=2, metric="cosine")
    assert zero[1].tolist() == [2, 0]  # a zero row is at cosine distance 1 from every other (scikit-learn's convention)


def test_jaccard_distance_leaves_out_unfilled_entries() -> None:
    """NN-descent's -1 entries (kept by graph_neighbours) are no neighbours: -1s on both sides are not shared
    neighbours, the distance is over the valid entries, and a row with none on a side is NaN (a row of -1 gave
    a negative distance)."""
    a = np.array([[1, 2, -1, -1], [1, 2, 3, 4], [-1, -1, -1, -1], [1, 2, 3, -1], [1, 2, 3, 4]])
    b = np.array([[1, 2, -1, -1], [1, 2, 3, -1], [-1, -1, -1, -1], [5, 6, 7, 8], [-1, -1, -1, -1]])
    out = neighbourhood_change(a, b)
    np.testing.assert_allclose(out[[0, 1, 3]], [0.0, 1 - 3 / 4, 1.0])
    assert np.isnan(out[2]) and np.isnan(out[4])


def test_graph_neighbours_drop_the_sample_itself() -> None:
    graph = np.array([[0, 2, 1], [1, 0, 2], [0, 3, 1], [3, -1, 2]])  # row 2: itself missing (a duplicate came first)
    np.testing.assert_array_equal(graph_neighbours(graph), [[2, 1], [0, 2], [0, 3], [-1, 2]])
    with pytest.raises(ClusterScopeError, match="names the same sample twice"):
        graph_neighbours(np.array([[0, 0, 1], [1, 0, 2]]))


def _graph_ids(store: api.RunStore, run: str, layer: str, epoch: int, a: AnalysisConfig) -> np.ndarray:
    """The analysis's own neighbour graph of a snapshot, recomputed (exact below 4,096 samples), as sample ids."""
    ids, values = store.read_activations(run, layer, epoch)
    p = pca_reduce(representation(values, a), n_components=a.pca_components, seed=a.seed)
    graph = knn_graph(p, n_neighbors=a.n_neighbors, metric=a.metric, seed=a.seed)
    return ids[graph_neighbours(graph.indices)]


def test_analysis_stores_the_change_per_layer_and_epoch(analysed_store: tuple[api.RunStore, str]) -> None:
    """The change compares the neighbours of the analysis's own graph (change_space "pca"), stored per snapshot."""
    store, run = analysed_store
    layer = "fc1.relu"
    assert api.neighbour_change(store, run, layer, 0).empty  # the first recorded epoch has nothing before it
    ch = api.neighbour_change(store, run, layer, 2)
    assert len(ch) == len(api.read_samples(store, run)) and (ch["previous_epoch"] == 1).all()
    assert ch["neighbour_change"].between(0, 1).all() and ch["neighbour_change"].std() > 0
    a = AnalysisConfig()
    assert a.change_space == "pca"
    before, after = (_graph_ids(store, run, layer, e, a) for e in (1, 2))
    stored = store.analysis.read(run, "neighbours", layer, 2)
    assert stored["sample_id"].tolist() == ch["sample_id"].tolist()
    np.testing.assert_array_equal(np.stack(stored["neighbours"].to_list()), after)  # k = n_neighbors - 1, itself excluded
    assert after.shape[1] == a.n_neighbors - 1
    np.testing.assert_allclose(ch["neighbour_change"], neighbourhood_change(before, after), atol=1e-6)


def test_the_change_reuses_the_stored_neighbours(analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> None:
    """No snapshot is read again (nor searched) for change_space "pca": with the activation files unreadable, the
    changes are written all the same, equal to the first analysis's; "full" searches the whole analysed matrix exactly."""
    from backend.jobs.analyse import params_of
    from backend.jobs.analyse_changes import run_changes

    src, run = analysed_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run), store.root / run)
    a = api.analysis_config(store, run)
    ptag = params_of(a, store.read_run(run))
    for layer in ("fc1.relu", "fc2.relu"):
        for epoch in (1, 2):
            store.activation_path(run, layer, epoch).write_bytes(b"not a Parquet file")  # still listed as a snapshot
            store.analysis.remove(run, "changes", layer, epoch)
    errors: dict[str, str] = {}
    run_changes(store, run, a, ptag, errors)
    assert not errors, errors
    for layer in ("fc1.relu", "fc2.relu"):
        pd.testing.assert_frame_equal(api.neighbour_change(store, run, layer, 2), api.neighbour_change(src, run, layer, 2))
    full = api.analysis_config(src, run, ["analysis.change_space=full"])
    store = api.open_store(tmp_path / "full")
    shutil.copytree(src.run_dir(run), store.root / run)
    report = api.analyze(store, run, full)
    assert not report.analysed and not report.errors, report.summary()  # the snapshots stay up to date
    snaps = [store.read_activations(run, "fc1.relu", e) for e in (1, 2)]
    exact = [ids[knn_indices(representation(values, full), k=full.n_neighbors - 1, metric=full.metric)] for ids, values in snaps]
    np.testing.assert_allclose(api.neighbour_change(store, run, "fc1.relu", 2)["neighbour_change"],
                               neighbourhood_change(*exact), atol=1e-6)


def test_an_epoch_analysed_later_finds_the_earlier_neighbours(analysed_store: tuple[api.RunStore, str],
                                                                tmp_path: Path) -> None:
    """Incremental analysis: the last epoch analysed again on its own (as when training added it later) compares
    with the stored neighbours of the epoch before, and gives the change of the whole analysis."""
    src, run = analysed_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run), store.root / run)
    for layer in ("fc1.relu", "fc2.relu"):
        for table in ("points", "neighbours", "units", "unit_stats", "layers", "groups", "changes"):
            store.analysis.remove(run, table, layer, 2)
    report = api.analyze(store, run)
    assert sorted(report.analysed) == [("fc1.relu", 2), ("fc2.relu", 2)] and not report.errors, report.summary()
    for layer in ("fc1.relu", "fc2.relu"):
        pd.testing.assert_frame_equal(api.neighbour_change(store, run, layer, 2), api.neighbour_change(src, run, layer, 2))


def test_change_space_redoes_the_changes_only() -> None:
    from backend.jobs.analyse import params_of
    from backend.jobs.analyse_changes import _tag

    info = {"dataset": {"target": "superclass"}, "config": {"model": {"name": "mlp"}}}
    pca, full = AnalysisConfig(), AnalysisConfig(change_space="full")
    assert params_of(pca, info) == params_of(full, info)  # the snapshots' files stay up to date
    phash = params_of(pca, info)[1]
    assert _tag(phash, 1, pca) != _tag(phash, 1, full) and _tag(phash, 1, pca) != _tag(phash, 0, pca)
