"""A run's analysis results: ``analysis/<table>/<layer>/epoch=NNNN.parquet`` per snapshot, ``analysis/<name>.parquet``
per run, ``analysis/status.json``."""

from __future__ import annotations

import contextlib
import json
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

# whole-run analysis tables, analysis/<name>.parquet (baselines: schema version 2 on)
RUN_TABLES = {"network": schema.NETWORK_SCHEMA, "rotation": schema.ROTATION_SCHEMA, "baselines": schema.BASELINES_SCHEMA,
              "cka": schema.CKA_SCHEMA}  # cka: schema version 3


class AnalysisFiles:
    """analysis/<table>/<layer>/epoch=NNNN.parquet per snapshot, analysis/<name>.parquet per run.

    Every file carries the analysis parameters and their hash in its metadata, so a re-analysis can
    tell what is up to date without reading the data.
    """

    def __init__(self, store: StoreBase) -> None:
        self.store = store

    def root(self, run_id: str) -> Path:
        return layout.analysis_dir(self.store.root, run_id)

    def path(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> Path:
        check_table(table)
        return layout.analysis_file(self.store.root, run_id, table, layer, epoch)

    def table_dir(self, run_id: str, table: str) -> Path:
        """``analysis/<table>``: the per-(layer, epoch) files of a snapshot table."""
        return layout.analysis_dir(self.store.root, run_id, check_table(table))

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

    def remove(self, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> None:
        """Delete a table's file if present (a whole-run table such as ``network``, ``rotation``, or one
        (layer, epoch) file), e.g. one that can no longer be trusted."""
        self.path(run_id, table, layer, epoch).unlink(missing_ok=True)

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

    def has_any(self, run_id: str, table: str) -> bool:
        """Whether any (layer, epoch) file of ``table`` is written (cheap: stops at the first)."""
        try:
            return any(True for _ in self.table_dir(run_id, table).rglob("*.parquet"))
        except OSError:
            return False

    def read_all(self, run_id: str, table: str, columns: list[str] | None = None,
                 corrupt: list[str] | None = None) -> pd.DataFrame:
        """Every (layer, epoch) file of ``table`` concatenated (empty frame with the schema if none).

        ``corrupt``: when given, an unreadable file is left out and its message appended to it, so
        one damaged file does not hide the others; else it raises :class:`CorruptFileError`.
        """
        folder = self.table_dir(run_id, table)
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
        with atomic_path(layout.analysis_status(self.store.root, run_id)) as tmp:
            tmp.write_text(json.dumps(status, indent=2), encoding="utf-8")

    def read_status(self, run_id: str) -> dict[str, Any]:
        path = layout.analysis_status(self.store.root, run_id)
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}


def check_table(table: str) -> str:
    if table not in schema.ANALYSIS_SCHEMAS and table not in RUN_TABLES:
        raise StoreError(f"analysis table {table!r} is not one of {sorted(schema.ANALYSIS_SCHEMAS)} + "
                         f"{', '.join(RUN_TABLES)}.")
    return table


def _missing_as_nan(frame: pd.DataFrame, table: str, columns: list[str] | None) -> pd.DataFrame:
    """An analysis table read from an older store version, with the columns it lacks added as NaN
    (version 1 ``network.parquet`` has no c1_shuffled, c2_shuffled, n_units)."""
    sch = _schema_of(table)
    missing = [n for n in (columns or sch.names) if n in sch.names and n not in frame.columns]
    return frame.assign(**dict.fromkeys(missing, np.nan)) if missing else frame


def _schema_of(table: str) -> pa.Schema:
    return schema.ANALYSIS_SCHEMAS.get(table) or RUN_TABLES[table]
