"""Where the analysis computes (``analysis.device``), and the matrix-product forms of its costly steps.

Pure functions: NumPy arrays in, NumPy arrays out; torch is imported inside the functions that use it
and tensors never leave them. ``device`` is a torch device name ("cpu", "cuda", "cuda:1") or None for
the NumPy/scikit-learn path, which stays the default (``analysis.device = "cpu"``).

* :func:`cosine_silhouette_samples`: scikit-learn's ``silhouette_samples(x, labels, metric="cosine")``
  in closed form. The mean cosine distance from a sample to a cluster is 1 minus its unit vector's dot
  product with the mean of the cluster's unit vectors, so one (n, d) x (d, k) product replaces the
  n x n distance matrix: O(n k d) instead of O(n^2 d). Equal to scikit-learn's to 1e-9 (float64;
  tests/test_accel.py), including its conventions: an all-zero row is at distance 1 from every other
  row and 0 from itself, and a sample alone in its cluster scores 0.
* :func:`exact_knn`: the exact k nearest neighbours (cosine or Euclidean) by blocked matrix products and
  top-k on ``device``; what the neighbour graph uses on a GPU instead of NN-descent (exact, so at least
  as good a graph; tests/test_accel.py checks it against scikit-learn's brute force on the CPU).
* :func:`cuml_available`: whether RAPIDS cuML (the ``gpu`` extra, pyproject.toml) can run UMAP and
  HDBSCAN here. **That path has not run on a GPU yet** (docs/config.md, "Devices").
"""

from __future__ import annotations

import numpy as np

from backend.errors import ConfigError

DEVICES = ("cpu", "auto", "cuda")  # analysis.device; "cuda:N" names one GPU


def resolve_device(name: str) -> str | None:
    """The torch device of ``analysis.device``, or None for the NumPy/scikit-learn path.

    "cpu" -> None; "auto" -> "cuda" when torch sees a GPU, else None; "cuda" / "cuda:N" -> itself (a
    ConfigError naming the setting when torch sees no GPU, rather than a silent fall-back to hours of CPU).
    """
    if name == "cpu":
        return None
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else None
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"analysis.device={name!r} but torch sees no CUDA GPU here; "
                             "set analysis.device=\"cpu\" (or \"auto\") to analyse on the CPU.")
        return name
    raise ConfigError(f"analysis.device must be 'cpu', 'auto', 'cuda' or 'cuda:N'; got {name!r}.")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (scikit-learn's ``normalize``)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.where(norms > 0, norms, 1.0)[:, None]


def cosine_silhouette_samples(x: np.ndarray, labels: np.ndarray, *, device: str | None = None) -> np.ndarray:
    """Silhouette of each row of ``x`` (n_samples, n_features) under ``labels`` (n_samples,), cosine distance.

    Returns float64 (n_samples,), as ``sklearn.metrics.silhouette_samples(x, labels, metric="cosine")``.
    ``device``: None computes in NumPy; a torch device name computes the products there in float64.
    Needs 2 <= number of labels <= n_samples - 1 (ValueError otherwise, as scikit-learn).
    """
    ids, inv = np.unique(np.asarray(labels), return_inverse=True)
    n, k = len(inv), len(ids)
    if not 2 <= k <= n - 1:
        raise ValueError(f"labels must have between 2 and n_samples - 1 = {n - 1} distinct values; got {k}.")
    u = _unit_rows(np.asarray(x, dtype=np.float64))
    sums = np.zeros((k, u.shape[1]))
    np.add.at(sums, inv, u)  # (k, d): the sum of each cluster's unit vectors
    if device is None:
        dots = u @ sums.T  # (n, k)
    else:
        import torch

        dots = (torch.from_numpy(u).to(device) @ torch.from_numpy(sums).to(device).T).cpu().numpy()
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


def exact_knn(x: np.ndarray, *, k: int, metric: str, device: str = "cpu", block: int = 2048
              ) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest neighbours of every row of ``x`` (n, d) among the rows, itself included.

    Returns (indices int32 (n, k), distances float32 (n, k)), nearest first; each row starts with the sample
    itself, as UMAP's graph does. "cosine": 1 - cos (all-zero rows at distance 1); "euclidean": L2. Float32
    products on ``device`` in blocks of ``block`` rows (memory block x n floats); ties are broken by the
    smaller index, but float32 rounding can order near-ties otherwise than a float64 search would.
    """
    import torch

    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}.")
    n = x.shape[0]
    k = min(k, n)
    data = np.asarray(x, dtype=np.float64)
    t = torch.from_numpy((_unit_rows(data) if metric == "cosine" else data).astype(np.float32)).to(device)
    sq = (t * t).sum(dim=1)
    idx_out = np.empty((n, k), dtype=np.int32)
    dist_out = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        rows = t[start : start + block]
        prod = rows @ t.T  # (b, n)
        d = 1.0 - prod if metric == "cosine" else (sq[start : start + block, None] - 2 * prod + sq[None, :]).clamp_min(0)
        d[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = -1.0  # itself first
        dist, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
        dist[:, 0] = 0.0
        if metric == "euclidean":
            dist = dist.sqrt()
        idx_out[start : start + len(rows)] = idx.cpu().numpy()
        dist_out[start : start + len(rows)] = dist.clamp_min(0).cpu().numpy()
    return idx_out, dist_out


def cuml_available(device: str | None) -> bool:
    """True when ``device`` is a CUDA device and RAPIDS cuML imports (``pip install clusterscope[gpu]``)."""
    if device is None or not device.startswith("cuda"):
        return False
    try:
        import cuml  # noqa: F401
    except ImportError:
        return False
    return True


def cuml_umap(x: np.ndarray, *, n_neighbors: int, n_components: int, min_dist: float, metric: str, seed: int,
              n_epochs: int | None) -> np.ndarray:
    """UMAP by cuML on the GPU (untested on a GPU: docs/config.md, "Devices"). Spectral initialisation
    always (cuML takes no initial layout: aligned mode only Procrustes-aligns the result); cuML builds its
    own neighbour graph (brute force on the GPU)."""
    from cuml.manifold import UMAP

    model = UMAP(n_neighbors=n_neighbors, n_components=n_components, min_dist=min_dist, metric=metric,
                 random_state=seed, n_epochs=n_epochs, init="spectral")
    return np.asarray(model.fit_transform(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)


def cuml_hdbscan(x: np.ndarray, *, min_cluster_size: int, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN by cuML on the GPU (untested on a GPU): labels int32 (-1 = noise), probabilities float32."""
    from cuml.cluster import HDBSCAN

    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples)
    labels = model.fit_predict(np.ascontiguousarray(x, dtype=np.float32))
    return np.asarray(labels, dtype=np.int32), np.asarray(model.probabilities_, dtype=np.float32)
