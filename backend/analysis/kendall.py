"""Kendall coefficients that score a measure against generalization (SCIENCE.md 3.2).

m is a measure and g the target (test accuracy), one value per model, arrays of shape (n_models,).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import kendalltau

from backend.errors import expected

TIES = ("reference", "tau-b")
_MISSING = object()  # groups None / NaN / pd.NA hyperparameter values together


def _pair(m: ArrayLike, g: ArrayLike, *, names: tuple[str, str] = ("m", "g")) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a, b = np.asarray(m, dtype=np.float64), np.asarray(g, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(expected(names[0], expected="a 1-D array (one value per model)", got=a.shape))
    if b.shape != a.shape:
        raise ValueError(expected(names[1], expected=f"a 1-D array as long as {names[0]} ({len(a)})", got=b.shape))
    return a, b


def kendall_tau(m: ArrayLike, g: ArrayLike, *, ties: str = "reference") -> float:
    """Kendall coefficient between a measure and the target (SCIENCE.md 3.2).

    m, g : (n_models,). Models whose m or g is not finite are left out; fewer than 2 left gives NaN.
    ties="reference" [C]: tau = (1/|P|) sum_{(i,j) in P} sign(m_i - m_j) sign(g_i - g_j) over ordered
      pairs, with sign(0) := +1 (the reference code's quirk: a tie in m alone scores 0 over the two
      orders, a tie in both would score +1). Like the reference code (``(m1,t1) != (m2,t2)``), P
      leaves out every pair whose (m, g) values coincide exactly, the self-pairs included; without
      such duplicates P is all ordered pairs of distinct models. NaN when P is empty.
    ties="tau-b" [P]: scipy.stats.kendalltau (tau-b); NaN when m or g is constant.
    """
    if ties not in TIES:
        raise ValueError(expected("ties", expected=f"one of {TIES}", got=ties))
    a, b = _pair(m, g)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2:
        return float("nan")
    if ties == "tau-b":
        return float("nan") if np.ptp(a) == 0 or np.ptp(b) == 0 else float(kendalltau(a, b).statistic)
    da, db = a[:, None] - a[None, :], b[:, None] - b[None, :]
    agree = np.where(da >= 0, 1, -1) * np.where(db >= 0, 1, -1)
    in_p = (da != 0) | (db != 0)
    return float(agree[in_p].mean()) if in_p.any() else float("nan")


def _key(value: Any) -> Hashable:
    if np.ndim(value) == 0 and pd.isna(value):
        return _MISSING
    if not isinstance(value, Hashable):
        raise ValueError(expected("hparams", expected="scalar values", got=type(value).__name__))
    return value


def granulated_kendall(measure: ArrayLike, target: ArrayLike, hparams: pd.DataFrame, *, ties: str = "reference") -> pd.Series:
    """Granulated Kendall coefficient (Jiang et al. 2020; SCIENCE.md 3.2).

    measure, target : (n_models,); hparams : DataFrame with one row per model (same order) and one
    column per hyperparameter axis; values may be numbers, strings, bools or missing (None / NaN
    compare equal to each other). For each axis h the models sharing every *other* column's value
    form a group; :func:`kendall_tau` is computed in each group of >= 2 models (NaN results
    skipped) and averaged into psi_h (NaN if no group). Returns a float Series indexed by the
    columns plus "total" = mean of the non-NaN psi_h (the thesis's total column).
    """
    m, g = _pair(measure, target, names=("measure", "target"))
    if not isinstance(hparams, pd.DataFrame) or hparams.shape[1] == 0 or len(hparams) != len(m):
        got = hparams.shape if isinstance(hparams, pd.DataFrame) else type(hparams).__name__
        raise ValueError(expected("hparams", expected=f"a DataFrame with >= 1 column and {len(m)} rows (one per model)", got=got))
    cols = list(hparams.columns)
    if "total" in cols or len(set(cols)) != len(cols):
        raise ValueError(expected("hparams columns", expected="unique names other than 'total'", got=cols))
    psi = {}
    for h, groups in axis_groups(hparams).items():
        taus = np.array([kendall_tau(m[idx], g[idx], ties=ties) for idx in groups])
        psi[h] = float(taus[~np.isnan(taus)].mean()) if (~np.isnan(taus)).any() else float("nan")
    values = np.array(list(psi.values()))
    psi["total"] = float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")
    return pd.Series(psi, dtype=np.float64, name="granulated_tau")


def axis_groups(hparams: pd.DataFrame) -> dict[str, list[list[int]]]:
    """For each column h of ``hparams`` (one row per model), the groups of >= 2 row positions that share
    every *other* column's value (missing values equal each other): the groups the granulated Kendall
    coefficient averages over (SCIENCE.md 3.2, step 1). An empty list: no two models differ in h alone."""
    cols = list(hparams.columns)
    keys = {c: [_key(v) for v in hparams[c].to_numpy(dtype=object)] for c in cols}
    out = {}
    for h in cols:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in range(len(hparams)):
            groups[tuple(keys[c][i] for c in cols if c != h)].append(i)
        out[h] = [idx for idx in groups.values() if len(idx) >= 2]
    return out
