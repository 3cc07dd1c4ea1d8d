"""Do the measures predict generalization across runs? Kendall tables (SCIENCE.md 3.2).

Pure: one row per run in, one row per measure out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend.analysis.kendall import axis_groups, granulated_kendall, kendall_tau

# Network-level measures (SCIENCE.md 3.1) and layer-averaged cluster scores (3.5 [P]) compared by default.
# Baselines (analysis/baselines.parquet): c0 ranks as is; the sharpness scales rank as their inverses 1/σ′ ...
# (sharper = larger), the names of the thesis's tables (SCIENCE.md 3.2, after Jiang et al. 2020).
BASELINE_MEASURES = {"c0": "c0", "1/σ′": "sigma_prime", "1/σ″": "sigma_dprime", "1/α′": "alpha_prime",
                     "1/α″": "alpha_dprime"}  # measure -> column of the baselines table
# Representation geometry (SCIENCE.md 7; analysis/layers), each the mean over layers at the last analysed epoch
# (NC3: the one layer that feeds the classifier), ranked as stored. Direction of each: a negative τ for NC1/NC2/NC3
# says that more collapse (a lower value) goes with higher test accuracy; for k-NN, probe and NC4 a positive τ says
# that more separable representations do.
GEOMETRY_DIRECTIONS = {
    "nc1_class": "lower = classes more collapsed", "nc1_subclass": "lower = subclasses more collapsed within their class",
    "nc2_norm_class": "lower = class means closer to equal norms", "nc2_angle_class": "lower = class means closer to a simplex",
    "nc2_norm_subclass": "lower = subclass means closer to equal norms",
    "nc2_angle_subclass": "lower = subclass means closer to a simplex",
    "nc3_class": "lower = classifier rows closer to proportional to the centred class means",
    "nc4_class": "higher = nearest class mean agrees more with the prediction",
    "nc4_subclass": "higher = nearest subclass mean's class agrees more with the prediction",
    "knn_class": "higher = classes more separable by neighbours", "knn_subclass": "higher = subclasses more separable by neighbours",
    "probe_class": "higher = classes more linearly separable", "probe_subclass": "higher = subclasses more linearly separable",
    "twonn_id": "lower = representations on a lower-dimensional manifold",
}
MEASURES = ("c0", "c1", "c2", "c3", "c4", "1/σ′", "1/σ″", "1/α′", "1/α″", "class_purity", "subclass_purity",
            "fragmentation", "ari_subclass", "nmi_subclass", "wtm_fraction", *GEOMETRY_DIRECTIONS)
# An axis along which no two runs share every other setting (a random search's draws): no group, no ψ.
NOT_MEASURABLE = "not measurable: no two runs share the other settings"
NO_AXIS = "no measurable axis"
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
    per hyperparameter axis. With axes, each row also has ``total_axes`` (how many ψ_h the total
    averages) and ``not_measurable`` (the axes, comma-separated, along which no two of the row's runs
    share every other setting: their ψ is NaN and left out of the total; :func:`export_table`).
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
        if not hparams.empty:
            row |= _granulated(values[ok], g[ok], hparams[ok].reset_index(drop=True))
        rows.append(row | accuracy_ties(g[ok]))
    return pd.DataFrame(rows)


def accuracy_ties(g: np.ndarray) -> dict[str, int]:
    """``pairs``: the unordered pairs of runs; ``tied_accuracy``: those tied in the target, which add nothing to
    τ whatever the measure (SCIENCE.md 3.2: 0 in the sum, and in the count unless the measure ties too)."""
    n = len(g)
    tied = int(np.triu(g[:, None] == g[None, :], k=1).sum())
    return {"pairs": n * (n - 1) // 2, "tied_accuracy": tied}


def ties_note(table: pd.DataFrame) -> tuple[str | None, str | None]:
    """(how many pairs of runs tie in test accuracy, a warning when more than half do), for the row of
    the table with the most runs; (None, None) for a table without pairs."""
    if "pairs" not in table or not (table["pairs"] > 0).any():
        return None, None
    row = table.loc[table["pairs"].idxmax()]
    tied, pairs = int(row["tied_accuracy"]), int(row["pairs"])
    note = (f"{tied} of the {pairs} pairs of runs tie in test accuracy (tied_accuracy): such a pair adds nothing to "
            "τ or ψ whatever the measure does; it scores 0 and stays in the count, unless the measure ties too "
            "(SCIENCE.md 3.2).")
    if 2 * tied <= pairs:
        return note, None
    return note, (f"Most pairs of runs ({tied} of {pairs}) tie in test accuracy, so this table says little about the "
                  "measures: those pairs add nothing to any coefficient. Compare runs whose test accuracies differ "
                  "(a harder task, a larger test set).")


def _granulated(m: np.ndarray, g: np.ndarray, hparams: pd.DataFrame) -> dict[str, object]:
    """ψ per axis, the total, how many axes the total averages and the axes that are not measurable."""
    axes = list(hparams.columns)
    if len(m) < 2:  # the measure is missing, not the axes: nothing to call not measurable
        return {f"psi[{axis}]": float("nan") for axis in axes} | {"granulated_total": float("nan"), "total_axes": 0,
                                                                  "not_measurable": ""}
    empty = [a for a, groups in axis_groups(hparams).items() if not groups]
    psi = granulated_kendall(m, g, hparams)
    out: dict[str, object] = {f"psi[{axis}]": float(psi[axis]) for axis in axes}
    return out | {"granulated_total": float(psi["total"]), "total_axes": int(np.isfinite(psi[axes].to_numpy(float)).sum()),
                  "not_measurable": ", ".join(empty)}


def not_measurable(table: pd.DataFrame) -> dict[str, list[str]]:
    """Axis -> the measures (rows of a :func:`kendall_table`) along which it is not measurable."""
    out: dict[str, list[str]] = {}
    if "not_measurable" not in table:
        return out
    for measure, axes in zip(table["measure"], table["not_measurable"], strict=True):
        for axis in (axes.split(", ") if isinstance(axes, str) and axes else []):
            out.setdefault(axis, []).append(measure)
    return out


def export_table(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`kendall_table` as the CLI prints it and writes it to CSV: the ψ cell of an axis that is not
    measurable for that row reads :data:`NOT_MEASURABLE`, and a total over no axis reads "no measurable axis"."""
    out = table.drop(columns=["not_measurable"], errors="ignore").astype(object)
    for axis, measures in not_measurable(table).items():
        out.loc[table["measure"].isin(measures), f"psi[{axis}]"] = NOT_MEASURABLE
    if "total_axes" in table:  # every axis not measurable: say so rather than leave the total empty
        nothing = table["total_axes"].eq(0) & table["not_measurable"].fillna("").ne("")
        out.loc[nothing.fillna(False), "granulated_total"] = NO_AXIS
    return out


def not_measurable_note(table: pd.DataFrame) -> str | None:
    """One sentence naming the axes that are not measurable (for which measures, when not all), or None."""
    axes = not_measurable(table)
    if not axes:
        return None
    every = set(table.loc[table["runs"] >= 2, "measure"])  # the measures with values to rank
    named = [axis if set(ms) == every else f"{axis} (for {', '.join(ms)})" for axis, ms in axes.items()]
    them = "it" if len(named) == 1 else "them"
    return (f"{', '.join(named)}: {NOT_MEASURABLE}; no granulated τ along {them}, and the granulated total "
            f"leaves {them} out (total_axes: how many axes the total averages).")
