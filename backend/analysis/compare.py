"""Do the measures predict generalization across runs? Kendall tables (SCIENCE.md 3.2).

Pure: one row per run in, one row per measure out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend.analysis.kendall import granulated_kendall, kendall_tau

# Network-level measures (SCIENCE.md 3.1) and layer-averaged cluster scores (3.5 [P]) compared by default.
# Baselines (analysis/baselines.parquet): c0 ranks as is; the sharpness scales rank as their inverses 1/σ′ ...
# (sharper = larger), the names of the thesis's tables (SCIENCE.md 3.2, after Jiang et al. 2020).
BASELINE_MEASURES = {"c0": "c0", "1/σ′": "sigma_prime", "1/σ″": "sigma_dprime", "1/α′": "alpha_prime",
                     "1/α″": "alpha_dprime"}  # measure -> column of the baselines table
MEASURES = ("c0", "c1", "c2", "c3", "c4", "1/σ′", "1/σ″", "1/α′", "1/α″", "class_purity", "subclass_purity",
            "fragmentation", "ari_subclass", "nmi_subclass", "wtm_fraction")
IGNORED_AXES = ("run_id", "train.device", "train.seed", "data.root", "data.download")


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}; lists become tuples so they can be grouped."""
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = tuple(value) if isinstance(value, list) else value
    return out


def hyperparameter_axes(configs: Sequence[dict]) -> pd.DataFrame:
    """The config keys whose values differ across runs (snapshot/analysis settings excluded)."""
    flat = pd.DataFrame([flatten(c) for c in configs])
    keep = [c for c in flat.columns if c not in IGNORED_AXES and not c.startswith(("snapshots.", "analysis."))
            and flat[c].astype(str).nunique() > 1]
    return flat[keep]


def kendall_table(runs: pd.DataFrame, hparams: pd.DataFrame, *, measures: Sequence[str] = MEASURES,
                  target: str = "test_accuracy") -> pd.DataFrame:
    """One row per measure: n runs, τ (reference), τ-b, granulated τ per axis (ψ_h) and their mean.

    runs : one row per run with a column per measure and ``target``; hparams : same rows, one column
    per hyperparameter axis.
    """
    rows = []
    g = runs[target].to_numpy(float)
    for m in measures:
        if m not in runs:
            continue
        values = runs[m].to_numpy(float)
        ok = np.isfinite(values) & np.isfinite(g)
        row: dict[str, object] = {"measure": m, "runs": int(ok.sum()), "tau": kendall_tau(values[ok], g[ok]),
                                  "tau_b": kendall_tau(values[ok], g[ok], ties="tau-b")}
        if not hparams.empty and ok.sum() >= 2:
            psi = granulated_kendall(values[ok], g[ok], hparams[ok].reset_index(drop=True))
            row |= {f"psi[{axis}]": v for axis, v in psi.items() if axis != "total"}
            row["granulated_total"] = psi["total"]
        rows.append(row)
    return pd.DataFrame(rows)
