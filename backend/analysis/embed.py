"""Embeddings of one layer's representation: PCA, UMAP with a shared neighbour graph, trustworthiness.

Pure functions: arrays and keyword-only parameters in, arrays out. The recipe (SCIENCE.md 3.5 [P]):
preprocess the layer as for c4, reduce to ``pca_components`` with PCA, build one cosine
k-nearest-neighbour graph, and reuse it for both UMAP fits: the 2-D layout that the dashboard
draws and the 10-D embedding that HDBSCAN clusters. Sharing the graph saves one nearest-neighbour
search per snapshot, the dominant cost after the layout optimisation itself.

umap-learn is imported inside the functions: importing it compiles nothing, but it pulls numba
in, which a run that is already analysed must not pay for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA


@dataclass(frozen=True)
class KnnGraph:
    indices: np.ndarray  # int (n_samples, n_neighbors), each row starts with the sample itself
    distances: np.ndarray  # float32 (n_samples, n_neighbors)


def pca_reduce(x: np.ndarray, *, n_components: int, seed: int) -> np.ndarray:
    """PCA to ``min(n_components, n_features, n_samples)`` dimensions.

    x : ndarray (n_samples, n_features). Returns float32 (n_samples, n_kept); the first two columns
    are the 2-D PCA layout.
    """
    k = int(min(n_components, x.shape[1], x.shape[0]))
    solver = "randomized" if k < min(x.shape) * 0.8 else "full"
    return PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(x).astype(np.float32)


def knn_graph(x: np.ndarray, *, n_neighbors: int, metric: str, seed: int) -> KnnGraph:
    """The k-nearest-neighbour graph UMAP would build (NN-descent; exact below 4,096 samples)."""
    from umap.umap_ import nearest_neighbors

    if x.shape[0] < 4096:  # exact search, as umap-learn itself does for small data
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=n_neighbors, metric=metric, algorithm="brute").fit(x)
        dist, idx = nn.kneighbors(x)
        return KnnGraph(idx.astype(np.int32), dist.astype(np.float32))
    idx, dist, _ = nearest_neighbors(x, n_neighbors, metric, {}, False, np.random.RandomState(seed), low_memory=True,
                                     use_pynndescent=True, n_jobs=-1, verbose=False)
    return KnnGraph(idx, dist)


def umap_embed(x: np.ndarray, graph: KnnGraph, *, n_components: int, min_dist: float, metric: str, seed: int,
               init: np.ndarray | str = "spectral", n_epochs: int | None = None) -> np.ndarray:
    """A seeded UMAP embedding of ``x`` from a precomputed neighbour graph; float32 (n_samples, n_components).

    ``min_dist``: small values pack clusters tightly (0.0 suits clustering), larger ones spread
    points for reading (0.1 for display). The graph's width sets ``n_neighbors``: small keeps
    local detail, large keeps global structure. With ``random_state`` set, umap-learn runs its
    optimisation single-threaded, which is what makes the layout reproducible.
    """
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")  # no transform() needed
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # seeded runs are single-threaded
        reducer = umap.UMAP(
            n_neighbors=graph.indices.shape[1], n_components=n_components, min_dist=min_dist, metric=metric,
            random_state=seed, init=init, n_epochs=n_epochs, precomputed_knn=(graph.indices, graph.distances),
        )
        return reducer.fit_transform(x).astype(np.float32)


def align_to(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotate/reflect ``current`` (n, 2) onto ``previous`` (n, 2) about their centroids (Procrustes,
    no scaling), so an epoch animation shows movement rather than arbitrary rotations."""
    p0 = previous - previous.mean(axis=0)
    c0 = current - current.mean(axis=0)
    rotation, _ = orthogonal_procrustes(c0, p0)
    return (c0 @ rotation + previous.mean(axis=0)).astype(np.float32)


def trustworthiness(x: np.ndarray, layout: np.ndarray, *, k: int, metric: str, max_samples: int, seed: int) -> float:
    """scikit-learn's trustworthiness of ``layout`` with respect to ``x``, on a seeded subset.

    Trustworthiness (Venna & Kaski) is 1 when every layout neighbour is a true neighbour. Its exact
    computation holds n x n distance matrices, so above ``max_samples`` samples it is estimated on a
    random subset of that size (neighbourhoods within the subset).
    """
    from sklearn.manifold import trustworthiness as sk_trust

    n = x.shape[0]
    if n > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
        x, layout = x[idx], layout[idx]
    k = min(k, (x.shape[0] - 1) // 2)
    return float(sk_trust(x, layout, n_neighbors=k, metric=metric))
