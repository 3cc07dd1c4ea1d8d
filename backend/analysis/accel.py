"""The closed forms of the analysis's costly steps: NumPy arrays in, NumPy arrays out.

* :func:`cosine_silhouette_samples`: scikit-learn's ``silhouette_samples(x, labels, metric="cosine")``
  in closed form. The mean cosine distance from a sample to a cluster is 1 minus its unit vector's dot
  product with the mean of the cluster's unit vectors, so one (n, d) x (d, k) product replaces the
  n x n distance matrix: O(n k d) instead of O(n^2 d). Equal to scikit-learn's to 1e-9 (float64;
  tests/test_accel.py), including its conventions: an all-zero row is at distance 1 from every other
  row and 0 from itself, and a sample alone in its cluster scores 0.

The analysis runs on the CPU. Its GPU path (an exact neighbour graph by matrix products in torch on a CUDA
device, UMAP and HDBSCAN by RAPIDS cuML) is kept on the branch ``gpu-analysis`` until it has run on a GPU
(docs/config.md, "Devices").
"""

from __future__ import annotations

import numpy as np


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (scikit-learn's ``normalize``)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.where(norms > 0, norms, 1.0)[:, None]


def cosine_silhouette_samples(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Silhouette of each row of ``x`` (n_samples, n_features) under ``labels`` (n_samples,), cosine distance.

    Returns float64 (n_samples,), as ``sklearn.metrics.silhouette_samples(x, labels, metric="cosine")``.
    Needs 2 <= number of labels <= n_samples - 1 (ValueError otherwise, as scikit-learn).
    """
    ids, inv = np.unique(np.asarray(labels), return_inverse=True)
    n, k = len(inv), len(ids)
    if not 2 <= k <= n - 1:
        raise ValueError(f"labels must have between 2 and n_samples - 1 = {n - 1} distinct values; got {k}.")
    u = _unit_rows(np.asarray(x, dtype=np.float64))
    sums = np.zeros((k, u.shape[1]))
    np.add.at(sums, inv, u)  # (k, d): the sum of each cluster's unit vectors
    dots = u @ sums.T  # (n, k)
    size = np.bincount(inv, minlength=k).astype(np.float64)
    total = size[None, :] - dots  # (n, k): summed distance from each sample to each cluster, itself included
    intra = total[np.arange(n), inv] - (1.0 - np.einsum("ij,ij->i", u, u))  # less its distance to itself (0)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = intra / (size[inv] - 1)
        mean_to = total / size[None, :]
        mean_to[np.arange(n), inv] = np.inf
        inter = mean_to.min(axis=1)
        sil = (inter - intra) / np.maximum(intra, inter)
    sil[size[inv] == 1] = 0.0  # alone in its cluster (scikit-learn's convention)
    return np.nan_to_num(sil)
