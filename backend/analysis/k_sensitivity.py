"""Sensitivity of c1 and c3 to k, and of their Kendall coefficients (SCIENCE.md 3.2 "Sensitivity to k",
section 6 figure 2; thesis Fig. 2.5).

Pure: activation arrays in, tables out. The neuron scores (sel and r) are computed once per run and
only the top-k mean changes with k, so a whole curve costs about one c1 and one c3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from backend.analysis.compare import kendall_table
from backend.analysis.measures import _as_layers, _nan_agg, subclass_selectivity, topk_mean, variance_ratio

# The thesis sweeps k from 1 to 900 neurons (networks of 960-2880 units); a run with fewer units
# than k gives the mean over all of its units.
K_VALUES = (1, 2, 5, 10, 20, 30, 50, 100, 200, 500, 900)


def measures_over_k(pres: Sequence[ArrayLike], *, classes: ArrayLike, subclass: ArrayLike | None = None,
                    superclass: ArrayLike | None = None, ks: Sequence[int] = K_VALUES) -> pd.DataFrame:
    """Network-level c1 (when subclasses are given) and c3 at every k of ``ks`` (SCIENCE.md 3.1).

    pres : list of (n_samples, n_units_l) pre-activation arrays, one per ReLU layer (units concatenated).
    classes : (n_samples,) training targets; subclass, superclass : (n_samples,) or None.
    Returns a long table with columns measure ("c1" | "c3"), k, value.
    """
    layers = _as_layers(pres)
    rows = []
    ratios = np.vstack([variance_ratio(p, classes=classes) for p in layers])  # (n_units, n_classes)
    rows += [{"measure": "c3", "k": int(k), "value": _nan_agg(topk_mean(ratios, int(k), axis=0), "mean")} for k in ks]
    if subclass is not None and superclass is not None:
        sel = np.vstack([subclass_selectivity(p, subclass=subclass, superclass=superclass)[0] for p in layers])
        rows += [{"measure": "c1", "k": int(k), "value": _nan_agg(topk_mean(sel, int(k), axis=0), "median")} for k in ks]
    return pd.DataFrame(rows, columns=["measure", "k", "value"])


def tau_over_k(values: pd.DataFrame, runs: pd.DataFrame, hparams: pd.DataFrame, *,
               target: str = "test_accuracy") -> pd.DataFrame:
    """Kendall coefficients of each (measure, k) against ``target`` across runs.

    values : long table run_id, measure, k, value (several runs' :func:`measures_over_k`).
    runs : one row per run with ``run_id`` and ``target``; hparams : same rows, one column per axis
    (may have no column: then only tau and tau_b). Returns measure, k, runs, tau, tau_b and, with
    axes, one psi[axis] column per axis and granulated_total.
    """
    if values.empty:
        return pd.DataFrame(columns=["measure", "k", "runs", "tau", "tau_b", "granulated_total"])
    wide = values.pivot_table(index="run_id", columns=["measure", "k"], values="value", dropna=False)
    order = runs["run_id"].tolist()
    wide = wide.reindex(order)
    rows = []
    for measure, k in wide.columns:
        frame = runs[["run_id", target]].reset_index(drop=True).assign(value=wide[(measure, k)].to_numpy(float))
        row = kendall_table(frame, hparams.reset_index(drop=True), measures=("value",), target=target).iloc[0].to_dict()
        rows.append(row | {"measure": measure, "k": int(k)})
    out = pd.DataFrame(rows)
    return out[["measure", "k", *[c for c in out.columns if c not in ("measure", "k")]]].sort_values(["measure", "k"],
                                                                                                   ignore_index=True)
