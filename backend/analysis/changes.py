"""Neighbourhood change between consecutive snapshots of a layer (SCIENCE.md section 7, [P]).

For sample i between recorded epochs t and t+1: 1 - |N_k^t(i) ∩ N_k^{t+1}(i)| / |N_k^t(i) ∪ N_k^{t+1}(i)|,
N_k the k nearest neighbours (the sample itself excluded) in the layer's full space (the matrix the
analysis embeds: ``backend.analysis.snapshot.representation``), with the analysis's k
(``analysis.n_neighbors``) and metric (``analysis.metric``). 0 = the same neighbours, 1 = none shared.

Pure functions: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

from backend.errors import ClusterScopeError


def knn_indices(x: np.ndarray, *, k: int, metric: str, chunk: int = 2048) -> np.ndarray:
    """The exact k nearest neighbours of every row of ``x`` (n_samples, n_features), itself excluded.

    Returns int64 (n_samples, k), nearest first; ties broken by the smaller row index, so the answer
    does not depend on floating-point noise between equal distances' order. Computed in row chunks of
    ``chunk`` (memory chunk x n_samples).
    """
    from sklearn.metrics import pairwise_distances  # here: the dashboard must not pay for it at start-up

    n = x.shape[0]
    if not 1 <= k < n:
        raise ClusterScopeError(f"neighbourhood change needs 1 <= k < n_samples; got k={k} for {n} samples.")
    out = np.empty((n, k), dtype=np.int64)
    xf = np.asarray(x, dtype=np.float32)
    for start in range(0, n, chunk):
        d = pairwise_distances(xf[start:start + chunk], xf, metric=metric).astype(np.float64)
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # the sample itself
        part = np.argpartition(d, k, axis=1)[:, : k + 1]  # the k nearest plus one, for ties at the border
        pd_ = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, pd_), axis=1)[:, :k]
        out[start:start + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def neighbourhood_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Jaccard distance per row between two neighbour index arrays (n_samples, k) over the same samples.

    Returns float64 (n_samples,) in [0, 1].
    """
    if before.shape != after.shape:
        raise ClusterScopeError(f"neighbour lists must have the same shape; got {before.shape} and {after.shape}.")
    k = before.shape[1]
    both = np.sort(np.concatenate([before, after], axis=1), axis=1)  # each row's own lists hold no repeats
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return 1.0 - shared / (2 * k - shared)
