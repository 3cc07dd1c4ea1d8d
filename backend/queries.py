"""Read models: the run table and what one run's pages read from the store (metrics, samples, snapshots,
analysis tables, training dynamics, layer rotation), and the data sets runs are compared within.

Read-only and cheap: nothing here trains or analyses, and nothing imports torch at module level (the
Mechanisms page's outgoing-weight norms read one checkpoint when asked). :mod:`backend.api` re-exports these.
Measures and comparisons of several runs: :mod:`backend.queries_compare`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pandas as pd

from backend.errors import StoreError
from backend.liveness import effective_status
from backend.store import RunInfo, RunStore, versions
from backend.store.versions import Token

RUN_COLUMNS = ["run_id", "status", "dataset", "model", "target", "epochs_completed", "epochs",
               "train_accuracy", "test_accuracy", "generalization_gap", "created", "updated", "error"]


def list_runs(store: RunStore) -> pd.DataFrame:
    """One row per run (columns :data:`RUN_COLUMNS`); a run with a corrupt run.json is listed as 'corrupt'."""
    rows: list[dict[str, Any]] = []
    for run_id in store.run_ids():
        try:
            info = store.run_info(run_id)
        except StoreError as exc:
            rows.append({"run_id": run_id, "status": "corrupt", "error": str(exc)})
            continue
        train_acc, test_acc = info.train_accuracy, info.test_accuracy
        rows.append({
            "run_id": run_id,
            "status": effective_status(info.raw),
            "dataset": info.dataset.get("name"),
            "model": info.section("model").get("name"),
            "target": info.section("data").get("target"),
            "epochs_completed": info.epochs_completed,
            "epochs": info.section("train").get("epochs"),
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "generalization_gap": None if train_acc is None or test_acc is None else train_acc - test_acc,
            "created": info.created,
            "updated": info.updated,
            "error": info.error,
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def run_info(store: RunStore, run_id: str) -> RunInfo:
    """The run's run.json as a typed :class:`RunInfo`, with the effective status (a 'running' run whose process
    is gone is 'interrupted', as in :func:`read_run`)."""
    info = store.run_info(run_id)
    return replace(info, status=effective_status(info.raw))


def read_run(store: RunStore, run_id: str) -> dict[str, Any]:
    info = store.read_run(run_id)
    info["status"] = effective_status(info)
    return info


def read_metrics(store: RunStore, run_id: str) -> pd.DataFrame:
    """metrics.parquet as a DataFrame: epoch, split, loss, accuracy, lr (empty before epoch 0 ends)."""
    return store.read_metrics(run_id)


def read_samples(store: RunStore, run_id: str, *, thumbnails: bool = False) -> pd.DataFrame:
    cols = None if thumbnails else ["sample_id", "split", "label", "label_name", "superclass", "superclass_name",
                                    "file_name"]
    return store.read_samples(run_id, columns=cols)


def snapshots(store: RunStore, run_id: str) -> pd.DataFrame:
    """Recorded (layer, epoch) snapshots of a run."""
    return store.snapshots(run_id)


def read_activations(store: RunStore, run_id: str, layer: str, epoch: int) -> tuple[Any, Any]:
    """(sample_ids, values (n_samples, n_units) float32) of one snapshot."""
    return store.read_activations(run_id, layer, epoch)


def read_predictions(store: RunStore, run_id: str, epoch: int) -> pd.DataFrame:
    """predictions/epoch=NNNN.parquet: sample_id, prediction, correct, confidence of the probe set."""
    return store.read_predictions(run_id, epoch)


def read_analysis(store: RunStore, run_id: str, table: str, layer: str | None = None, epoch: int | None = None
                  ) -> pd.DataFrame:
    """One analysis table: per (layer, epoch) when both are given, else every file of it concatenated
    (``network``, ``rotation``, ``baselines`` and ``cka`` are whole-run tables)."""
    if table in ("network", "rotation", "baselines", "cka") or layer is not None:
        return store.analysis.read(run_id, table, layer, epoch)
    return store.analysis.read_all(run_id, table)


def read_analysis_parts(store: RunStore, run_id: str, table: str) -> tuple[pd.DataFrame, list[str]]:
    """Every readable (layer, epoch) file of a per-snapshot table, and a message per corrupt one."""
    corrupt: list[str] = []
    return store.analysis.read_all(run_id, table, corrupt=corrupt), corrupt


def analysis_params(store: RunStore, run_id: str) -> dict[str, Any]:
    """The analysis parameters of the run's network-level table (k_c1, layer_top_k, seed, ...); {} before analysis."""
    return store.analysis.params(run_id, "network")


def analysis_status(store: RunStore, run_id: str) -> dict[str, Any]:
    """analysis/status.json: ``params_hash``, ``errors`` ("layer@epoch" -> message); {} before any analysis."""
    return store.analysis.read_status(run_id)


def has_analysis(store: RunStore, run_id: str) -> bool:
    """Whether any snapshot of the run is analysed (a file of its ``layers`` table); stops at the first file."""
    return store.analysis.has_any(run_id, "layers")


# ---- version tokens (backend.store.versions): what the dashboard keys its caches on


def store_version(store: RunStore) -> Token:
    """Changes when a run is added or removed or any run.json changes (the run table, data sets, sweeps)."""
    return versions.store_version(store)


def run_version(store: RunStore, run_id: str, part: str = "run", *, layer: str | None = None,
                epoch: int | None = None) -> Token:
    """Changes when one part of a run changes: ``run`` (run.json), ``metrics``, ``samples``, ``snapshots``,
    ``activations`` (layer, epoch), ``predictions`` (epoch), ``dynamics`` (layer or none), ``checkpoints``."""
    return versions.run_version(store, run_id, part, layer=layer, epoch=epoch)


def analysis_version(store: RunStore, run_id: str, table: str, layer: str | None = None,
                     epoch: int | None = None) -> Token:
    """Changes when an analysis table's file (one (layer, epoch), a whole-run table, or any file of a table) changes."""
    return versions.analysis_version(store, run_id, table, layer, epoch)


def k_warning(row: Any) -> str | None:
    """A sentence when a network-table row's (or run_measures') k for c1 or c3 covers more than 10 % of
    the network's units, else None (see backend.analysis.caveats)."""
    from backend.analysis.caveats import k_warning as warning

    return warning(row.get("k_c1"), row.get("k_c3"), row.get("n_units"))


def data_set(info: dict[str, Any] | RunInfo) -> str:
    """A run's data set and training target (run config data.name and data.target) as "name/target": test
    accuracies, hence Kendall coefficients, compare runs that share it (SCIENCE.md 6.1)."""
    data = info.section("data") if isinstance(info, RunInfo) else (info.get("config") or {}).get("data") or {}
    return f"{data.get('name')}/{data.get('target')}"


def data_set_label(key: str) -> str:
    """ "digits/superclass" -> "digits (target: superclass)"."""
    name, _, target = key.partition("/")
    return f"{name} (target: {target})"


def data_sets(store: RunStore) -> dict[str, str]:
    """run_id -> :func:`data_set` for every readable run of the store."""
    out = {}
    for run_id in store.run_ids():
        try:
            out[run_id] = data_set(store.run_info(run_id))
        except StoreError:
            continue
    return out


def main_data_set(keys: list[str]) -> str | None:
    """The data set most of ``keys`` share (the first seen among equals); None for no keys."""

    counts = Counter(keys)
    return counts.most_common(1)[0][0] if counts else None


def default_compare_runs(store: RunStore, *, all_data: bool = False) -> tuple[list[str], str | None, dict[str, int]]:
    """The runs ``clusterscope compare`` compares when none are named: (those of the data set and training
    target with the most runs, that data set, {data set: runs} of the runs left out); every run, None and {}
    with ``all_data``."""

    sets = data_sets(store)
    main = main_data_set(list(sets.values()))
    if all_data or main is None:
        return list(sets), None, {}
    return [r for r, k in sets.items() if k == main], main, dict(Counter(k for k in sets.values() if k != main))


def dynamics_layers(store: RunStore, run_id: str) -> list[str]:
    """Layers whose training dynamics were recorded ([dynamics] enabled), in forward order; [] when none."""
    recorded = set(store.dynamics_layers(run_id))
    order = list(store.run_info(run_id).layers)
    return [name for name in order if name in recorded] + sorted(recorded - set(order))


def read_dynamics(store: RunStore, run_id: str, layer: str | None = None) -> pd.DataFrame:
    """dynamics/ as a DataFrame: the layer's recordings (step, epoch, sample_id, unit, pre, grad_sign),
    or with ``layer=None`` the per-sample probe losses (step, epoch, sample_id, loss)."""
    return store.read_dynamics_loss(run_id) if layer is None else store.read_dynamics_units(run_id, layer)


def _outgoing_norms(store: RunStore, run_id: str, layer: str) -> Any:
    """Outgoing-weight norm of each unit of ``layer`` from the last checkpoint (mlp and vgg), else None."""
    from backend.analysis.dynamics import layer_outgoing_norms

    info = store.run_info(run_id)
    names = list(info.layers)
    epochs = store.checkpoint_epochs(run_id)
    if info.model_name not in ("mlp", "vgg") or layer not in names or not epochs:
        return None
    state = store.load_checkpoint(run_id, epochs[-1])
    return layer_outgoing_norms({k: v.numpy() for k, v in state.items() if hasattr(v, "numpy")}, names, layer)


def mechanisms(store: RunStore, run_id: str, layer: str) -> dict[str, pd.DataFrame]:
    """The winner-take-most panel's tables for one recorded layer (see backend.analysis.dynamics.summarise).

    Raises StoreError when the run recorded no dynamics for ``layer`` (enable ``[dynamics]`` to record them).
    """
    from backend.analysis.dynamics import summarise

    units = store.read_dynamics_units(run_id, layer)
    if units.empty:
        raise StoreError(f"run {run_id!r} recorded no training dynamics for layer {layer!r}; train with "
                         "--set dynamics.enabled=true to record them.")
    probe = store.read_dynamics_probe(run_id)
    return summarise(units, probe, loss=store.read_dynamics_loss(run_id), out_norm=_outgoing_norms(store, run_id, layer))


def rotation_runs(store: RunStore, run_ids: list[str]) -> pd.DataFrame:
    """Layer-rotation curves of several runs (SCIENCE.md 3.3, 6.8): the ``rotation`` analysis tables
    concatenated, with columns run_id, test_accuracy, optimizer, lr, epoch, layer, depth, rotation.
    Runs without a rotation table (not analysed yet) are left out."""
    frames = []
    for run_id in run_ids:
        try:
            rot = store.analysis.read(run_id, "rotation")
        except StoreError:
            continue
        info = store.run_info(run_id)
        train = info.section("train")
        frames.append(rot.assign(run_id=run_id, test_accuracy=info.test_accuracy,
                                 optimizer=train.get("optimizer"), lr=train.get("lr")))
    columns = ["run_id", "test_accuracy", "optimizer", "lr", "epoch", "layer", "depth", "rotation"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
