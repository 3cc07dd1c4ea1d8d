"""Neighbourhood change between consecutive snapshots (SCIENCE.md 7): the pure maths and the stored tables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from backend import api
from backend.analysis.changes import knn_indices, neighbourhood_change
from backend.analysis.embed import pca_reduce
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


def test_analysis_stores_the_change_per_layer_and_epoch(analysed_store: tuple[api.RunStore, str]) -> None:
    store, run = analysed_store
    layer = "fc1.relu"
    assert api.neighbour_change(store, run, layer, 0).empty  # the first recorded epoch has nothing before it
    ch = api.neighbour_change(store, run, layer, 2)
    assert len(ch) == len(api.read_samples(store, run)) and (ch["previous_epoch"] == 1).all()
    assert ch["neighbour_change"].between(0, 1).all() and ch["neighbour_change"].std() > 0
    a = AnalysisConfig()
    assert a.change_space == "pca"
    before, after = (knn_indices(pca_reduce(representation(store.read_activations(run, layer, e)[1], a),
                                            n_components=a.pca_components, seed=a.seed), k=a.n_neighbors, metric=a.metric)
                     for e in (1, 2))
    np.testing.assert_allclose(ch["neighbour_change"], neighbourhood_change(before, after), atol=1e-6)


def test_change_space_redoes_the_changes_only() -> None:
    from backend.jobs.analyse import params_of
    from backend.jobs.analyse_changes import _tag

    info = {"dataset": {"target": "superclass"}, "config": {"model": {"name": "mlp"}}}
    pca, full = AnalysisConfig(), AnalysisConfig(change_space="full")
    assert params_of(pca, info) == params_of(full, info)  # the snapshots' files stay up to date
    phash = params_of(pca, info)[1]
    assert _tag(phash, 1, pca) != _tag(phash, 1, full) and _tag(phash, 1, pca) != _tag(phash, 0, pca)
