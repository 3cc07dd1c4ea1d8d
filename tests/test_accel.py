"""The matrix-product forms of the analysis (backend/analysis/accel.py) against scikit-learn, on the CPU.

Stated tolerances: silhouettes 1e-9 (float64, absolute); exact k-NN: the same neighbours as scikit-learn's
brute force (float32 products: ties aside) and distances to 1e-5 (absolute). The torch path runs here
on device "cpu"; the same code on "cuda" is what a GPU runs (not exercised without one).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

from backend.analysis import accel, embed, measures
from backend.config import AnalysisConfig, ConfigError, validate_analysis


def _post(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.maximum(np.random.default_rng(seed).normal(size=(n, d)), 0.0)
    x[:4] = 0.0  # dead rows: at distance 1 from every other row, 0 from themselves
    return x


@pytest.mark.parametrize("device", [None, "cpu"])
def test_cosine_silhouettes_equal_sklearn(device: str | None) -> None:
    x = _post(500, 16)
    labels = np.random.default_rng(1).integers(0, 6, 500) * 3 + 2  # non-contiguous ids
    labels[7] = 99  # a sample alone in its cluster scores 0
    got = accel.cosine_silhouette_samples(x, labels, device=device)
    np.testing.assert_allclose(got, silhouette_samples(x, labels, metric="cosine"), rtol=0, atol=1e-9)
    assert got[7] == 0.0


def test_cosine_silhouettes_reject_one_label() -> None:
    with pytest.raises(ValueError, match="between 2 and"):
        accel.cosine_silhouette_samples(np.ones((5, 2)), np.zeros(5, dtype=int))


def test_subclass_silhouettes_match_sklearn_and_are_fast() -> None:
    """c2's silhouettes through the closed form equal scikit-learn's O(n^2) ones, and cost a fraction."""
    rng = np.random.default_rng(0)
    n = 6000
    sub = rng.integers(0, 12, n)
    sup = sub // 4
    post = np.maximum(rng.normal(size=(n, 64)) + sub[:, None] * 0.05, 0.0)
    t0 = time.perf_counter()
    fast = measures.subclass_silhouettes(post, subclass=sub, superclass=sup)
    took = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = []
    for s in range(3):
        m = sup == s
        per = silhouette_samples(post[m], sub[m], metric="cosine")
        slow += [per[sub[m] == g].mean() for g in np.unique(sub[m])]
    reference = time.perf_counter() - t0
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert took < reference / 3, (took, reference)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_knn_equals_sklearn_brute_force(metric: str) -> None:
    x = _post(700, 12)[4:]  # no zero rows: every neighbour order is well defined
    dist, idx = NearestNeighbors(n_neighbors=10, metric=metric, algorithm="brute").fit(x).kneighbors(x)
    got_idx, got_dist = accel.exact_knn(x, k=10, metric=metric, device="cpu", block=128)  # several blocks
    assert got_idx.dtype == np.int32 and got_dist.dtype == np.float32
    np.testing.assert_array_equal(got_idx[:, 0], np.arange(len(x)))  # itself first, as UMAP's graph
    assert (got_idx == idx).mean() > 0.999
    np.testing.assert_allclose(got_dist, dist, rtol=0, atol=1e-5)


def test_knn_graph_on_a_device_is_the_exact_graph() -> None:
    """embed.knn_graph(device=...) gives the exact graph, also above the size where the CPU path uses NN-descent."""
    p = np.random.default_rng(2).normal(size=(5000, 10)).astype(np.float32)
    exact = embed.knn_graph(p, n_neighbors=15, metric="cosine", seed=0, device="cpu")
    dist, ref = NearestNeighbors(n_neighbors=15, metric="cosine", algorithm="brute").fit(p).kneighbors(p)
    assert (exact.indices == ref).mean() > 0.999
    np.testing.assert_allclose(exact.distances, dist, rtol=0, atol=1e-5)


def test_device_setting() -> None:
    assert AnalysisConfig().device == "cpu"  # the CPU path is the default
    assert accel.resolve_device("cpu") is None
    import torch

    assert accel.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else None)
    assert not accel.cuml_available(None) and not accel.cuml_available("cpu")
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ConfigError, match="analysis.device"):
            validate_analysis(AnalysisConfig(device=bad))
    validate_analysis(AnalysisConfig(device="cuda:1"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            accel.resolve_device("cuda")


def test_default_cap_is_100k() -> None:
    assert AnalysisConfig().max_samples == 100_000


def test_device_is_not_in_the_parameters_hash() -> None:
    """A run analysed on one device is not redone on another (the devices agree within the tolerances above)."""
    from backend.jobs.analyse import params_of

    assert params_of(AnalysisConfig(device="auto"), {}) == params_of(AnalysisConfig(), {})
    assert params_of(AnalysisConfig(max_samples=10), {}) != params_of(AnalysisConfig(), {})
