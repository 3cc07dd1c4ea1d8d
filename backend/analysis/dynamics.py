"""Neuron-level training dynamics (SCIENCE.md 3.4): average derivative sign, winner-take-most, loss shares.

Inputs are the recordings of ``dynamics/`` (docs/store.md) turned into cubes by :func:`to_cube`:
``pre`` and ``sign`` of shape (n_steps, n_samples, n_units), ``loss`` of shape (n_steps, n_samples).
Everything here is pure numpy/pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from backend.analysis.measures import check_labels
from backend.analysis.neurons import wtm_index
from backend.errors import expected


def to_cube(frame: pd.DataFrame, value: str, *, index: tuple[str, ...] = ("step", "sample_id", "unit")
            ) -> tuple[list[NDArray[np.int64]], NDArray[np.float64]]:
    """A long table (one row per index tuple) -> (index values per axis, dense array).

    frame : columns ``index`` and ``value``; every combination must be present once (the recorder
    writes complete grids). Returns ([steps, sample_ids, units], cube of shape (n_steps, n_samples,
    n_units)), axes sorted ascending.
    """
    axes, codes = [], []
    for col in index:
        uniq, inv = np.unique(frame[col].to_numpy(), return_inverse=True)
        axes.append(uniq.astype(np.int64))
        codes.append(inv)
    shape = tuple(len(a) for a in axes)
    if len(frame) != int(np.prod(shape)):
        raise ValueError(expected("frame", expected=f"one row per ({', '.join(index)}) = {int(np.prod(shape))} rows",
                                  got=f"{len(frame)} rows"))
    cube = np.full(shape, np.nan)
    cube[tuple(codes)] = frame[value].to_numpy(dtype=np.float64)
    return axes, cube


def average_derivative_sign(sign: ArrayLike) -> NDArray[np.float64]:
    """s-bar of SCIENCE.md 3.4: per (sample, unit), the mean over recordings of sign(dL/da), exact zeros ignored.

    sign : (n_steps, n_samples, n_units) in {-1, 0, +1} -> (n_samples, n_units) in [-1, 1]; NaN
    where every recording was 0. -1: raising the activation always helped ("high" category).
    """
    s = np.asarray(sign, dtype=np.float64)
    if s.ndim != 3:
        raise ValueError(expected("sign", expected="an array of shape (n_steps, n_samples, n_units)", got=s.shape))
    nonzero = (s != 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nonzero > 0, s.sum(axis=0) / np.maximum(nonzero, 1), np.nan)


def cluster_means(pre: ArrayLike, *, cluster: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each cluster's mean pre-activation per recording: the winner-take-most curves (SCIENCE.md 3.4).

    pre : (n_steps, n_samples, n_units); cluster : (n_samples,) -> (cluster ids, (n_steps, n_clusters, n_units)).
    """
    x = np.asarray(pre, dtype=np.float64)
    k = check_labels(cluster, name="cluster", n=x.shape[1])
    ids, inv = np.unique(k, return_inverse=True)
    onehot = np.eye(len(ids))[inv]  # (n_samples, n_clusters)
    return ids, np.einsum("tsu,sk->tku", x, onehot) / onehot.sum(axis=0)[None, :, None]


def wtm_trajectory(pre: ArrayLike, *, cluster: ArrayLike, cluster_class: ArrayLike, eps: float = 1e-6) -> NDArray[np.float64]:
    """The [P] WTM index of SCIENCE.md 3.4 (:func:`backend.analysis.neurons.wtm_index`) at every recording.

    pre : (n_steps, n_samples, n_units) -> (n_steps, n_units).
    """
    x = np.asarray(pre, dtype=np.float64)
    return np.stack([wtm_index(x[t], cluster=cluster, cluster_class=cluster_class, eps=eps) for t in range(len(x))])


def loss_share(loss: ArrayLike, *, difficult: ArrayLike) -> NDArray[np.float64]:
    """Share of the probe's total loss carried by the difficult samples, per recording (SCIENCE.md 3.4).

    loss : (n_steps, n_samples) per-sample losses; difficult : (n_samples,) bool -> (n_steps,) in
    [0, 1]; the easy share is 1 minus it. NaN when the total loss is 0.
    """
    x = np.asarray(loss, dtype=np.float64)
    d = np.asarray(difficult, dtype=bool)
    if x.ndim != 2 or d.shape != (x.shape[1],):
        raise ValueError(expected("loss, difficult", expected="shapes (n_steps, n_samples) and (n_samples,)",
                                  got=(x.shape, d.shape)))
    total = x.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, x[:, d].sum(axis=1) / total, np.nan)


def outgoing_weight_norms(weight: ArrayLike) -> NDArray[np.float64]:
    """How the thesis picks neurons to show (SCIENCE.md 3.4): the norm of each unit's outgoing weights
    (|w| for a single output). weight : (n_out, n_units) of the next layer -> (n_units,)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(expected("weight", expected="a 2-D array (n_out, n_units)", got=w.shape))
    return np.linalg.norm(w, axis=0)


def sign_histogram(avg_sign: ArrayLike, *, bins: int = 20) -> pd.DataFrame:
    """Histogram of average derivative signs over every (sample, unit): columns left, right, count, fraction.

    avg_sign : any shape, values in [-1, 1]; NaNs are left out.
    """
    v = np.asarray(avg_sign, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    counts, edges = np.histogram(v, bins=bins, range=(-1.0, 1.0))
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "count": counts,
                         "fraction": counts / max(counts.sum(), 1)})
