"""Neuron-level training dynamics (SCIENCE.md 3.4): average derivative sign, winner-take-most, loss shares.

Inputs are the recordings of ``dynamics/`` (docs/store.md) turned into cubes by :func:`to_cube`:
``pre`` and ``sign`` of shape (n_steps, n_samples, n_units), ``loss`` of shape (n_steps, n_samples).
Everything here is pure numpy/pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def layer_outgoing_norms(state: Mapping[str, ArrayLike], layer_names: Sequence[str], layer: str
                         ) -> NDArray[np.float64] | None:
    """Outgoing-weight norm of every unit of ``layer`` in a sequential model (mlp, vgg), else None.

    state : parameter name -> array (a ``state_dict`` as numpy); layer_names : the model's probe-able
    layers in order, one per kernel. The kernel after the layer's own one reads its units (axis 1);
    the norm runs over every other axis (SCIENCE.md 3.4: the thesis shows the units with the largest
    outgoing weights). None when that kernel does not exist or does not read one input per unit.
    """
    from backend.analysis.rotation import kernel_names

    kernels = kernel_names(state)
    i = list(layer_names).index(layer) + 1 if layer in layer_names else len(kernels)
    if i >= len(kernels) or len(kernels) != len(layer_names) + 1:
        return None
    w = np.asarray(state[kernels[i]], dtype=np.float64)
    return np.sqrt((np.moveaxis(w, 1, -1).reshape(-1, w.shape[1]) ** 2).sum(axis=0))


def top_units(norms: ArrayLike, n: int) -> NDArray[np.int64]:
    """Indices of the ``n`` units with the largest outgoing-weight norm (ties: lower index), ascending."""
    v = np.asarray(norms, dtype=np.float64)
    return np.sort(np.argsort(-v, kind="stable")[: max(n, 0)]).astype(np.int64)


def sign_histogram(avg_sign: ArrayLike, *, bins: int = 20) -> pd.DataFrame:
    """Histogram of average derivative signs over every (sample, unit): columns left, right, count, fraction.

    avg_sign : any shape, values in [-1, 1]; NaNs are left out.
    """
    v = np.asarray(avg_sign, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    counts, edges = np.histogram(v, bins=bins, range=(-1.0, 1.0))
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "count": counts,
                         "fraction": counts / max(counts.sum(), 1)})


def summarise(units: pd.DataFrame, probe: pd.DataFrame, *, loss: pd.DataFrame | None = None,
              out_norm: ArrayLike | None = None) -> dict[str, pd.DataFrame]:
    """Everything the Mechanisms page shows for one layer, from its ``dynamics/`` tables (docs/store.md).

    units : the layer's recordings (step, epoch, sample_id, unit, pre, grad_sign); probe : the
    probe table (sample_id, label, target, difficulty); loss : the probe-loss recordings (step,
    epoch, sample_id, loss) or None; out_norm : (n_units_in_layer,) outgoing-weight norms or None.
    Clusters are the fine labels and classes the training targets; the WTM index needs more
    clusters than classes (else it is NaN). Returns frames:

    - ``units``: unit, out_norm, wtm_first, wtm_last, rank (1 = shown first: largest outgoing
      weight, else largest final WTM);
    - ``curves``: step, epoch, unit, cluster, target, mean (cluster-mean pre-activation);
    - ``final``: sample_id, unit, pre, target, label (the last recording);
    - ``avg_sign``: sample_id, unit, avg_sign, target;
    - ``wtm``: step, epoch, unit, wtm; ``wtm_fraction``: step, epoch, fraction (WTM > 1), median (WTM index);
    - ``sign_hist``: :func:`sign_histogram` of every (sample, unit) average sign;
    - ``loss_share``: step, epoch, difficult, easy (empty without a difficulty column).
    """
    (steps, sids, unit_ids), pre = to_cube(units, "pre")
    _, sign = to_cube(units, "grad_sign")
    p = probe.set_index("sample_id").loc[sids]
    cluster, target = p["label"].to_numpy(np.int64), p["target"].to_numpy(np.int64)
    epoch_of = units.drop_duplicates("step").set_index("step")["epoch"].loc[steps].to_numpy()
    n_t, n_s, n_u = pre.shape
    if len(np.unique(cluster)) > len(np.unique(target)) >= 2:
        wtm = wtm_trajectory(pre, cluster=cluster, cluster_class=target)
    else:
        wtm = np.full((n_t, n_u), np.nan)
    norms = np.full(n_u, np.nan) if out_norm is None else np.asarray(out_norm, dtype=np.float64)[unit_ids]
    key = norms if np.isfinite(norms).any() else np.nan_to_num(wtm[-1], nan=-np.inf)
    rank = np.empty(n_u, dtype=np.int64)
    rank[np.argsort(-key, kind="stable")] = np.arange(1, n_u + 1)
    cids, means = cluster_means(pre, cluster=cluster)
    cluster_target = pd.Series(target, index=cluster).groupby(level=0).first().loc[cids].to_numpy()
    grid = pd.MultiIndex.from_product([range(n_t), range(len(cids)), range(n_u)], names=["t", "k", "u"]).to_frame(index=False)
    curves = pd.DataFrame({"step": steps[grid["t"]], "epoch": epoch_of[grid["t"]], "unit": unit_ids[grid["u"]],
                           "cluster": cids[grid["k"]], "target": cluster_target[grid["k"]], "mean": means.ravel()})
    sample_unit = pd.MultiIndex.from_product([range(n_s), range(n_u)], names=["s", "u"]).to_frame(index=False)
    final = pd.DataFrame({"sample_id": sids[sample_unit["s"]], "unit": unit_ids[sample_unit["u"]],
                          "pre": pre[-1].ravel(), "target": target[sample_unit["s"]], "label": cluster[sample_unit["s"]]})
    avg = pd.DataFrame({"sample_id": final["sample_id"], "unit": final["unit"],
                        "avg_sign": average_derivative_sign(sign).ravel(), "target": final["target"]})
    step_unit = pd.MultiIndex.from_product([range(n_t), range(n_u)], names=["t", "u"]).to_frame(index=False)
    wtm_frame = pd.DataFrame({"step": steps[step_unit["t"]], "epoch": epoch_of[step_unit["t"]],
                              "unit": unit_ids[step_unit["u"]], "wtm": wtm.ravel()})
    with np.errstate(invalid="ignore"):
        fraction = np.where(np.isnan(wtm).all(axis=1), np.nan, (wtm > 1).mean(axis=1))
    out = {
        "units": pd.DataFrame({"unit": unit_ids, "out_norm": norms, "wtm_first": wtm[0], "wtm_last": wtm[-1],
                               "rank": rank}).sort_values("rank", ignore_index=True),
        "curves": curves, "final": final, "avg_sign": avg, "wtm": wtm_frame,
        "wtm_fraction": pd.DataFrame({"step": steps, "epoch": epoch_of, "fraction": fraction,
                                      "median": np.nanmedian(wtm, axis=1) if np.isfinite(wtm).any() else np.nan}),
        "sign_hist": sign_histogram(avg["avg_sign"].to_numpy()),
        "loss_share": pd.DataFrame(columns=["step", "epoch", "difficult", "easy"]),
    }
    if loss is not None and not loss.empty and "difficulty" in p and p["difficulty"].notna().all():
        (lsteps, lsids), lcube = to_cube(loss, "loss", index=("step", "sample_id"))
        hard = probe.set_index("sample_id").loc[lsids, "difficulty"].to_numpy() > 0
        share = loss_share(lcube, difficult=hard)
        lepoch = loss.drop_duplicates("step").set_index("step")["epoch"].loc[lsteps].to_numpy()
        out["loss_share"] = pd.DataFrame({"step": lsteps, "epoch": lepoch, "difficult": share, "easy": 1.0 - share})
    return out
