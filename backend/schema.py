"""Column names, pyarrow schemas and the schema version of the run store (docs/store.md).

The run store is a public format: users open it with pandas or DuckDB. Change it only with a
bump of :data:`SCHEMA_VERSION` and a converter for the previous version in ``store.py``.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

# Key-value metadata keys carried by every Parquet file of the store.
META_PREFIX = "clusterscope."
META_SCHEMA_VERSION = META_PREFIX + "schema_version"
META_RUN_ID = META_PREFIX + "run_id"
META_KIND = META_PREFIX + "kind"  # metrics | samples | activations
META_LAYER = META_PREFIX + "layer"
META_EPOCH = META_PREFIX + "epoch"
META_REDUCTION = META_PREFIX + "reduction"  # max | mean (global pooling of conv channels)

RUN_STATUSES = ("running", "complete", "interrupted", "failed")
SPLITS = ("train", "test")

METRICS_SCHEMA = pa.schema(
    [
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # 'train' | 'test'
        pa.field("loss", pa.float64()),
        pa.field("accuracy", pa.float64()),  # fraction in [0, 1]
        pa.field("lr", pa.float64()),  # learning rate used during this epoch (epoch 0: the initial one)
    ]
)

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),  # fine class, e.g. the digit
        pa.field("label_name", pa.string(), nullable=False),
        pa.field("superclass", pa.int32()),  # null when the data set has no superclasses
        pa.field("superclass_name", pa.string()),
        pa.field("thumbnail", pa.binary()),  # PNG bytes
    ]
)

SAMPLE_ID = "sample_id"


def unit_column(index: int) -> str:
    """Column name of unit ``index`` in an activation file: u0000, u0001, ..."""
    return f"u{index:04d}"


def activation_schema(n_units: int) -> pa.Schema:
    """``sample_id`` then one float32 column per unit."""
    return pa.schema(
        [pa.field(SAMPLE_ID, pa.int64(), nullable=False)]
        + [pa.field(unit_column(i), pa.float32(), nullable=False) for i in range(n_units)]
    )


def file_metadata(kind: str, run_id: str, **extra: object) -> dict[bytes, bytes]:
    """The key-value metadata written into every Parquet file of the store."""
    meta = {META_SCHEMA_VERSION: str(SCHEMA_VERSION), META_RUN_ID: run_id, META_KIND: kind}
    meta.update({META_PREFIX + k: str(v) for k, v in extra.items()})
    return {k.encode(): v.encode() for k, v in meta.items()}
