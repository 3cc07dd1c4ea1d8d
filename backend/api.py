"""The backend's public facade: what the dashboard (``app/``) and users' scripts call.

Reading the store is cheap and never imports torch; training, resuming and the demo builder
import the training stack lazily, so the dashboard starts fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from backend.analysis.caveats import K_SHARE_LIMIT  # noqa: F401 - re-exported for the app
from backend.config import AnalysisConfig, RunConfig
from backend.deployment import server_paths_allowed, torchscript_allowed
from backend.deployment import why_off as switch_off_reason
from backend.errors import ClusterScopeError, ConfigError, CorruptFileError, DataError, StoreError
from backend.jobs.analyse import analysis_config
from backend.jobs.launch import discard_import_job, import_job_status, launch_import, launch_training
from backend.liveness import effective_status
from backend.store import RunStore

__all__ = [
    "ClusterScopeError", "ConfigError", "CorruptFileError", "DataError", "StoreError", "RunStore", "RunConfig",
    "default_store_root", "open_store", "visitor_text", "list_runs", "read_run", "read_metrics", "read_samples",
    "snapshots", "train", "resume", "demo_status", "analysis_config", "analyze", "run_measures", "compare",
    "kendall_export", "kendall_notes", "data_set", "data_sets", "data_set_label", "main_data_set", "default_compare_runs",
    "mixed_data",
    "read_analysis", "read_activations", "analysis_status", "launch_training", "read_predictions",
    # importing checkpoints
    "torchscript_allowed", "import_checkpoints", "safe_upload_name", "new_import_job", "save_upload", "check_data_zip",
    "launch_import", "import_job_status", "IMPORT_ARCHITECTURES", "server_paths_allowed", "parse_epochs",
    "switch_off_reason", "discard_import_job", "clean_leftovers", "running_jobs", "max_jobs", "cancel_job",
    # training dynamics and layer rotation (SCIENCE.md 3.3, 3.4)
    "dynamics_layers", "read_dynamics", "mechanisms", "rotation_runs",
    # sweeps (docs/sweeps.md)
    "load_sweep", "run_sweep", "list_sweeps", "sweep_runs", "compare_sweep", "k_sensitivity", "tau_over_k",
]

DEFAULT_STORE = Path("data") / "store"
RUN_COLUMNS = ["run_id", "status", "dataset", "model", "target", "epochs_completed", "epochs",
               "train_accuracy", "test_accuracy", "generalization_gap", "created", "updated", "error"]


def default_store_root() -> Path:
    """``$CLUSTERSCOPE_STORE`` if set, else ``data/store`` (relative to the working directory)."""
    return Path(os.environ.get("CLUSTERSCOPE_STORE") or DEFAULT_STORE)


def open_store(root: str | os.PathLike[str] | None = None) -> RunStore:
    return RunStore(root if root is not None else default_store_root())


def list_runs(store: RunStore) -> pd.DataFrame:
    """One row per run (columns :data:`RUN_COLUMNS`); a run with a corrupt run.json is listed as 'corrupt'."""
    rows = []
    for run_id in store.run_ids():
        try:
            info = store.read_run(run_id)
        except StoreError as exc:
            rows.append({"run_id": run_id, "status": "corrupt", "error": str(exc)})
            continue
        cfg = info.get("config", {})
        final = info.get("final") or {}
        train_acc, test_acc = final.get("train_accuracy"), final.get("test_accuracy")
        rows.append({
            "run_id": run_id,
            "status": effective_status(info),
            "dataset": (info.get("dataset") or {}).get("name"),
            "model": (cfg.get("model") or {}).get("name"),
            "target": (cfg.get("data") or {}).get("target"),
            "epochs_completed": info.get("epochs_completed"),
            "epochs": (cfg.get("train") or {}).get("epochs"),
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "generalization_gap": None if train_acc is None or test_acc is None else train_acc - test_acc,
            "created": info.get("created"),
            "updated": info.get("updated"),
            "error": info.get("error"),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def read_run(store: RunStore, run_id: str) -> dict[str, Any]:
    info = store.read_run(run_id)
    info["status"] = effective_status(info)
    return info


def read_metrics(store: RunStore, run_id: str) -> pd.DataFrame:
    """metrics.parquet as a DataFrame: epoch, split, loss, accuracy, lr (empty before epoch 0 ends)."""
    return store.read_metrics(run_id)


def read_samples(store: RunStore, run_id: str, *, thumbnails: bool = False) -> pd.DataFrame:
    cols = None if thumbnails else ["sample_id", "split", "label", "label_name", "superclass", "superclass_name"]
    return store.read_samples(run_id, columns=cols)


def snapshots(store: RunStore, run_id: str) -> pd.DataFrame:
    """Recorded (layer, epoch) snapshots of a run."""
    return store.snapshots(run_id)


def train(cfg: RunConfig, store: RunStore, *, progress: bool = True) -> str:
    """Train a new run; return its id. See :func:`backend.jobs.train.train_run`."""
    from backend.jobs.train import train_run

    return train_run(cfg, store, progress=progress)


def resume(run_id: str, store: RunStore, *, progress: bool = True) -> str:
    from backend.jobs.train import resume_run

    return resume_run(run_id, store, progress=progress)


def demo_base_overrides(data_name: str) -> tuple[str, ...]:
    """The demo run's config overrides for a data set (backend.jobs.demo.base_overrides), for the Runs page's form."""
    from backend.jobs.demo import base_overrides

    return base_overrides(data_name)


def demo_status(store: RunStore) -> dict[str, Any]:
    """Which demo runs exist and whether a demo builder is working on the store right now."""
    from backend.jobs.demo import DEMO_RUNS, builder_active

    present = set(store.run_ids())
    return {"runs": [r.run_id for r in DEMO_RUNS], "present": [r.run_id for r in DEMO_RUNS if r.run_id in present],
            "building": builder_active(store)}


# ------------------------------------------------------------------------------------------ analysis


def analyze(store: RunStore, run_id: str, params: AnalysisConfig | None = None, *,
            progress: Callable[[int, int, str], None] | None = None) -> Any:
    """Analyse the run's missing or stale snapshots; returns an AnalysisReport (see backend.jobs.analyse)."""
    from backend.jobs.analyse import analysis_config, analyze_run

    return analyze_run(store, run_id, params or analysis_config(store, run_id), progress=progress)


def read_analysis(store: RunStore, run_id: str, table: str, layer: str | None = None, epoch: int | None = None
                  ) -> pd.DataFrame:
    """One analysis table: per (layer, epoch) when both are given, else every file of it concatenated
    (``network``, ``rotation`` and ``baselines`` are whole-run tables)."""
    if table in ("network", "rotation", "baselines") or layer is not None:
        return store.analysis.read(run_id, table, layer, epoch)
    return store.analysis.read_all(run_id, table)


# Columns beside the measures in run_measures and compare's runs table: not measures, not hyperparameters.
MEASURE_CONTEXT = ("c1_shuffled", "c2_shuffled", "k_c1", "k_c3", "n_units")


def read_analysis_parts(store: RunStore, run_id: str, table: str) -> tuple[pd.DataFrame, list[str]]:
    """Every readable (layer, epoch) file of a per-snapshot table, and a message per corrupt one."""
    corrupt: list[str] = []
    return store.analysis.read_all(run_id, table, corrupt=corrupt), corrupt


def run_measures(store: RunStore, run_id: str) -> dict[str, Any]:
    """Measures of a run at its last analysed epoch: network c1..c4, layer-averaged cluster scores and the
    baselines c0, 1/σ′, 1/σ″, 1/α′, 1/α″ (NaN when analysis/baselines.parquet is absent, as in version-1 stores),
    then (:data:`MEASURE_CONTEXT`) c1's and c2's noise floors, k of c1 and c3 and the network's units."""
    from backend.analysis.compare import MEASURES

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
    for m in ("class_purity", "subclass_purity", "fragmentation", "ari_subclass", "nmi_subclass", "wtm_fraction"):
        out[m] = float(last[m].mean()) if not last.empty else float("nan")
    return out | {"epoch": epoch}


def intraclass_reason(info: dict[str, Any]) -> str | None:
    """None when c1, c2, subclass purity and WTM are the thesis's measures for this run (trained on
    superclasses), else one sentence saying why they are left out (see backend.jobs.analyse)."""
    from backend.analysis.caveats import intraclass_reason as reason

    return reason(info)


def analysis_params(store: RunStore, run_id: str) -> dict[str, Any]:
    """The analysis parameters of the run's network-level table (k_c1, layer_top_k, seed, ...); {} before analysis."""
    return store.analysis.params(run_id, "network")


def layer_k_warning(k: int, units: dict[str, int]) -> str | None:
    """A sentence when the layer-wise c1/c3's k covers more than 10 % of a layer's units (backend.analysis.caveats)."""
    from backend.analysis.caveats import layer_k_warning as warning

    return warning(k, units)


def k_warning(row: Any) -> str | None:
    """A sentence when a network-table row's (or run_measures') k for c1 or c3 covers more than 10 % of
    the network's units, else None (see backend.analysis.caveats)."""
    from backend.analysis.caveats import k_warning as warning

    return warning(row.get("k_c1"), row.get("k_c3"), row.get("n_units"))


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


def data_set(info: dict[str, Any]) -> str:
    """A run's data set and training target (run config data.name and data.target) as "name/target": test
    accuracies, hence Kendall coefficients, compare runs that share it (SCIENCE.md 6.1)."""
    data = (info.get("config") or {}).get("data") or {}
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
            out[run_id] = data_set(store.read_run(run_id))
        except StoreError:
            continue
    return out


def main_data_set(keys: list[str]) -> str | None:
    """The data set most of ``keys`` share (the first seen among equals); None for no keys."""
    from collections import Counter

    counts = Counter(keys)
    return counts.most_common(1)[0][0] if counts else None


def default_compare_runs(store: RunStore, *, all_data: bool = False) -> tuple[list[str], str | None, dict[str, int]]:
    """The runs ``clusterscope compare`` compares when none are named: (those of the data set and training
    target with the most runs, that data set, {data set: runs} of the runs left out); every run, None and {}
    with ``all_data``."""
    from collections import Counter

    sets = data_sets(store)
    main = main_data_set(list(sets.values()))
    if all_data or main is None:
        return list(sets), None, {}
    return [r for r, k in sets.items() if k == main], main, dict(Counter(k for k in sets.values() if k != main))


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


def read_activations(store: RunStore, run_id: str, layer: str, epoch: int) -> tuple[Any, Any]:
    """(sample_ids, values (n_samples, n_units) float32) of one snapshot."""
    return store.read_activations(run_id, layer, epoch)


def analysis_status(store: RunStore, run_id: str) -> dict[str, Any]:
    """analysis/status.json: ``params_hash``, ``errors`` ("layer@epoch" -> message); {} before any analysis."""
    return store.analysis.read_status(run_id)


def read_predictions(store: RunStore, run_id: str, epoch: int) -> pd.DataFrame:
    """predictions/epoch=NNNN.parquet: sample_id, prediction, correct, confidence of the probe set."""
    return store.read_predictions(run_id, epoch)


# ------------------------------------------------------------------------------------------ importing checkpoints
# Bring your own checkpoints (docs/import.md): files are read with torch.load(weights_only=True) or safetensors,
# TorchScript only when trusted and allowed; the run is built in a staging folder and published whole.

IMPORT_ARCHITECTURES = ("auto", "mlp", "vgg", "resnet", "tv:<torchvision name>")


def is_torchscript(file: BinaryIO) -> bool:
    """Whether an uploaded checkpoint (a seekable binary file) is a TorchScript archive: a zip with a ``code/``
    folder (backend.importing.checkpoints.detect_format). Reads the zip's directory only; rewinds the file."""
    import zipfile

    try:
        file.seek(0)
        if file.read(4) != b"PK\x03\x04":
            return False
        with zipfile.ZipFile(file) as zf:
            return any("/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        file.seek(0)


_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~])/(?:[^\s/'\"`()\[\]{},;]+/)*[^\s/'\"`()\[\]{},;]*")


def visitor_text(text: str, store_root: Path | str | None = None) -> str:
    """``text`` as a page may show it to a visitor: no path of the server (issue 13, docs/security.md).

    An absolute path under ``store_root`` becomes its part inside the store (``run/analysis/...``), any other
    absolute path its last component; the rest of the message (which input, what was expected, what to do)
    is kept. The server's log keeps the full text.
    """
    root = str(Path(store_root).resolve()) if store_root is not None else None

    def redact(match: re.Match[str]) -> str:
        path = match.group(0).rstrip(".:")
        tail = match.group(0)[len(path):]
        if root and (path == root or path.startswith(root + "/")):
            inner = path[len(root):].lstrip("/")
            return (f"<store>/{inner}" if inner else "<store>") + tail
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return (f".../{name}" if name else "<server path>") + tail

    return _ABSOLUTE_PATH.sub(redact, text)


EPOCH_NUMBER_MAX = 2**31 - 1  # epochs are int32 in the store's tables


def parse_epochs(text: str | None, *, what: str = "epochs") -> list[int] | None:
    """``"0,5,10"`` -> [0, 5, 10]; None for an empty or missing text. ``what`` names the input in the error."""
    if not text:
        return None
    try:
        epochs = [int(e) for e in text.split(",")]
    except ValueError:
        raise ClusterScopeError(f"{what} must be integers separated by commas, e.g. 0,5,10; got {text!r}.") from None
    bad = [e for e in epochs if not 0 <= e <= EPOCH_NUMBER_MAX]
    if bad:
        raise ClusterScopeError(f"{what} must be epoch (or step) numbers in [0, {EPOCH_NUMBER_MAX}]; got {bad[0]}. "
                                "Give the numbers the checkpoints were saved at.")
    return epochs


def safe_upload_name(name: str) -> str:
    """An uploaded file's name reduced to a safe file name: its last component, other characters as '_'."""
    import re

    base = re.split(r"[/\\]", str(name))[-1]
    safe = re.sub(r"[^A-Za-z0-9._=-]", "_", base)[-128:].lstrip("._-=")
    if not safe or safe.strip(".") == "":
        raise ClusterScopeError(f"uploaded file name {name!r} has no usable characters; rename the file.")
    return safe


def new_import_job(store: RunStore) -> str:
    """A fresh job id (its folder holds the uploads and status.json of one import)."""
    import uuid
    from datetime import UTC, datetime

    store.ensure_writable()
    return f"import-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def save_upload(store: RunStore, job_id: str, name: str, data: bytes) -> Path:
    """Store uploaded bytes for job ``job_id`` under a validated name; return the path."""
    return store.save_upload(job_id, safe_upload_name(name), data)


def check_data_zip(path: Path, label: str = "") -> int:
    """Check an image-folder zip without extracting it (see backend.importing.zipsafe); return its file count."""
    from backend.importing.zipsafe import check_zip

    return len(check_zip(Path(path), label=label or None))


def clean_leftovers(store: RunStore) -> list[Path]:
    """Remove what killed imports left in the store (uploads, staging and extraction folders, data sets no run
    uses); return the removed paths. ``clusterscope app`` runs it before serving."""
    from backend.importing.leftovers import clean

    return clean(store)


def running_jobs(store: RunStore) -> list[dict[str, Any]]:
    """The training and import jobs started from the page that still run: kind ('train', 'import'), id, pid,
    started, log; oldest first."""
    from backend.jobs.launch import running

    return running(store)


def max_jobs() -> int:
    """How many jobs the page may run at once (``CLUSTERSCOPE_MAX_JOBS``, default one per two cores)."""
    from backend.jobs.launch import max_jobs as cap

    return cap()


def cancel_job(store: RunStore, kind: str, ident: str) -> bool:
    """Stop a job started from the page (SIGTERM to its process group) and mark it cancelled: a training run's
    status becomes 'cancelled' (continue it with ``clusterscope train --resume``), an import job's state too.
    False when the job was not running."""
    from backend.jobs.launch import cancel

    return cancel(store, kind, ident)


# ------------------------------------------------------------------------------------------ training dynamics


def dynamics_layers(store: RunStore, run_id: str) -> list[str]:
    """Layers whose training dynamics were recorded ([dynamics] enabled), in forward order; [] when none."""
    recorded = set(store.dynamics_layers(run_id))
    order = [layer["name"] for layer in store.read_run(run_id).get("layers") or []]
    return [name for name in order if name in recorded] + sorted(recorded - set(order))


def read_dynamics(store: RunStore, run_id: str, layer: str | None = None) -> pd.DataFrame:
    """dynamics/ as a DataFrame: the layer's recordings (step, epoch, sample_id, unit, pre, grad_sign),
    or with ``layer=None`` the per-sample probe losses (step, epoch, sample_id, loss)."""
    return store.read_dynamics_loss(run_id) if layer is None else store.read_dynamics_units(run_id, layer)


def _outgoing_norms(store: RunStore, run_id: str, layer: str) -> Any:
    """Outgoing-weight norm of each unit of ``layer`` from the last checkpoint (mlp and vgg), else None."""
    from backend.analysis.dynamics import layer_outgoing_norms

    info = store.read_run(run_id)
    names = [x["name"] for x in info.get("layers") or []]
    epochs = store.checkpoint_epochs(run_id)
    if (info.get("model") or {}).get("name") not in ("mlp", "vgg") or layer not in names or not epochs:
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
        info = store.read_run(run_id)
        train = (info.get("config") or {}).get("train") or {}
        frames.append(rot.assign(run_id=run_id, test_accuracy=(info.get("final") or {}).get("test_accuracy"),
                                 optimizer=train.get("optimizer"), lr=train.get("lr")))
    columns = ["run_id", "test_accuracy", "optimizer", "lr", "epoch", "layer", "depth", "rotation"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


# ------------------------------------------------------------------------------------------ sweeps


def load_sweep(path: str | os.PathLike[str]) -> Any:
    """Read and validate a sweep file (see :mod:`backend.jobs.sweep_spec`); raises ConfigError naming the key."""
    from backend.jobs.sweep_spec import load_sweep as load

    return load(path)


def run_sweep(sweep: Any, store: RunStore, *, address: str | None = None, workers: int | None = None,
              retries: int | None = None, progress: bool = True) -> Any:
    """Train and analyse the sweep's unfinished runs as Ray tasks; returns a SweepReport (backend.jobs.sweep)."""
    from backend.jobs.sweep import run_sweep as run

    return run(sweep, store, address=address, workers=workers, retries=retries, progress=progress)


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


def _measure_rows(store: RunStore, run_ids: list[str], infos: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: run_id, its final test accuracy and its measures (:func:`run_measures`)."""
    rows = []
    for run_id, info in zip(run_ids, infos, strict=True):
        final = info.get("final") or {}
        rows.append({"run_id": run_id, "test_accuracy": final.get("test_accuracy", float("nan")),
                     **run_measures(store, run_id)})
    return pd.DataFrame(rows)


def k_sensitivity(store: RunStore, run_ids: list[str], ks: tuple[int, ...] | None = None) -> pd.DataFrame:
    """c1 and c3 at several k (SCIENCE.md 3.2, thesis Fig. 2.5) for each run at its last analysed epoch.

    Long table: run_id, epoch, measure, k, value, units (the run's number of ReLU units) and
    subclass_ratio (subclasses per class: the thesis's x5 for c1's k on CIFAR-100 superclasses).
    A run that is not analysed, or whose activations are missing, is left out.
    """
    import numpy as np

    from backend.analysis.ksweep import K_VALUES, measures_over_k
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
        sub = labels.subclass[t] if labels.intraclass else None
        sup = labels.superclass[t] if labels.intraclass else None
        table = measures_over_k(pres, classes=labels.classes[t], subclass=sub, superclass=sup, ks=ks or K_VALUES)
        ratio = len(np.unique(sub)) / len(np.unique(labels.classes[t])) if sub is not None else float("nan")
        parts.append(table.assign(run_id=run_id, epoch=epoch, units=sum(p.shape[1] for p in pres), subclass_ratio=ratio))
    cols = ["run_id", "epoch", "measure", "k", "value", "units", "subclass_ratio"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def tau_over_k(values: pd.DataFrame, runs: pd.DataFrame, hparams: pd.DataFrame) -> pd.DataFrame:
    """Kendall and granulated Kendall coefficients of c1 and c3 at every k (see backend.analysis.ksweep)."""
    from backend.analysis.ksweep import tau_over_k as table

    return table(values, runs, hparams)


def import_checkpoints(store: RunStore, files: list[Path], *, arch: str = "auto", overrides: list[str] | tuple[str, ...] = (),
                       **options: Any) -> str:
    """Import one checkpoint or a sequence (files or folders) as a new run; return its id (not analysed yet).
    ``overrides``: ``key=value`` texts as ``--set`` takes them; the other options: backend.jobs.imports.import_checkpoints."""
    from backend.jobs.imports import import_checkpoints as run
    from backend.jobs.imports import user_overrides

    return run(store, files, arch=arch, settings=user_overrides(overrides), **options)
