"""A run's recorded tables: metrics, the probe samples, activation snapshots, predictions, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import backend.store.layout as layout
from backend import schema
from backend.errors import CorruptFileError, StoreError
from backend.store.base import StoreBase
from backend.store.files import atomic_path


class TableFiles(StoreBase):
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

    def has_samples(self, run_id: str) -> bool:
        """Whether the probe set is written (a run stopped before its first snapshot has none)."""
        return self.samples_path(run_id).is_file()

    def read_samples(self, run_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self._read_table(self.samples_path(run_id), f"probe samples of run {run_id!r}", columns,
                                optional=schema.SAMPLES_ADDED_IN_3).to_pandas()

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

    def write_predictions(self, run_id: str, epoch: int, sample_ids: np.ndarray, logits: np.ndarray,
                          targets: np.ndarray) -> None:
        """predictions/epoch=NNNN.parquet from the probe set's outputs. logits : (n_samples, n_outputs)."""
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged model's NaN logits give NaN confidences
            z = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        pred = logits.argmax(axis=1)
        targets = np.asarray(targets, dtype=np.int64)
        known = (targets >= 0) & (targets < prob.shape[1])  # an imported model may have fewer outputs than targets
        true_p = np.where(known, prob[np.arange(len(prob)), np.where(known, targets, 0)], np.nan)
        table = pa.table({"sample_id": np.asarray(sample_ids, np.int64), "prediction": pred.astype(np.int32),
                          "correct": pred == targets, "confidence": prob.max(axis=1).astype(np.float32),
                          "true_probability": true_p.astype(np.float32)},
                         schema=schema.PREDICTIONS_SCHEMA)
        table = table.replace_schema_metadata(schema.file_metadata("predictions", run_id, epoch=int(epoch)))
        self._write_table(self.predictions_path(run_id, epoch), table)

    def read_predictions(self, run_id: str, epoch: int) -> pd.DataFrame:
        """The probe set's predictions at ``epoch``; a version-2 file has no ``true_probability``: it reads as NaN."""
        what = f"predictions of run {run_id!r} at epoch {epoch}"
        frame = self._read_table(self.predictions_path(run_id, epoch), what).to_pandas()
        if "true_probability" not in frame.columns:
            frame["true_probability"] = np.float32(np.nan)
        return frame

    def snapshots(self, run_id: str) -> pd.DataFrame:
        """The recorded snapshots: one row per (layer, epoch) file, columns layer, epoch, path."""
        root = layout.activations_dir(self.root, run_id)
        rows = []
        if root.is_dir():
            for layer_dir in sorted(p for p in root.iterdir() if p.is_dir()):
                for f in sorted(layer_dir.iterdir()):
                    m = layout.EPOCH_FILE.match(f.name)
                    if m:
                        rows.append({"layer": layer_dir.name, "epoch": int(m.group(1)), "path": str(f)})
        return pd.DataFrame(rows, columns=["layer", "epoch", "path"])

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
        ckpt_dir = layout.checkpoints_dir(self.root, run_id)
        for f in sorted(ckpt_dir.glob("*.pt")) if ckpt_dir.is_dir() else []:
            try:
                zipfile.ZipFile(f).close()  # torch.save writes a zip; a truncated one has no directory
            except (zipfile.BadZipFile, OSError) as exc:
                bad[f"checkpoint {f.name}"] = f"checkpoint of run {run_id!r} at {f} is corrupt ({exc})."
        return bad

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, run_id: str, epoch: int, state_dict: dict[str, Any]) -> Path:
        return self._save_torch(self.checkpoint_path(run_id, epoch), state_dict)

    def load_checkpoint(self, run_id: str, epoch: int) -> dict[str, Any]:
        return self._load_torch(self.checkpoint_path(run_id, epoch), f"checkpoint of run {run_id!r} at epoch {epoch}")

    def checkpoint_epochs(self, run_id: str) -> list[int]:
        ckpt_dir = layout.checkpoints_dir(self.root, run_id)
        if not ckpt_dir.is_dir():
            return []
        return sorted(int(m.group(1)) for f in ckpt_dir.iterdir() if (m := layout.CHECKPOINT_FILE.match(f.name)))

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
