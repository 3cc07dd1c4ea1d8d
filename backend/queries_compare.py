"""Read models that compare runs: each run's measures at its last analysed epoch, the Kendall tables of
several runs or of a sweep (SCIENCE.md 3.2, 6.1), the sweeps found in the store, and c1/c3 over k.

Read-only: the tables come from the analysis files; the Kendall coefficients from backend.analysis.compare
(imported when asked: it loads SciPy). :mod:`backend.api` re-exports these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backend.errors import ClusterScopeError, StoreError
from backend.liveness import effective_status
from backend.store import RunStore

# Columns beside the measures in run_measures and compare's runs table: not measures, not hyperparameters.
MEASURE_CONTEXT = ("c1_shuffled", "c2_shuffled", "k_c1", "k_c3", "n_units")


def run_measures(store: RunStore, run_id: str) -> dict[str, Any]:
    """Measures of a run at its last analysed epoch: network c1..c4, layer-averaged cluster scores and geometry
    (SCIENCE.md 7: NC1, NC2, NC4, k-NN and probe accuracy, TwoNN; analysis.compare.GEOMETRY_DIRECTIONS), the
    baselines c0, 1/σ′, 1/σ″, 1/α′, 1/α″ (NaN when analysis/baselines.parquet is absent, as in version-1 stores),
    then (:data:`MEASURE_CONTEXT`) c1's and c2's noise floors, k of c1 and c3 and the network's units."""
    from backend.analysis.compare import GEOMETRY_DIRECTIONS, MEASURES

    out: dict[str, Any] = {m: float("nan") for m in (*MEASURES, *MEASURE_CONTEXT)}
    try:
        net = store.analysis.read(run_id, "network")
    except StoreError:
        return out | _baselines_at(store, run_id, None) | {"epoch": None}
    layers = store.analysis.read_all(run_id, "layers")
    epoch = int(net["epoch"].max()) if not net.empty else None
    out |= _baselines_at(store, run_id, epoch)
    if epoch is None:
        return out | {"epoch": None}
    row = net[net["epoch"] == epoch].iloc[0]
    out |= {m: float(row[m]) for m in ("c1", "c2", "c3", "c4")}
    out |= {m: float(row[m]) for m in MEASURE_CONTEXT if m in row}  # noise floors, k and units (store version 2)
    last = layers[layers["epoch"] == epoch]
    for m in ("class_purity", "subclass_purity", "fragmentation", "ari_subclass", "nmi_subclass", "wtm_fraction",
              *GEOMETRY_DIRECTIONS):  # geometry (SCIENCE.md 7): NaN for a version-2 analysis
        out[m] = float(last[m].mean()) if not last.empty else float("nan")
    return out | {"epoch": epoch}


def _baselines_at(store: RunStore, run_id: str, epoch: int | None) -> dict[str, float]:
    """c0 and the inverse sharpness scales at ``epoch`` (the last baselines epoch when None); {} when absent."""
    from backend.analysis.compare import BASELINE_MEASURES

    try:
        table = store.analysis.read(run_id, "baselines")
    except StoreError:
        return {}
    rows = table[table["epoch"] == (int(table["epoch"].max()) if epoch is None and not table.empty else epoch)]
    if rows.empty:
        return {}
    row = rows.iloc[0]
    values = {m: float(row[c]) for m, c in BASELINE_MEASURES.items()}
    return {m: v if m == "c0" else (1.0 / v if v != 0 else float("nan")) for m, v in values.items()}


def compare(store: RunStore, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, table): each run's measures and test accuracy, and the Kendall table of every measure."""
    if len(run_ids) < 2:
        raise ClusterScopeError(f"compare needs at least 2 runs; got {len(run_ids)}. List runs with `clusterscope runs`.")
    return _compare_runs(store, run_ids)


def _compare_runs(store: RunStore, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of :func:`compare` and :func:`compare_sweep`: one hyperparameter column per config key
    that differs between the runs (compare.hyperparameter_axes), so the same runs give the same table."""
    from backend.analysis.compare import hyperparameter_axes, kendall_table

    infos = [store.read_run(r) for r in run_ids]
    runs = _measure_rows(store, run_ids, infos)
    hparams = hyperparameter_axes([i.get("config") or {} for i in infos])
    return pd.concat([runs, hparams], axis=1), kendall_table(runs, hparams)


def _measure_rows(store: RunStore, run_ids: list[str], infos: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: run_id, its final test accuracy and its measures (:func:`run_measures`)."""
    rows = []
    for run_id, info in zip(run_ids, infos, strict=True):
        final = info.get("final") or {}
        rows.append({"run_id": run_id, "test_accuracy": final.get("test_accuracy", float("nan")),
                     **run_measures(store, run_id)})
    return pd.DataFrame(rows)


def mixed_data(runs: pd.DataFrame) -> str | None:
    """A warning when the runs table of :func:`compare` mixes data sets or training targets, else None."""
    cols = [c for c in ("data.name", "data.target") if c in runs.columns]
    if not cols:
        return None
    keys = runs[cols].astype(str).apply(lambda row: ", ".join(f"{c}={v}" for c, v in row.items()), axis=1)
    counts = "; ".join(f"{k}: {n} run{'s' if n > 1 else ''}" for k, n in keys.value_counts(sort=False).items())
    return (f"these runs mix data sets or training targets ({counts}). Test accuracies of different data sets "
            "are not comparable, so Kendall coefficients across them mix what the thesis keeps apart "
            "(SCIENCE.md 6.1); compare the runs of one data set.")


def kendall_export(table: pd.DataFrame) -> pd.DataFrame:
    """A Kendall table of :func:`compare` as the CLI prints it and writes CSV: each ψ cell of an axis that
    is not measurable reads "not measurable: no two runs share the other settings" (analysis.compare)."""
    from backend.analysis.compare import export_table

    return export_table(table)


def kendall_notes(table: pd.DataFrame) -> dict[str, str | None]:
    """What a reader of a Kendall table of :func:`compare` must know, as sentences (None when nothing to say):
    ``not_measurable``, the axes without a granulated τ; ``ties``, how many pairs of runs tie in test
    accuracy; ``ties_warning``, when more than half do (the table then says little)."""
    from backend.analysis.compare import not_measurable_note, ties_note

    ties, warning = ties_note(table)
    return {"not_measurable": not_measurable_note(table), "ties": ties, "ties_warning": warning}


SWEEP_COLUMNS = ["sweep", "runs", "complete", "failed", "axes"]


def _sweep_records(store: RunStore) -> dict[str, list[tuple[str, dict[str, Any], str]]]:
    """sweep name -> [(run_id, run.json "sweep" record, effective status)], in trial order."""
    out: dict[str, list[tuple[str, dict[str, Any], str]]] = {}
    for run_id in store.run_ids():
        try:
            info = store.read_run(run_id)
        except StoreError:
            continue
        record = info.get("sweep")
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            out.setdefault(record["name"], []).append((run_id, record, effective_status(info)))
    for members in out.values():
        members.sort(key=lambda m: (m[1].get("trial", 0), m[0]))
    return out


def list_sweeps(store: RunStore) -> pd.DataFrame:
    """One row per sweep found in the store's run.json files (columns :data:`SWEEP_COLUMNS`)."""
    rows = []
    for name, members in sorted(_sweep_records(store).items()):
        axes = list(dict.fromkeys(a for _, rec, _ in members for a in (rec.get("axes") or {})))
        rows.append({"sweep": name, "runs": len(members), "complete": sum(s == "complete" for *_, s in members),
                     "failed": sum(s == "failed" for *_, s in members), "axes": ", ".join(axes)})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def sweep_runs(store: RunStore, name: str) -> pd.DataFrame:
    """The runs of sweep ``name``: run_id, status and one column per sweep axis (a linked axis's values
    joined as "a / b"). Raises ClusterScopeError naming the sweeps present when there is none by that name."""
    records = _sweep_records(store)
    if name not in records:
        known = ", ".join(sorted(records)) or "none"
        raise ClusterScopeError(f"no sweep named {name!r} in store {str(store.root)!r} (sweeps present: {known}); "
                                "run one with `clusterscope sweep SWEEP.toml`.")
    rows = []
    for run_id, record, status in records[name]:
        axes = {a: " / ".join(map(str, v)) if isinstance(v, list) else v for a, v in (record.get("axes") or {}).items()}
        rows.append({"run_id": run_id, "status": status, **axes})
    return pd.DataFrame(rows)


def compare_sweep(store: RunStore, name: str, run_ids: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`compare` over the complete runs of sweep ``name`` (only those of ``run_ids`` when given): the
    same table as ``compare`` of those runs, one hyperparameter column per config key that differs between
    them (a linked sweep axis such as "train.lr,train.weight_decay" gives one column per key, as in the
    thesis's tables; ``train.seed`` counts as a replicate, not an axis)."""
    members = sweep_runs(store, name)
    if run_ids is not None:
        members = members[members["run_id"].isin(run_ids)]
    done = members[members["status"] == "complete"].reset_index(drop=True)
    if len(done) < 2:
        raise ClusterScopeError(f"sweep {name!r} has {len(done)} complete run(s) of {len(members)}; compare needs at "
                                "least 2. Finish it with `clusterscope sweep SWEEP.toml` (it resumes).")
    return _compare_runs(store, done["run_id"].tolist())


def k_sensitivity(store: RunStore, run_ids: list[str], ks: tuple[int, ...] | None = None) -> pd.DataFrame:
    """c1 and c3 at several k (SCIENCE.md 3.2, thesis Fig. 2.5) for each run at its last analysed epoch.

    Long table: run_id, epoch, measure, k, value, units (the run's number of ReLU units) and
    subclass_ratio (subclasses per class: the thesis's x5 for c1's k on CIFAR-100 superclasses).
    A run that is not analysed, or whose activations are missing, is left out.
    """

    from backend.analysis.k_sensitivity import K_VALUES, measures_over_k
    from backend.analysis.labels import probe_labels

    parts = []
    for run_id in run_ids:
        epoch = run_measures(store, run_id).get("epoch")
        if epoch is None:
            continue
        info = store.read_run(run_id)
        samples = store.read_samples(run_id, columns=["sample_id", "split", "label", "superclass"])
        labels = probe_labels(samples, info)
        t = labels.train if labels.train.any() else np.ones_like(labels.train)
        try:
            pres = [store.read_activations(run_id, layer["name"], epoch)[1][t] for layer in info.get("layers", [])]
        except StoreError:
            continue
        if not pres or any(not np.isfinite(p).all() for p in pres):
            continue
        # as the network table does (pipeline._network_measures): c1 only for runs trained on superclasses
        sub = labels.subclass[t] if labels.intraclass else None  # type: ignore[index]
        sup = labels.superclass[t] if labels.intraclass else None  # type: ignore[index]
        table = measures_over_k(pres, classes=labels.classes[t], subclass=sub, superclass=sup, ks=ks or K_VALUES)
        ratio = len(np.unique(sub)) / len(np.unique(labels.classes[t])) if sub is not None else float("nan")
        parts.append(table.assign(run_id=run_id, epoch=epoch, units=sum(p.shape[1] for p in pres), subclass_ratio=ratio))
    cols = ["run_id", "epoch", "measure", "k", "value", "units", "subclass_ratio"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def tau_over_k(values: pd.DataFrame, runs: pd.DataFrame, hparams: pd.DataFrame) -> pd.DataFrame:
    """Kendall and granulated Kendall coefficients of c1 and c3 at every k (see backend.analysis.k_sensitivity)."""
    from backend.analysis.k_sensitivity import tau_over_k as table

    return table(values, runs, hparams)
