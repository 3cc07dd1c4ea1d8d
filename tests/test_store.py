from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend import schema
from backend.errors import StoreError
from backend.store import RunStore, atomic_path


def test_activation_round_trip_and_metadata(store: RunStore) -> None:
    store.create_run("r1", {"status": "running"})
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 3)).astype(np.float32)
    ids = np.arange(100, 107)
    path = store.write_activations("r1", "fc1.relu", 5, ids, values, reduction="max")
    assert path == store.root / "r1" / "activations" / "fc1.relu" / "epoch=0005.parquet"
    got_ids, got = store.read_activations("r1", "fc1.relu", 5)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, values)
    # plain pyarrow, no ClusterScope code: names, types, metadata
    table = pq.read_table(path)
    assert table.column_names == ["sample_id", "u0000", "u0001", "u0002"]
    assert str(table.schema.field("u0001").type) == "float"
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["clusterscope.layer"] == "fc1.relu"
    assert meta["clusterscope.epoch"] == "5"
    assert meta["clusterscope.reduction"] == "max"
    assert meta["clusterscope.run_id"] == "r1"
    assert meta["clusterscope.schema_version"] == str(schema.SCHEMA_VERSION)
    assert store.snapshots("r1")[["layer", "epoch"]].values.tolist() == [["fc1.relu", 5]]


def test_version_2_samples_read_with_null_file_names(store: RunStore) -> None:
    """samples.parquet of schema version 2 has no file_name column: it reads as nulls (docs/store.md, Versions)."""
    store.create_run("r1", {"status": "running"})
    rows = {"sample_id": [3, 4], "split": ["train", "test"], "label": [0, 1], "label_name": ["a", "b"],
            "superclass": [None, None], "superclass_name": [None, None], "thumbnail": [b"", b""]}
    v2 = pa.table(rows, schema=pa.schema([f for f in schema.SAMPLES_SCHEMA if f.name != "file_name"]))
    pq.write_table(v2.replace_schema_metadata({b"clusterscope.schema_version": b"2"}), store.samples_path("r1"))
    got = store.read_samples("r1", columns=["sample_id", "label", "file_name"])
    assert list(got.columns) == ["sample_id", "label", "file_name"] and got["file_name"].isna().all()
    assert store.read_samples("r1")["file_name"].isna().all() and "file_name" not in store.read_samples("r1", ["label"])
    store.write_samples("r1", pa.table(rows | {"file_name": ["x/3.png", None]}))  # version 3 keeps them
    names = store.read_samples("r1", columns=["file_name"])["file_name"]
    assert names[0] == "x/3.png" and names.isna().tolist() == [False, True]


def test_duckdb_reads_the_store(store: RunStore) -> None:
    store.create_run("r1", {"status": "running"})
    store.write_metrics("r1", [{"epoch": 0, "split": "train", "loss": 2.0, "accuracy": 0.1, "lr": 0.1},
                               {"epoch": 0, "split": "test", "loss": 2.1, "accuracy": 0.2, "lr": 0.1}])
    got = duckdb.sql(f"select split, accuracy from '{store.metrics_path('r1')}' order by split").fetchall()
    assert got == [("test", 0.2), ("train", 0.1)]


@pytest.mark.parametrize("bad", ["../evil", "UPPER", "", "a/b", "x" * 65, ".hidden"])
def test_run_ids_are_validated_before_any_path(store: RunStore, bad: str) -> None:
    with pytest.raises(StoreError, match="is not valid"):
        store.run_dir(bad)


def test_layer_names_are_validated(store: RunStore) -> None:
    store.create_run("r1", {"status": "running"})
    with pytest.raises(StoreError, match="layer name"):
        store.activation_path("r1", "../../x", 0)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_run_and_unwritable_store(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s")
    store.create_run("r1", {"status": "running"})
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("r1", {"status": "running"})
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="is not writable"):
        RunStore(blocker / "store").ensure_writable()


def test_corrupt_files_are_reported(store: RunStore) -> None:
    store.create_run("r1", {"status": "running"})
    path = store.activation_path("r1", "fc1.relu", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(StoreError, match="not a readable Parquet file"):
        store.read_activations("r1", "fc1.relu", 0)
    store.run_json_path("r1").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.read_run("r1")


def test_newer_schema_is_refused(store: RunStore) -> None:
    store.create_run("r1", {"status": "running"})
    info = json.loads(store.run_json_path("r1").read_text())
    info["schema_version"] = schema.SCHEMA_VERSION + 1
    store.run_json_path("r1").write_text(json.dumps(info))
    with pytest.raises(StoreError, match="newer ClusterScope"):
        store.read_run("r1")


def test_checkpoint_loading_refuses_pickled_objects(store: RunStore, tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # would create the marker file if ever unpickled
            return (Path.touch, (marker,))

    store.create_run("r1", {"status": "running"})
    path = store.checkpoint_path("r1", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(StoreError, match="cannot be loaded safely"):
        store.load_checkpoint("r1", 0)
    assert not marker.exists()


def test_docs_store_examples_work(trained_store: tuple[RunStore, str]) -> None:
    """The pandas and DuckDB recipes of docs/store.md, run against a real run."""
    import pandas as pd

    store, run_id = trained_store
    run = store.run_dir(run_id)
    acts = pd.read_parquet(f"{run}/activations/fc2.relu/epoch=0002.parquet")
    samples = pd.read_parquet(f"{run}/samples.parquet", columns=["sample_id", "label", "superclass"])
    df = samples.merge(acts, on="sample_id")
    assert len(df) == len(samples) == len(acts)
    assert df.groupby("label")["u0003"].mean().shape == (10,)
    rows = duckdb.sql(
        "SELECT regexp_extract(filename, 'store[0-9]*/([^/]+)/', 1) AS run, max(accuracy) AS best "
        f"FROM read_parquet('{store.root}/*/metrics.parquet', filename = true) WHERE split = 'test' GROUP BY run"
    ).fetchall()
    assert rows[0][0] == run_id and 0.2 < rows[0][1] <= 1.0


def test_the_current_schema_version_has_one_row_in_the_versions_table() -> None:
    """docs/store.md, Versions: the current version is described in one row, the table's first (two rows of version 4
    had been left after a change was added to it after the bump)."""
    text = (Path(__file__).parents[1] / "docs" / "store.md").read_text(encoding="utf-8")
    table = text[text.index("## Versions"):]
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert [r.split("|")[1].strip() for r in rows].count(str(schema.SCHEMA_VERSION)) == 1
    assert rows[0].startswith(f"| {schema.SCHEMA_VERSION} |")
