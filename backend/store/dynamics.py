"""A run's training dynamics (``[dynamics]``, SCIENCE.md 3.4): the probe batch, its losses, the units' records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

import backend.store.layout as layout
from backend import schema
from backend.errors import StoreError
from backend.store.base import StoreBase


class DynamicsFiles(StoreBase):
    def _dynamics_files(self, run_id: str) -> list[Path]:
        loss = layout.dynamics_dir(self.root, run_id, layout.DYNAMICS_LOSS)
        units = layout.dynamics_dir(self.root, run_id, layout.DYNAMICS_UNITS)
        return sorted(loss.glob("epoch=*.parquet")) + sorted(units.glob("*/epoch=*.parquet"))

    def has_dynamics_probe(self, run_id: str) -> bool:
        return self.dynamics_probe_path(run_id).is_file()

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
        root = layout.dynamics_dir(self.root, run_id, layout.DYNAMICS_UNITS)
        return sorted(p.name for p in root.iterdir() if p.is_dir() and layout.LAYER_PATTERN.match(p.name)) if root.is_dir() else []

    def read_dynamics_probe(self, run_id: str) -> pd.DataFrame:
        return self._read_table(self.dynamics_probe_path(run_id), f"dynamics probe of run {run_id!r}").to_pandas()

    def read_dynamics_loss(self, run_id: str) -> pd.DataFrame:
        files = sorted(layout.dynamics_dir(self.root, run_id, layout.DYNAMICS_LOSS).glob("epoch=*.parquet"))
        return self._concat(files, schema.DYNAMICS_LOSS_SCHEMA, f"dynamics loss of run {run_id!r}")

    def read_dynamics_units(self, run_id: str, layer: str) -> pd.DataFrame:
        """Every recording of ``layer``: columns step, epoch, sample_id, unit, pre, grad_sign, sorted by step."""
        files = sorted(layout.dynamics_dir(self.root, run_id, layout.DYNAMICS_UNITS, layer).glob("epoch=*.parquet"))
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
