"""The run store: the only module that reads or writes run folders (layout in docs/store.md).

::

    <store>/<run_id>/
      run.json                              config, status, layers, snapshot epochs, versions
      metrics.parquet                       one row per (epoch, split)
      samples.parquet                       the probe set with labels and PNG thumbnails
      activations/<layer>/epoch=NNNN.parquet  sample_id + one float32 column per unit
      checkpoints/epoch=NNNN.pt             model state_dict (torch.load(weights_only=True))
      checkpoints/resume.pt                 optimizer/scheduler state of the last finished epoch
      dynamics/probe.parquet                optional ([dynamics]): the probe batch of the training dynamics
      dynamics/loss/epoch=NNNN.parquet      per-sample probe loss at each recording of that epoch
      dynamics/units/<layer>/epoch=NNNN.parquet  per (recording, sample, unit): pre-activation, derivative sign

Every path comes from one helper that validates the run id and layer name first, so no input can
reach outside the store. Every write goes to a temporary file in the same folder and is renamed
into place, so a reader never sees half a file and a crash leaves no file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backend import schema
from backend.config import RUN_ID_PATTERN
from backend.errors import CorruptFileError, StoreError

LAYER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
EPOCH_FILE = re.compile(r"^epoch=(\d{4,})\.parquet$")
CHECKPOINT_FILE = re.compile(r"^epoch=(\d{4,})\.pt$")
RESERVED = ".reserved"  # in a run folder whose id is claimed by a run about to be created
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise StoreError(
            f"run id {run_id!r} is not valid: expected 1-64 characters of lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit. Run `clusterscope runs` to see the run ids."
        )
    return run_id


def check_layer(layer: str) -> str:
    if not isinstance(layer, str) or not LAYER_PATTERN.match(layer) or ".." in layer:
        raise StoreError(f"layer name {layer!r} is not valid: expected letters, digits, '.', '_' or '-'.")
    return layer


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename publishes them
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RunStore:
    """A folder of runs. ``RunStore("data/store")``; nothing is created until a run is written."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    @property
    def analysis(self) -> AnalysisFiles:
        return AnalysisFiles(self)

    # ---------------------------------------------------------------- paths
    def run_dir(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def run_json_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "run.json"

    def metrics_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "metrics.parquet"

    def samples_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "samples.parquet"

    def activations_dir(self, run_id: str, layer: str) -> Path:
        return self.run_dir(run_id) / "activations" / check_layer(layer)

    def activation_path(self, run_id: str, layer: str, epoch: int) -> Path:
        return self.activations_dir(run_id, layer) / f"epoch={int(epoch):04d}.parquet"

    def checkpoint_path(self, run_id: str, epoch: int) -> Path:
        return self.run_dir(run_id) / "checkpoints" / f"epoch={int(epoch):04d}.pt"

    def resume_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoints" / "resume.pt"

    # ---------------------------------------------------------------- store-level
    def ensure_writable(self) -> None:
        """Create the root if needed and prove it is writable, or raise :class:`StoreError`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise StoreError(
                f"store {str(self.root)!r} is not writable ({exc.strerror or exc}); choose another folder "
                "with --store or CLUSTERSCOPE_STORE, or fix its permissions."
            ) from None

    def check_is_store(self) -> None:
        """Raise :class:`StoreError` when the root is not a run store: a file, or a folder that holds files
        besides run folders (a store's top level has only run folders and hidden entries). A missing or
        empty folder is an empty store."""
        what = f"store {str(self.root)!r}"
        fix = "give the folder that holds the runs with --store or CLUSTERSCOPE_STORE (default data/store)."
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise StoreError(f"{what} is a file, not a run store; {fix}")
        try:
            files = sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and not p.is_dir())
        except OSError as exc:
            raise StoreError(f"{what} cannot be read ({exc.strerror or exc}); {fix}") from None
        if files:
            raise StoreError(f"{what} is not a run store: it holds files ({', '.join(files[:3])}"
                             f"{', ...' if len(files) > 3 else ''}) besides run folders; {fix}")

    def run_ids(self) -> list[str]:
        """Ids of the folders that hold a run.json, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if RUN_ID_PATTERN.match(p.name) and (p / "run.json").is_file()
        )

    def exists(self, run_id: str) -> bool:
        return self.run_dir(run_id).exists()

    # ---------------------------------------------------------------- the training lock
    def lock_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / ".lock"

    @contextlib.contextmanager
    def lock_run(self, run_id: str) -> Iterator[None]:
        """Hold ``<run>/.lock`` while training into the run; raise :class:`StoreError` if another process holds it.

        An exclusive ``fcntl.flock`` on the file: the operating system releases it when the holder
        exits, however it ends (kill -9 included), so no lock is ever left stuck. The empty file stays.
        """
        import fcntl  # POSIX only, like the rest of the training path

        path = self.lock_path(run_id)
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file of run {run_id!r} ({exc.strerror or exc}); "
                             "check that the store is writable.") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"run {run_id!r} is being trained by another process right now; wait for it to "
                                 "finish or stop it, then resume.") from None
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

    # ---------------------------------------------------------------- run.json
    def require_new(self, run_id: str) -> None:
        """Raise :class:`StoreError` if ``run_id`` is taken (a reserved id counts as free: see :meth:`reserve_run`)."""
        if self.exists(run_id) and not (self.run_dir(run_id) / RESERVED).is_file():
            raise self._exists_error(run_id)

    def reserve_run(self, run_id: str) -> bool:
        """Claim a fresh run id for a run about to be created, by any process: False if it is taken.

        ``mkdir`` is atomic, so of two processes that pick the same id only one gets it. The folder
        holds an empty ``.reserved`` file until :meth:`create_run` (in this or a child process) takes it.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.run_dir(run_id).mkdir()
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"store {str(self.root)!r} is not writable ({exc.strerror or exc}); choose another "
                             "folder with --store or CLUSTERSCOPE_STORE, or fix its permissions.") from None
        (self.run_dir(run_id) / RESERVED).touch()
        return True

    def _take_reservation(self, run_id: str) -> bool:
        """Consume a reservation; unlink is atomic, so only one taker succeeds."""
        try:
            (self.run_dir(run_id) / RESERVED).unlink()
        except FileNotFoundError:
            return False
        return True

    def release_reservation(self, run_id: str) -> None:
        """Give back a reserved id that will not be used (the launch failed)."""
        if self._take_reservation(run_id):
            with contextlib.suppress(OSError):
                self.run_dir(run_id).rmdir()

    def _exists_error(self, run_id: str) -> StoreError:
        return StoreError(
            f"run {run_id!r} already exists in store {str(self.root)!r}; choose another run_id "
            f"(--set run_id=...), resume it with `clusterscope train --resume {run_id}`, or delete its folder."
        )

    def create_run(self, run_id: str, info: dict[str, Any]) -> None:
        """Create the run folder (it must not exist) and write its run.json."""
        run_dir = self.run_dir(run_id)
        self.ensure_writable()
        try:
            run_dir.mkdir()
        except FileExistsError:
            if not self._take_reservation(run_id):
                raise self._exists_error(run_id) from None
        self.write_run(run_id, info)

    def write_run(self, run_id: str, info: dict[str, Any]) -> None:
        info = dict(info, run_id=run_id, schema_version=schema.SCHEMA_VERSION, updated=now_iso())
        with atomic_path(self.run_json_path(run_id)) as tmp:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=False), encoding="utf-8")

    def read_run(self, run_id: str) -> dict[str, Any]:
        path = self.run_json_path(run_id)
        if not path.is_file():
            raise StoreError(
                f"run {run_id!r} not found in store {str(self.root)!r} (no {path.name}); "
                "run `clusterscope runs` to list the runs."
            )
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path} is not valid JSON ({exc}); the run's metadata is corrupt.") from None
        if not isinstance(info, dict) or "status" not in info:
            raise StoreError(f"{path} is not a ClusterScope run.json: expected an object with a 'status' key.")
        return _upgrade_run_info(info)

    def update_run(self, run_id: str, **changes: Any) -> dict[str, Any]:
        info = self.read_run(run_id)
        info.update(changes)
        self.write_run(run_id, info)
        return info

    # ---------------------------------------------------------------- tables
    def _write_table(self, path: Path, table: pa.Table) -> None:
        with atomic_path(path) as tmp:
            # Activations are noisy floats: dictionary encoding would only waste time on them.
            pq.write_table(table, tmp, compression="zstd", use_dictionary=["split", "label_name", "superclass_name"])

    def _read_table(self, path: Path, what: str, columns: list[str] | None = None) -> pa.Table:
        if not path.is_file():
            raise StoreError(f"{what} not found: expected {path}.")
        try:
            return pq.read_table(path, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptFileError(f"{what} at {path} is not a readable Parquet file ({exc}); the file is corrupt.") from None

    def write_metrics(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=schema.METRICS_SCHEMA)
        table = table.replace_schema_metadata(schema.file_metadata("metrics", run_id))
        self._write_table(self.metrics_path(run_id), table)

    def read_metrics(self, run_id: str) -> pd.DataFrame:
        path = self.metrics_path(run_id)
        if not path.is_file():  # a run that has not finished its first evaluation yet
            return schema.METRICS_SCHEMA.empty_table().to_pandas()
        return self._read_table(path, f"metrics of run {run_id!r}").to_pandas()

    def write_samples(self, run_id: str, table: pa.Table) -> None:
        table = table.cast(schema.SAMPLES_SCHEMA).replace_schema_metadata(schema.file_metadata("samples", run_id))
        self._write_table(self.samples_path(run_id), table)

    def read_samples(self, run_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self._read_table(self.samples_path(run_id), f"probe samples of run {run_id!r}", columns).to_pandas()

    def write_activations(
        self, run_id: str, layer: str, epoch: int, sample_ids: np.ndarray, values: np.ndarray, *, reduction: str
    ) -> Path:
        """Write one snapshot. ``values`` : ndarray of shape (n_samples, n_units)."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        n, units = values.shape
        arrays = [pa.array(np.asarray(sample_ids, dtype=np.int64))]
        arrays += [pa.array(values[:, i]) for i in range(units)]
        table = pa.Table.from_arrays(arrays, schema=schema.activation_schema(units))
        meta = schema.file_metadata("activations", run_id, layer=layer, epoch=int(epoch), reduction=reduction)
        table = table.replace_schema_metadata(meta)
        path = self.activation_path(run_id, layer, epoch)
        self._write_table(path, table)
        return path

    def read_activations(self, run_id: str, layer: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(sample_ids, values)`` with values of shape (n_samples, n_units), float32."""
        path = self.activation_path(run_id, layer, epoch)
        table = self._read_table(path, f"activations of run {run_id!r}, layer {layer!r}, epoch {epoch}")
        if table.num_columns < 2 or table.column_names[0] != schema.SAMPLE_ID:
            raise StoreError(f"{path} does not hold activations: expected sample_id then unit columns, "
                             f"found {table.column_names[:3]}.")
        ids = table.column(0).to_numpy()
        values = np.column_stack([table.column(i).to_numpy() for i in range(1, table.num_columns)])
        return ids, values.astype(np.float32, copy=False)

    def predictions_path(self, run_id: str, epoch: int) -> Path:
        return self.run_dir(run_id) / "predictions" / f"epoch={int(epoch):04d}.parquet"

    def write_predictions(self, run_id: str, epoch: int, sample_ids: np.ndarray, logits: np.ndarray,
                          targets: np.ndarray) -> None:
        """predictions/epoch=NNNN.parquet from the probe set's outputs. logits : (n_samples, n_outputs)."""
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged model's NaN logits give NaN confidences
            z = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        pred = logits.argmax(axis=1)
        table = pa.table({"sample_id": np.asarray(sample_ids, np.int64), "prediction": pred.astype(np.int32),
                          "correct": pred == np.asarray(targets), "confidence": prob.max(axis=1).astype(np.float32)},
                         schema=schema.PREDICTIONS_SCHEMA)
        table = table.replace_schema_metadata(schema.file_metadata("predictions", run_id, epoch=int(epoch)))
        self._write_table(self.predictions_path(run_id, epoch), table)

    def read_predictions(self, run_id: str, epoch: int) -> pd.DataFrame:
        what = f"predictions of run {run_id!r} at epoch {epoch}"
        return self._read_table(self.predictions_path(run_id, epoch), what).to_pandas()

    def snapshots(self, run_id: str) -> pd.DataFrame:
        """The recorded snapshots: one row per (layer, epoch) file, columns layer, epoch, path."""
        root = self.run_dir(run_id) / "activations"
        rows = []
        if root.is_dir():
            for layer_dir in sorted(p for p in root.iterdir() if p.is_dir()):
                for f in sorted(layer_dir.iterdir()):
                    m = EPOCH_FILE.match(f.name)
                    if m:
                        rows.append({"layer": layer_dir.name, "epoch": int(m.group(1)), "path": str(f)})
        return pd.DataFrame(rows, columns=["layer", "epoch", "path"])

    def delete_snapshots_after(self, run_id: str, epoch: int) -> None:
        """Remove snapshots, dynamics and checkpoints later than ``epoch`` (before a resume redoes them)."""
        for row in self.snapshots(run_id).itertuples():
            if row.epoch > epoch:
                Path(row.path).unlink(missing_ok=True)
        for path in self._dynamics_files(run_id):
            m = EPOCH_FILE.match(path.name)
            if m and int(m.group(1)) > epoch:
                path.unlink(missing_ok=True)
        pred_dir = self.run_dir(run_id) / "predictions"
        if pred_dir.is_dir():
            for f in pred_dir.iterdir():
                m = EPOCH_FILE.match(f.name)
                if m and int(m.group(1)) > epoch:
                    f.unlink(missing_ok=True)
        ckpt_dir = self.run_dir(run_id) / "checkpoints"
        if ckpt_dir.is_dir():
            for f in ckpt_dir.iterdir():
                m = CHECKPOINT_FILE.match(f.name)
                if m and int(m.group(1)) > epoch:
                    f.unlink(missing_ok=True)

    def corrupt_sources(self, run_id: str) -> dict[str, str]:
        """Recorded files that cannot be read, by a cheap check (Parquet footer, the zip directory of a
        .pt file): {"<layer>@<epoch>" (activations) or "checkpoint <file>": message}. Whole files are not read."""
        import zipfile

        bad: dict[str, str] = {}
        for row in self.snapshots(run_id).itertuples():
            try:
                pq.ParquetFile(row.path).close()
            except (pa.ArrowException, OSError) as exc:
                bad[f"{row.layer}@{row.epoch}"] = (f"activations of run {run_id!r}, layer {row.layer!r}, "
                                                               f"epoch {row.epoch} at {row.path} are corrupt ({exc}).")
        ckpt_dir = self.run_dir(run_id) / "checkpoints"
        for f in sorted(ckpt_dir.glob("*.pt")) if ckpt_dir.is_dir() else []:
            try:
                zipfile.ZipFile(f).close()  # torch.save writes a zip; a truncated one has no directory
            except (zipfile.BadZipFile, OSError) as exc:
                bad[f"checkpoint {f.name}"] = f"checkpoint of run {run_id!r} at {f} is corrupt ({exc})."
        return bad

    # ---------------------------------------------------------------- dynamics (SCIENCE.md 3.4)
    def dynamics_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "dynamics"

    def dynamics_probe_path(self, run_id: str) -> Path:
        return self.dynamics_dir(run_id) / "probe.parquet"

    def dynamics_loss_path(self, run_id: str, epoch: int) -> Path:
        return self.dynamics_dir(run_id) / "loss" / f"epoch={int(epoch):04d}.parquet"

    def dynamics_units_path(self, run_id: str, layer: str, epoch: int) -> Path:
        return self.dynamics_dir(run_id) / "units" / check_layer(layer) / f"epoch={int(epoch):04d}.parquet"

    def _dynamics_files(self, run_id: str) -> list[Path]:
        root = self.dynamics_dir(run_id)
        return sorted(root.glob("loss/epoch=*.parquet")) + sorted(root.glob("units/*/epoch=*.parquet"))

    def write_dynamics_probe(self, run_id: str, frame: pd.DataFrame) -> None:
        """dynamics/probe.parquet. frame : columns of :data:`schema.DYNAMICS_PROBE_SCHEMA`."""
        table = pa.Table.from_pandas(frame[schema.DYNAMICS_PROBE_SCHEMA.names], schema=schema.DYNAMICS_PROBE_SCHEMA,
                                     preserve_index=False)
        self._write_table(self.dynamics_probe_path(run_id), table.replace_schema_metadata(
            schema.file_metadata("dynamics.probe", run_id)))

    def write_dynamics(self, run_id: str, epoch: int, records: list[dict[str, Any]], sample_ids: np.ndarray) -> None:
        """One epoch of recordings: records hold step, loss (n,), pre and sign {layer: (n, units)} and, optionally,
        units {layer: the recorded units' indices in the layer} (default: the first ones)."""
        ids = np.asarray(sample_ids, dtype=np.int64)
        n = len(ids)
        steps = np.array([r["step"] for r in records], dtype=np.int64)
        loss = pa.table({"step": np.repeat(steps, n), "epoch": np.full(n * len(records), epoch, np.int32),
                         "sample_id": np.tile(ids, len(records)),
                         "loss": np.concatenate([r["loss"] for r in records]).astype(np.float32)},
                        schema=schema.DYNAMICS_LOSS_SCHEMA)
        self._write_table(self.dynamics_loss_path(run_id, epoch), loss.replace_schema_metadata(
            schema.file_metadata("dynamics.loss", run_id, epoch=int(epoch))))
        for layer in records[0]["pre"]:
            pre = np.stack([r["pre"][layer] for r in records])  # (n_records, n, units)
            sign = np.stack([r["sign"][layer] for r in records])
            units = pre.shape[2]
            unit_ids = np.asarray(records[0].get("units", {}).get(layer, np.arange(units)), dtype=np.int32)
            table = pa.table({
                "step": np.repeat(steps, n * units), "epoch": np.full(pre.size, epoch, np.int32),
                "sample_id": np.tile(np.repeat(ids, units), len(records)),
                "unit": np.tile(unit_ids, n * len(records)),
                "pre": pre.ravel().astype(np.float32), "grad_sign": sign.ravel().astype(np.int8),
            }, schema=schema.DYNAMICS_UNITS_SCHEMA)
            meta = schema.file_metadata("dynamics.units", run_id, layer=layer, epoch=int(epoch))
            self._write_table(self.dynamics_units_path(run_id, layer, epoch), table.replace_schema_metadata(meta))

    def dynamics_layers(self, run_id: str) -> list[str]:
        """Layers with recorded dynamics, sorted by name (empty when the run recorded none)."""
        root = self.dynamics_dir(run_id) / "units"
        return sorted(p.name for p in root.iterdir() if p.is_dir() and LAYER_PATTERN.match(p.name)) if root.is_dir() else []

    def read_dynamics_probe(self, run_id: str) -> pd.DataFrame:
        return self._read_table(self.dynamics_probe_path(run_id), f"dynamics probe of run {run_id!r}").to_pandas()

    def read_dynamics_loss(self, run_id: str) -> pd.DataFrame:
        files = sorted((self.dynamics_dir(run_id) / "loss").glob("epoch=*.parquet"))
        return self._concat(files, schema.DYNAMICS_LOSS_SCHEMA, f"dynamics loss of run {run_id!r}")

    def read_dynamics_units(self, run_id: str, layer: str) -> pd.DataFrame:
        """Every recording of ``layer``: columns step, epoch, sample_id, unit, pre, grad_sign, sorted by step."""
        files = sorted(self.dynamics_units_path(run_id, layer, 0).parent.glob("epoch=*.parquet"))
        return self._concat(files, schema.DYNAMICS_UNITS_SCHEMA, f"dynamics of run {run_id!r}, layer {layer!r}")

    def _concat(self, files: list[Path], sch: pa.Schema, what: str) -> pd.DataFrame:
        tables = []
        for f in files:
            t = self._read_table(f, f"{what} ({f.name})")
            if not set(sch.names) <= set(t.column_names):
                raise StoreError(f"{what} at {f} lacks columns {sorted(set(sch.names) - set(t.column_names))}; "
                                 "the file is not a ClusterScope dynamics file.")
            tables.append(t.select(sch.names).cast(sch))
        return (pa.concat_tables(tables) if tables else sch.empty_table()).to_pandas()

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, run_id: str, epoch: int, state_dict: dict[str, Any]) -> Path:
        return self._save_torch(self.checkpoint_path(run_id, epoch), state_dict)

    def load_checkpoint(self, run_id: str, epoch: int) -> dict[str, Any]:
        return self._load_torch(self.checkpoint_path(run_id, epoch), f"checkpoint of run {run_id!r} at epoch {epoch}")

    def checkpoint_epochs(self, run_id: str) -> list[int]:
        ckpt_dir = self.run_dir(run_id) / "checkpoints"
        if not ckpt_dir.is_dir():
            return []
        return sorted(int(m.group(1)) for f in ckpt_dir.iterdir() if (m := CHECKPOINT_FILE.match(f.name)))

    def save_resume_state(self, run_id: str, state: dict[str, Any]) -> Path:
        return self._save_torch(self.resume_path(run_id), state)

    def load_resume_state(self, run_id: str) -> dict[str, Any] | None:
        path = self.resume_path(run_id)
        if not path.is_file():
            return None
        return self._load_torch(path, f"resume state of run {run_id!r}")

    @staticmethod
    def _save_torch(path: Path, obj: dict[str, Any]) -> Path:
        import torch  # imported here: reading tables must not pay for torch

        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
        return path

    @staticmethod
    def _load_torch(path: Path, what: str) -> dict[str, Any]:
        import torch

        if not path.is_file():
            raise StoreError(f"{what} not found: expected {path}.")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
        except Exception as exc:  # torch raises many types for corrupt or hostile files
            raise CorruptFileError(f"{what} at {path} cannot be loaded safely ({type(exc).__name__}: {exc}).") from None


    # ---------------------------------------------------------------- imports: staging, uploads, jobs
    # Hidden folders (names starting with '.') are never runs: run_ids() only lists valid run ids.

    def staging(self, token: str) -> RunStore:
        """A private store under ``.staging/<token>`` where an import builds its run before publishing it."""
        return RunStore(self.root / ".staging" / check_run_id(token))

    def publish(self, staged: RunStore, run_id: str) -> None:
        """Move a complete run from a staging store into this one with one rename (same file system)."""
        self.require_new(run_id)
        self._take_reservation(run_id)  # a reserved folder is empty now, and rename replaces an empty folder
        try:
            os.rename(staged.run_dir(run_id), self.run_dir(run_id))
        except OSError as exc:
            raise StoreError(f"could not publish run {run_id!r} into {str(self.root)!r} ({exc.strerror or exc}).") from None

    @staticmethod
    def discard(staged: RunStore) -> None:
        """Remove a staging store and whatever it holds."""
        import shutil

        shutil.rmtree(staged.root, ignore_errors=True)
        with contextlib.suppress(OSError):  # the shared .staging folder goes once it is empty
            staged.root.parent.rmdir()

    def job_dir(self, job_id: str) -> Path:
        """``.imports/<job_id>``: the uploaded files and status.json of one import job."""
        return self.root / ".imports" / check_run_id(job_id)

    def save_upload(self, job_id: str, name: str, data: bytes) -> Path:
        """Write uploaded bytes as ``.imports/<job_id>/files/<name>``; ``name`` must already be a safe file name."""
        if not UPLOAD_NAME.match(name) or ".." in name:
            raise StoreError(f"upload name {name!r} is not a safe file name (letters, digits, '.', '_', '-', '=').")
        path = self.job_dir(job_id) / "files" / name
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path

    def write_job_status(self, job_id: str, status: dict[str, Any]) -> None:
        with atomic_path(self.job_dir(job_id) / "status.json") as tmp:
            tmp.write_text(json.dumps(status, indent=2), encoding="utf-8")

    def read_job_status(self, job_id: str) -> dict[str, Any]:
        path = self.job_dir(job_id) / "status.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise StoreError(f"import job status {path} is unreadable ({exc}).") from None

    def dataset_dir(self, digest: str) -> Path:
        """``.datasets/<digest>``: an extracted image-folder zip, named by the zip's sha256 (shared by imports)."""
        if not re.fullmatch(r"[0-9a-f]{16,64}", digest):
            raise StoreError(f"data set folder id {digest!r} must be a hex digest.")
        return self.root / ".datasets" / digest

    # ---------------------------------------------------------------- jobs started from the dashboard
    # ``.jobs/<kind>-<id>.json``: the process of each training or import job the page started, so the page can
    # count them (backend.jobs.launch's cap) and cancel them; ``.jobs/.lock`` serialises count-then-start.

    def launch_path(self, kind: str, ident: str) -> Path:
        if kind not in ("train", "import"):
            raise StoreError(f"job kind {kind!r} must be 'train' or 'import'.")
        return self.root / ".jobs" / f"{kind}-{check_run_id(ident)}.json"

    def write_launch(self, kind: str, ident: str, record: dict[str, Any]) -> None:
        with atomic_path(self.launch_path(kind, ident)) as tmp:
            tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")

    def read_launches(self) -> list[dict[str, Any]]:
        """Every job record, oldest first; an unreadable record (a crash mid-write cannot make one) is skipped."""
        out = []
        for path in sorted((self.root / ".jobs").glob("*.json")):
            with contextlib.suppress(OSError, json.JSONDecodeError, UnicodeDecodeError):
                out.append(json.loads(path.read_text(encoding="utf-8")))
        return sorted((r for r in out if isinstance(r, dict)), key=lambda r: str(r.get("started", "")))

    def remove_launch(self, kind: str, ident: str) -> None:
        self.launch_path(kind, ident).unlink(missing_ok=True)

    @contextlib.contextmanager
    def launch_lock(self) -> Iterator[None]:
        """An exclusive lock on ``.jobs/.lock`` (released when the block ends or the process dies)."""
        import fcntl

        self.ensure_writable()
        (self.root / ".jobs").mkdir(exist_ok=True)
        with open(self.root / ".jobs" / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# whole-run analysis tables, analysis/<name>.parquet (baselines: schema version 2 on)
RUN_TABLES = {"network": schema.NETWORK_SCHEMA, "rotation": schema.ROTATION_SCHEMA, "baselines": schema.BASELINES_SCHEMA}


class AnalysisFiles:
    """analysis/<table>/<layer>/epoch=NNNN.parquet per snapshot, analysis/<name>.parquet per run.

    Every file carries the analysis parameters and their hash in its metadata, so a re-analysis can
    tell what is up to date without reading the data.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def root(self, run_id: str) -> Path:
        return self.store.run_dir(run_id) / "analysis"

    def path(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> Path:
        if table not in schema.ANALYSIS_SCHEMAS and table not in RUN_TABLES:
            raise StoreError(f"analysis table {table!r} is not one of {sorted(schema.ANALYSIS_SCHEMAS)} + "
                             f"{', '.join(RUN_TABLES)}.")
        if layer is None:
            return self.root(run_id) / f"{table}.parquet"
        return self.root(run_id) / table / check_layer(layer) / f"epoch={int(epoch or 0):04d}.parquet"

    def write(self, run_id: str, table: str, data: pd.DataFrame, *, params: str, params_hash: str,
              layer: str | None = None, epoch: int | None = None) -> None:
        sch = _schema_of(table)
        frame = data.copy()
        if layer is not None:
            frame.insert(0, "epoch", int(epoch or 0))
            frame.insert(0, "layer", layer)
        arrow = pa.Table.from_pandas(frame[sch.names], schema=sch, preserve_index=False)
        extra: dict[str, Any] = {"params": params, "params_hash": params_hash}
        if layer is not None:
            extra |= {"layer": layer, "epoch": int(epoch or 0)}
        arrow = arrow.replace_schema_metadata(schema.file_metadata(f"analysis.{table}", run_id, **extra))
        self.store._write_table(self.path(run_id, table, layer, epoch), arrow)

    def remove(self, run_id: str, table: str) -> None:
        """Delete a whole-run table (``network``, ``rotation``) if present, e.g. one that can no longer be trusted."""
        self.path(run_id, table).unlink(missing_ok=True)

    def params_hash(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> str | None:
        """The parameter hash a file was written with, or None when it is missing or unreadable."""
        path = self.path(run_id, table, layer, epoch)
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowException):
            return None
        value = meta.get(schema.META_PARAMS_HASH.encode())
        return value.decode() if value else None

    def params(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> dict[str, Any]:
        """The analysis parameters a file was written with (its ``clusterscope.params`` JSON); {} when
        the file is missing, unreadable or has none."""
        try:
            meta = pq.read_schema(self.path(run_id, table, layer, epoch)).metadata or {}
            value = json.loads(meta.get(schema.META_PARAMS.encode(), b"{}"))
        except (OSError, pa.ArrowException, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def unreadable(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> Path | None:
        """The file's path when it exists but its Parquet footer cannot be read (a corrupt file), else None."""
        path = self.path(run_id, table, layer, epoch)
        try:
            pq.read_schema(path)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException):
            return path if path.is_file() else None
        return None

    def read(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        what = f"analysis table {table!r} of run {run_id!r}" + (f", layer {layer!r}, epoch {epoch}" if layer else "")
        path = self.path(run_id, table, layer, epoch)
        if not path.is_file():
            raise StoreError(f"{what} not found: expected {path}. Run `clusterscope analyze {run_id}`.")
        return self._read_versioned(path, what, table, columns)

    def _read_versioned(self, path: Path, what: str, table: str, columns: list[str] | None) -> pd.DataFrame:
        """One file; the schema columns an older store version lacks come back as NaN (``_missing_as_nan``)."""
        present = columns
        if columns is not None:
            with contextlib.suppress(OSError, pa.ArrowException):  # unreadable: _read_table says so
                names = set(pq.read_schema(path).names)
                present = [c for c in columns if c in names or c not in _schema_of(table).names]
        return _missing_as_nan(self.store._read_table(path, what, present).to_pandas(), table, columns)

    def read_all(self, run_id: str, table: str, columns: list[str] | None = None,
                 corrupt: list[str] | None = None) -> pd.DataFrame:
        """Every (layer, epoch) file of ``table`` concatenated (empty frame with the schema if none).

        ``corrupt``: when given, an unreadable file is left out and its message appended to it, so
        one damaged file does not hide the others; else it raises :class:`CorruptFileError`.
        """
        folder = self.root(run_id) / table
        files = sorted(folder.glob("*/epoch=*.parquet")) if folder.is_dir() else []
        frames = []
        for f in files:
            what = f"analysis table {table!r} of run {run_id!r}, layer {f.parent.name!r}, {f.stem}"
            try:
                frames.append(self._read_versioned(f, what, table, columns))
            except CorruptFileError as exc:
                if corrupt is None:
                    raise
                corrupt.append(str(exc))
        if not frames:
            return schema.ANALYSIS_SCHEMAS[table].empty_table().to_pandas()[columns or slice(None)]
        return pd.concat(frames, ignore_index=True)

    def write_status(self, run_id: str, status: dict[str, Any]) -> None:
        with atomic_path(self.root(run_id) / "status.json") as tmp:
            tmp.write_text(json.dumps(status, indent=2), encoding="utf-8")

    def read_status(self, run_id: str) -> dict[str, Any]:
        path = self.root(run_id) / "status.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}


def _missing_as_nan(frame: pd.DataFrame, table: str, columns: list[str] | None) -> pd.DataFrame:
    """An analysis table read from an older store version, with the columns it lacks added as NaN
    (version 1 ``network.parquet`` has no c1_shuffled, c2_shuffled, n_units)."""
    sch = _schema_of(table)
    missing = [n for n in (columns or sch.names) if n in sch.names and n not in frame.columns]
    return frame.assign(**dict.fromkeys(missing, np.nan)) if missing else frame


def _schema_of(table: str) -> pa.Schema:
    return schema.ANALYSIS_SCHEMAS.get(table) or RUN_TABLES[table]


def new_run_id(cfg: Any, store: RunStore, *, tag: str = "") -> str:
    """The configured run id, or ``<data>-<model>[-<tag>]-<YYYYmmdd-HHMMSS>`` made unique in the store.

    A generated id is reserved (:meth:`RunStore.reserve_run`, an atomic mkdir), so two processes
    starting in the same second get two ids (the second with a suffix ``-2``, ``-3``, ...).
    """
    if cfg.run_id:
        return cfg.run_id
    model = cfg.model.name.replace(":", "-").lower()
    base = f"{cfg.data.name}-{model}-{tag + '-' if tag else ''}{datetime.now(UTC):%Y%m%d-%H%M%S}"[:60]
    run_id, k = base, 2
    while not store.reserve_run(run_id):
        run_id, k = f"{base}-{k}", k + 1
    return run_id


def _upgrade_run_info(info: dict[str, Any]) -> dict[str, Any]:
    """Converter for older run.json versions. run.json is the same in versions 1 and 2 (version 2 adds
    analysis columns, which :meth:`AnalysisStore.read` fills with NaN for older files, analysis/baselines.parquet,
    which readers treat as absent, and always saves checkpoints/epoch=0000.pt): nothing to convert."""
    version = int(info.get("schema_version", 1))
    if version > schema.SCHEMA_VERSION:
        raise StoreError(
            f"run {info.get('run_id')!r} was written by a newer ClusterScope (store schema {version}, "
            f"this one reads up to {schema.SCHEMA_VERSION}); upgrade clusterscope."
        )
    return info


# ------------------------------------------------------------------------------------- run claims


def claim_path(store: RunStore, run_id: str) -> Path:
    return store.root / ".claims" / f"{check_run_id(run_id)}.json"


def claim_run(store: RunStore, run_id: str, owner: dict[str, Any]) -> bool:
    """Take the exclusive right to train or resume ``run_id`` (a sweep trial); False if another process holds it.

    The claim is ``.claims/<run_id>.json``, created with O_EXCL (atomic on local filesystems and
    NFS v3+), holding ``owner`` (pid, pid_start, host). A claim whose process is gone (same host)
    is stale and taken over.
    """
    from backend.liveness import process_alive

    path = claim_path(store, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                return False  # being written right now, or unreadable: leave it to its owner
            if isinstance(held, dict) and not process_alive(held):
                path.unlink(missing_ok=True)
                continue
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(owner | {"claimed": now_iso()}, fh)
        return True
    return False


def release_run(store: RunStore, run_id: str) -> None:
    claim_path(store, run_id).unlink(missing_ok=True)
