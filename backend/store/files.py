"""The store's file primitives: atomic writes, Parquet tables in and out, with the errors that name the file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from backend.errors import CorruptFileError, StoreError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def write_table(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        # Activations are noisy floats: dictionary encoding would only waste time on them.
        pq.write_table(table, tmp, compression="zstd", use_dictionary=["split", "label_name", "superclass_name"])


def read_table(path: Path, what: str, columns: list[str] | None = None, *,
               optional: pa.Schema | None = None) -> pa.Table:
    """The Parquet file's ``columns`` (all: None). ``optional``: columns an older schema version lacks; where the
    file lacks one it reads as nulls of the field's type (docs/store.md, Versions)."""
    if not path.is_file():
        raise StoreError(f"{what} not found: expected {path}.")
    try:
        if optional is None:
            return pq.read_table(path, columns=columns)
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=None if columns is None else [c for c in columns if c in present
                                                                            or c not in optional.names])
    except (pa.ArrowException, OSError) as exc:
        raise CorruptFileError(f"{what} at {path} is not a readable Parquet file ({exc}); the file is corrupt.") from None
    for field in optional:
        if field.name not in present and (columns is None or field.name in columns):
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return table
