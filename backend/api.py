"""The backend's public facade: what the dashboard (``app/``) and users' scripts call.

Reading the store is cheap and never imports torch; training, resuming and the demo builder
import the training stack lazily, so the dashboard starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from backend.config import AnalysisConfig, RunConfig
from backend.errors import ClusterScopeError, ConfigError, DataError, StoreError
from backend.store import RunStore

__all__ = [
    "ClusterScopeError", "ConfigError", "DataError", "StoreError", "RunStore", "RunConfig",
    "default_store_root", "open_store", "list_runs", "read_run", "read_metrics", "read_samples",
    "snapshots", "train", "resume", "demo_status", "analysis_config", "analyze", "run_measures", "compare",
    "read_analysis", "read_activations", "analysis_status", "launch_training", "read_predictions",
    # importing checkpoints
    "torchscript_allowed", "import_checkpoints", "safe_upload_name", "new_import_job", "save_upload", "check_data_zip",
    "launch_import", "import_job_status", "IMPORT_ARCHITECTURES", "server_paths_allowed", "parse_epochs",
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


def effective_status(info: dict[str, Any]) -> str:
    """The run.json status, except that a 'running' run whose process is gone is 'interrupted'."""
    from backend.liveness import process_alive

    status = str(info.get("status"))
    if status == "running" and not process_alive(info):
        return "interrupted"
    return status


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
    """Train a new run; return its id. See :func:`backend.runner.train_run`."""
    from backend.runner import train_run

    return train_run(cfg, store, progress=progress)


def resume(run_id: str, store: RunStore, *, progress: bool = True) -> str:
    from backend.runner import resume_run

    return resume_run(run_id, store, progress=progress)


def demo_base_overrides(data_name: str) -> tuple[str, ...]:
    """The demo run's config overrides for a data set (backend.demo.base_overrides), for the Runs page's form."""
    from backend.demo import base_overrides

    return base_overrides(data_name)


def demo_status(store: RunStore) -> dict[str, Any]:
    """Which demo runs exist and whether a demo builder is working on the store right now."""
    from backend.demo import DEMO_RUNS, builder_active

    present = set(store.run_ids())
    return {"runs": [r.run_id for r in DEMO_RUNS], "present": [r.run_id for r in DEMO_RUNS if r.run_id in present],
            "building": builder_active(store)}


# ------------------------------------------------------------------------------------------ analysis


def analysis_config(store: RunStore, run_id: str, overrides: list[str] | tuple[str, ...] = ()) -> AnalysisConfig:
    """The run's recorded ``[analysis]`` settings (defaults for runs without them) plus overrides."""
    from backend.config import from_dict, parse_override, validate_analysis

    raw = dict((store.read_run(run_id).get("config") or {}).get("analysis") or {})
    for item in overrides:
        key, value = parse_override(item)
        if not key.startswith("analysis."):
            raise ConfigError(f"override {key!r} must be an analysis key (analysis.<name>=value) here.")
        raw[key.removeprefix("analysis.")] = value
    cfg = from_dict(AnalysisConfig, raw, "analysis.")
    validate_analysis(cfg)
    return cfg


def analyze(store: RunStore, run_id: str, params: AnalysisConfig | None = None, *,
            progress: Callable[[int, int, str], None] | None = None) -> Any:
    """Analyse the run's missing or stale snapshots; returns an AnalysisReport (see backend.analysis.pipeline)."""
    from backend.analysis.pipeline import analyze_run

    return analyze_run(store, run_id, params or analysis_config(store, run_id), progress=progress)


def read_analysis(store: RunStore, run_id: str, table: str, layer: str | None = None, epoch: int | None = None
                  ) -> pd.DataFrame:
    """One analysis table: per (layer, epoch) when both are given, else every file of it concatenated
    (``network`` and ``rotation`` are whole-run tables)."""
    if table in ("network", "rotation") or layer is not None:
        return store.analysis.read(run_id, table, layer, epoch)
    return store.analysis.read_all(run_id, table)


def run_measures(store: RunStore, run_id: str) -> dict[str, Any]:
    """Measures of a run at its last analysed epoch: network c1..c4 and layer-averaged cluster scores."""
    from backend.analysis.compare import MEASURES

    out: dict[str, Any] = {m: float("nan") for m in MEASURES}
    try:
        net = store.analysis.read(run_id, "network")
    except StoreError:
        return out | {"epoch": None}
    layers = store.analysis.read_all(run_id, "layers")
    epoch = int(net["epoch"].max()) if not net.empty else None
    if epoch is None:
        return out | {"epoch": None}
    row = net[net["epoch"] == epoch].iloc[0]
    out |= {m: float(row[m]) for m in ("c1", "c2", "c3", "c4")}
    last = layers[layers["epoch"] == epoch]
    for m in ("class_purity", "subclass_purity", "fragmentation", "ari_subclass", "nmi_subclass", "wtm_fraction"):
        out[m] = float(last[m].mean()) if not last.empty else float("nan")
    return out | {"epoch": epoch}


def compare(store: RunStore, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, table): each run's measures and test accuracy, and the Kendall table of every measure."""
    from backend.analysis.compare import hyperparameter_axes, kendall_table

    if len(run_ids) < 2:
        raise ClusterScopeError(f"compare needs at least 2 runs; got {len(run_ids)}. List runs with `clusterscope runs`.")
    infos = [store.read_run(r) for r in run_ids]
    runs = _measure_rows(store, run_ids, infos)
    hparams = hyperparameter_axes([i.get("config") or {} for i in infos])
    return pd.concat([runs, hparams], axis=1), kendall_table(runs, hparams)


def read_activations(store: RunStore, run_id: str, layer: str, epoch: int) -> tuple[Any, Any]:
    """(sample_ids, values (n_samples, n_units) float32) of one snapshot."""
    return store.read_activations(run_id, layer, epoch)


def analysis_status(store: RunStore, run_id: str) -> dict[str, Any]:
    """analysis/status.json: ``params_hash``, ``errors`` ("layer@epoch" -> message); {} before any analysis."""
    return store.analysis.read_status(run_id)


def launch_training(store: RunStore, overrides: list[str], *, config: str | None = None) -> dict[str, Any]:
    """Start ``clusterscope train`` in its own process (it analyses the run when done); return pid and log.

    The config is validated here first, so a bad value is reported at once and nothing starts.
    """
    import subprocess
    import sys

    from backend.config import load_config
    from backend.store import new_run_id

    cfg = load_config(config, overrides)
    run_id = new_run_id(cfg, store)
    store.require_new(run_id)
    store.ensure_writable()
    log = store.root / ".logs" / f"{run_id}.log"
    log.parent.mkdir(exist_ok=True)
    args = [sys.executable, "-m", "backend.cli", "train", "--store", str(store.root), "--no-progress"]
    args += [a for o in [*overrides, f'run_id="{run_id}"'] for a in ("--set", o)]
    if config:
        args.insert(4, config)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return {"run_id": run_id, "pid": proc.pid, "log": str(log)}


def read_predictions(store: RunStore, run_id: str, epoch: int) -> pd.DataFrame:
    """predictions/epoch=NNNN.parquet: sample_id, prediction, correct, confidence of the probe set."""
    return store.read_predictions(run_id, epoch)


# ------------------------------------------------------------------------------------------ importing checkpoints
# Bring your own checkpoints (docs/import.md): files are read with torch.load(weights_only=True) or safetensors,
# TorchScript only when trusted and allowed; the run is built in a staging folder and published whole.

IMPORT_ARCHITECTURES = ("auto", "mlp", "vgg", "resnet", "tv:<torchvision name>")


def _allowed(variable: str) -> bool:
    """A deployment switch: on unless the environment variable says 0, false, no or off."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")


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


def torchscript_allowed() -> bool:
    """Whether TorchScript files may be loaded at all here: off when ``CLUSTERSCOPE_ALLOW_TORCHSCRIPT=0``
    (for shared deployments, where one user's upload must not run code on the server)."""
    return _allowed("CLUSTERSCOPE_ALLOW_TORCHSCRIPT")


def server_paths_allowed() -> bool:
    """Whether dashboard users may name folders on the server as data (data.root): off when
    ``CLUSTERSCOPE_ALLOW_SERVER_PATHS=0``, so on a shared server they probe only with built-in data or a zip."""
    return _allowed("CLUSTERSCOPE_ALLOW_SERVER_PATHS")


def _require_torchscript_allowed(trust_torchscript: bool) -> None:
    if trust_torchscript and not torchscript_allowed():
        raise ClusterScopeError("TorchScript loading is switched off on this deployment (CLUSTERSCOPE_ALLOW_TORCHSCRIPT=0); "
                                "import the weights as a state_dict (.pt) or safetensors file instead.")


def parse_epochs(text: str | None, *, what: str = "epochs") -> list[int] | None:
    """``"0,5,10"`` -> [0, 5, 10]; None for an empty or missing text. ``what`` names the input in the error."""
    if not text:
        return None
    try:
        return [int(e) for e in text.split(",")]
    except ValueError:
        raise ClusterScopeError(f"{what} must be integers separated by commas, e.g. 0,5,10; got {text!r}.") from None


def import_checkpoints(store: RunStore, files: list[Path], *, arch: str = "auto", overrides: list[str] | tuple[str, ...] = (),
                       epochs: list[int] | None = None, names: list[str] | tuple[str, ...] = (), data_zip: Path | None = None,
                       data_zip_name: str = "", trust_torchscript: bool = False,
                       progress: Callable[[str, int, int], None] | None = None, extra: dict[str, Any] | None = None) -> str:
    """Import one checkpoint or a sequence (files or folders) as a new run; return its id (not analysed yet)."""
    from backend.importing.importer import ImportRequest, import_run

    _require_torchscript_allowed(trust_torchscript)
    req = ImportRequest(files=tuple(Path(f) for f in files), arch=arch, overrides=tuple(overrides),
                        epochs=tuple(epochs) if epochs is not None else None, names=tuple(names), data_zip=data_zip,
                        data_zip_name=data_zip_name, trust_torchscript=trust_torchscript, extra=extra or {})
    return import_run(store, req, progress=progress or (lambda stage, done, total: None))


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


def launch_import(store: RunStore, job_id: str, files: list[Path], *, names: list[str] | tuple[str, ...] = (),
                  arch: str = "auto", overrides: list[str] | tuple[str, ...] = (), data_zip: Path | None = None,
                  data_zip_name: str = "", trust_torchscript: bool = False, analyze: bool = True,
                  epochs: list[int] | None = None) -> dict[str, Any]:
    """Start ``clusterscope import --job JOB_ID`` in its own process; it reports progress in the job's status.json."""
    import json
    import subprocess
    import sys

    from backend.config import parse_override

    _require_torchscript_allowed(trust_torchscript)
    for item in overrides:
        key, _ = parse_override(item)
        if key in ("data.root", "data.superclass_map") and not server_paths_allowed():
            raise ClusterScopeError(f"{key} names a folder of the server, which this deployment does not allow "
                                    "(CLUSTERSCOPE_ALLOW_SERVER_PATHS=0); use a built-in data set or upload a zip.")
    store.write_job_status(job_id, {"state": "starting", "stage": "starting", "done": 0, "total": 0})
    args = [sys.executable, "-m", "backend.cli", "import", *map(str, files), "--store", str(store.root), "--no-progress",
            "--job", job_id, "--arch", arch]
    args += [f"--name={n}" for n in names]  # one token each: a display name starting with '-' stays a value
    args += [f"--set={o}" for o in overrides]
    if data_zip is not None:
        args += ["--data-zip", str(data_zip), "--data-zip-name", data_zip_name or Path(data_zip).name]
    if trust_torchscript:
        args.append("--trust-torchscript")
    if epochs is not None:
        args += ["--epochs", ",".join(str(int(e)) for e in epochs)]
    if not analyze:
        args.append("--no-analyze")
    log = store.job_dir(job_id) / "log.txt"
    with open(log, "ab") as fh:
        fh.write((json.dumps(args) + "\n").encode())
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    if store.read_job_status(job_id).get("state") == "starting":  # so a child that dies before reporting is noticed
        from backend.liveness import process_start_time, this_process

        store.write_job_status(job_id, {"state": "starting", "stage": "starting", "done": 0, "total": 0,
                                        **this_process(), "pid": proc.pid, "pid_start": process_start_time(proc.pid)})
    return {"job_id": job_id, "pid": proc.pid, "log": str(log)}


def import_job_status(store: RunStore, job_id: str) -> dict[str, Any]:
    """The job's status.json: state (starting, running, done, failed), stage, done, total, run_id, error.

    A job whose process died without saying so is reported as failed."""
    from backend.liveness import process_alive

    status = store.read_job_status(job_id)
    if status.get("state") in ("starting", "running") and status.get("pid") and not process_alive(status):
        status |= {"state": "failed", "error": "the import process stopped unexpectedly; see its log " +
                   str(store.job_dir(job_id) / "log.txt")}
    return status


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
    import numpy as np

    info = store.read_run(run_id)
    names = [x["name"] for x in info.get("layers") or []]
    epochs = store.checkpoint_epochs(run_id)
    if (info.get("model") or {}).get("name") not in ("mlp", "vgg") or layer not in names or not epochs:
        return None
    from backend.analysis.rotation import kernel_names

    state = store.load_checkpoint(run_id, epochs[-1])
    kernels = kernel_names({k: v.numpy() for k, v in state.items()})
    i = names.index(layer) + 1  # sequential models: the kernel after the layer's own one reads it
    units = next(x["units"] for x in info["layers"] if x["name"] == layer)
    if i >= len(kernels) or state[kernels[i]].shape[1] != units:
        return None
    w = state[kernels[i]].double().numpy()
    return np.sqrt((np.moveaxis(w, 1, -1).reshape(-1, units) ** 2).sum(axis=0))


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
    """Read and validate a sweep file (see :mod:`backend.sweep`); raises ConfigError naming the key."""
    from backend.sweep import load_sweep as load

    return load(path)


def run_sweep(sweep: Any, store: RunStore, *, address: str | None = None, workers: int | None = None,
              retries: int | None = None, progress: bool = True) -> Any:
    """Train and analyse the sweep's unfinished runs as Ray tasks; returns a SweepReport (backend.sweep_run)."""
    from backend.sweep_run import run_sweep as run

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
    """:func:`compare` over the complete runs of sweep ``name`` (only those of ``run_ids`` when given),
    with the sweep's own axes as the hyperparameter columns (granulated Kendall per axis and in total;
    ``train.seed`` counts as a replicate, not an axis)."""
    from backend.analysis.compare import kendall_table

    members = sweep_runs(store, name)
    if run_ids is not None:
        members = members[members["run_id"].isin(run_ids)]
    done = members[members["status"] == "complete"].reset_index(drop=True)
    if len(done) < 2:
        raise ClusterScopeError(f"sweep {name!r} has {len(done)} complete run(s) of {len(members)}; compare needs at "
                                "least 2. Finish it with `clusterscope sweep SWEEP.toml` (it resumes).")
    axes = [c for c in done.columns if c not in ("run_id", "status", "train.seed")]
    hparams = done[axes].reset_index(drop=True)
    ids = done["run_id"].tolist()
    runs = _measure_rows(store, ids, [store.read_run(r) for r in ids])
    return pd.concat([runs, hparams], axis=1), kendall_table(runs, hparams)


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
    from backend.analysis.pipeline import probe_labels

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
        # as the network table does (pipeline._network_measures): c1 whenever the data have superclasses
        sub = labels.fine[t] if labels.hierarchical else None
        sup = labels.superclass[t] if labels.hierarchical else None
        table = measures_over_k(pres, classes=labels.classes[t], subclass=sub, superclass=sup, ks=ks or K_VALUES)
        ratio = len(np.unique(sub)) / len(np.unique(labels.classes[t])) if sub is not None else float("nan")
        parts.append(table.assign(run_id=run_id, epoch=epoch, units=sum(p.shape[1] for p in pres), subclass_ratio=ratio))
    cols = ["run_id", "epoch", "measure", "k", "value", "units", "subclass_ratio"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def tau_over_k(values: pd.DataFrame, runs: pd.DataFrame, hparams: pd.DataFrame) -> pd.DataFrame:
    """Kendall and granulated Kendall coefficients of c1 and c3 at every k (see backend.analysis.ksweep)."""
    from backend.analysis.ksweep import tau_over_k as table

    return table(values, runs, hparams)
