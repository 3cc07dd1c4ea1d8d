"""Embeddings of one layer's representation: PCA, UMAP with a shared neighbour graph, trustworthiness.

Pure functions: arrays and keyword-only parameters in, arrays out. The recipe (SCIENCE.md 3.5 [P]):
preprocess the layer as for c4, reduce to ``pca_components`` with PCA, build one cosine
k-nearest-neighbour graph, and reuse it for both UMAP fits: the 2-D layout that the dashboard
draws and the 10-D embedding that HDBSCAN clusters. Sharing the graph saves one nearest-neighbour
search per snapshot, the dominant cost after the layout optimisation itself.

The two fits run side by side in two threads (:func:`umap_embed_many`): a seeded UMAP optimises
its layout single-threaded (that is what makes it reproducible), so one fit alone leaves the other
cores idle. umap-learn's compiled layout epoch holds Python's GIL, so :func:`_release_gil` compiles
the same function with the same flags plus ``nogil=True`` in its place; the layouts are
bit-identical to fits made one after the other.

umap-learn is imported inside the functions: importing it compiles nothing, but it pulls numba
in, which a run that is already analysed must not pay for.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
    n, d = x.shape
    k = int(min(n_components, d, n))
    # Exact and cheapest for many samples of a few hundred units (one d x d covariance; what
    # scikit-learn's "auto" picks there); randomized for wide layers, exact SVD for tiny ones.
    if d <= 1000 and n >= 10 * d:
        solver = "covariance_eigh"
    else:
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


@contextmanager
def quiet_umap():
    """umap-learn's warnings about our choices silenced. ``warnings.catch_warnings`` is process-wide and not
    thread-safe: enter this before starting any thread that runs beside the fits (see
    :func:`backend.analysis.snapshot.analyze_snapshot`), so every filter list a thread saves and restores holds it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")  # no transform() needed
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # seeded runs are single-threaded
        yield


def _umap_fit(x: np.ndarray, graph: KnnGraph, *, n_components: int, min_dist: float, metric: str, seed: int,
              init: np.ndarray | str = "spectral", n_epochs: int | None = None) -> np.ndarray:
    import umap

    reducer = umap.UMAP(
        n_neighbors=graph.indices.shape[1], n_components=n_components, min_dist=min_dist, metric=metric,
        random_state=seed, init=init, n_epochs=n_epochs, precomputed_knn=(graph.indices, graph.distances),
    )
    return reducer.fit_transform(x).astype(np.float32)


def umap_embed(x: np.ndarray, graph: KnnGraph, *, n_components: int, min_dist: float, metric: str, seed: int,
               init: np.ndarray | str = "spectral", n_epochs: int | None = None) -> np.ndarray:
    """A seeded UMAP embedding of ``x`` from a precomputed neighbour graph; float32 (n_samples, n_components).

    ``min_dist``: small values pack clusters tightly (0.0 suits clustering), larger ones spread
    points for reading (0.1 for display). The graph's width sets ``n_neighbors``: small keeps
    local detail, large keeps global structure. With ``random_state`` set, umap-learn runs its
    optimisation single-threaded, which is what makes the layout reproducible.
    """
    with quiet_umap():
        return _umap_fit(x, graph, n_components=n_components, min_dist=min_dist, metric=metric, seed=seed,
                         init=init, n_epochs=n_epochs)


_NOGIL: bool | None = None  # whether umap-learn's serial layout epoch releases the GIL (None: not tried yet)


def _release_gil() -> bool:
    """Replace umap-learn's serial layout epoch by the same function compiled with ``nogil=True``.

    ``umap.layouts._nb_optimize_layout_euclidean_single_epoch`` is
    ``numba.njit(_optimize_layout_euclidean_single_epoch, fastmath=True, parallel=False)``, the
    function every seeded (single-threaded) fit calls once per epoch. The replacement compiles the
    same Python function with the same flags and ``nogil=True``: identical results, but two fits in
    two threads now run at once. Compiled once per process (~3 s, instead of umap-learn's own
    compile of the same function). Returns False, changing nothing, where this umap-learn version
    lacks those private names; the fits then run one after the other.
    """
    global _NOGIL
    if _NOGIL is None:
        try:
            import numba
            from umap import layouts

            fn = layouts._optimize_layout_euclidean_single_epoch
            if not hasattr(layouts, "_nb_optimize_layout_euclidean_single_epoch"):
                raise AttributeError("_nb_optimize_layout_euclidean_single_epoch")
        except (ImportError, AttributeError):
            _NOGIL = False
        else:
            layouts._nb_optimize_layout_euclidean_single_epoch = numba.njit(fn, fastmath=True, parallel=False, nogil=True)
            _NOGIL = True
    return _NOGIL


def _cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by ``OMP_NUM_THREADS`` when that is set
    (the usual bound on a job's compute threads: Ray sets it to a task's CPUs, so a 1-CPU sweep trial
    runs its fits one after the other; HPC schedulers set it too; torch follows it as well)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:  # unset, or not a number (e.g. "4,2", nested levels): no cap
        return cpus
    return max(1, min(cpus, limit))


def umap_embed_many(x: np.ndarray, graph: KnnGraph, fits: Sequence[dict[str, Any]], *, metric: str, seed: int,
                    threads: int | None = None) -> list[np.ndarray]:
    """Several seeded UMAP fits of the same ``x`` and neighbour graph, side by side in threads.

    fits : keyword arguments of :func:`umap_embed` per fit (``n_components``, ``min_dist``, and
    optionally ``init``, ``n_epochs``). Returns the embeddings in the order of ``fits``, identical to
    calling :func:`umap_embed` for each. ``threads``: at most this many at once (default: one per
    fit, capped by the CPUs this process may use; 1 runs them one after the other).
    """
    workers = min(len(fits), _cpus() if threads is None else threads)
    with quiet_umap():  # here, not per thread: catch_warnings is not thread-safe
        if workers < 2 or not _release_gil():
            return [_umap_fit(x, graph, metric=metric, seed=seed, **f) for f in fits]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="umap") as pool:
            futures = [pool.submit(_umap_fit, x, graph, metric=metric, seed=seed, **f) for f in fits]
            return [f.result() for f in futures]


def align_to(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotate/reflect ``current`` (n, 2) onto ``previous`` (n, 2) about their centroids (Procrustes,
    no scaling), so an epoch animation shows movement rather than arbitrary rotations.

    Aligned mode (``analysis.aligned``) = this plus initialising each epoch's fit from the previous
    epoch's layout. Chosen over umap-learn's ``AlignedUMAP`` by measurement (``benchmarks/aligned.py``,
    results in ``benchmarks/README.md``): on a digits run and a synthetic drifting sequence AlignedUMAP
    moved samples about half as much between epochs, at the same trustworthiness, but took ~20x the
    CPU time, computes its own neighbour graphs (no sharing with the 10-D fit), and fits all
    epochs of a layer at once, so a new or changed epoch would redo the whole layer, which breaks
    incremental re-analysis.
    """
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
