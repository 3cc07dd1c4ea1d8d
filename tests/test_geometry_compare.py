"""Geometry measures (SCIENCE.md 7) in the Kendall tables: run_measures' layer means, their rows in
`clusterscope compare`, and a version-2 analysis (no geometry columns) giving NaN rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from backend import api, schema
from backend.analysis.compare import GEOMETRY_DIRECTIONS, MEASURES
from backend.analysis.geometry import GEOMETRY_COLUMNS
from tests.test_compare_tables import add_run, invoke


def add_layers(store: api.RunStore, run_id: str, nc1: tuple[float, float]) -> None:
    """Two layers at epoch 2 whose class NC1 is ``nc1`` and k-NN accuracy 1 - NC1 / 10."""
    for depth, value in enumerate(nc1):
        row = {n: np.nan for n in schema.ANALYSIS_SCHEMAS["layers"].names if n not in ("layer", "epoch")}
        row |= {"depth": depth, "n_units": 16, "n_alive": 16, "n_points": 10, "min_cluster_size": 5, "n_clusters": 2,
                "nc1_class": value, "knn_class": 1 - value / 10}
        store.analysis.write(run_id, "layers", pd.DataFrame([row]), params="{}", params_hash="test", layer=f"l{depth}", epoch=2)


def test_geometry_rows_in_the_kendall_table(store: api.RunStore) -> None:
    assert set(GEOMETRY_COLUMNS) == set(GEOMETRY_DIRECTIONS) and set(GEOMETRY_COLUMNS) <= set(MEASURES)
    # less collapse (higher NC1) with higher accuracy here: tau of nc1_class is +1, of knn_class -1
    for i, (acc, nc1) in enumerate([(0.7, (2.0, 1.0)), (0.8, (3.0, 2.0)), (0.9, (4.0, 3.0))]):
        add_run(store, f"r{i}", acc=acc, c1=0.1 * i, sets={"train.lr": 0.01 * (i + 1)})
        add_layers(store, f"r{i}", nc1)
    assert api.run_measures(store, "r1")["nc1_class"] == 2.5  # the mean over layers at the last epoch
    _, table = api.compare(store, ["r0", "r1", "r2"])
    rows = table.set_index("measure")
    assert rows.loc["nc1_class", "tau"] == 1.0 and rows.loc["knn_class", "tau"] == -1.0
    assert rows.loc["nc1_class", "runs"] == 3 and rows.loc["probe_class", "runs"] == 0  # NaN everywhere: no runs
    out = invoke("--store", str(store.root), "compare", "r0", "r1", "r2")
    assert "nc1_class" in out and "twonn_id" in out and "lower = more collapsed" in out
    for f in store.analysis.table_dir("r2", "layers").rglob("*.parquet"):  # r2 analysed by version 2
        pq.write_table(pq.read_table(f).drop_columns(list(GEOMETRY_COLUMNS)), f)
    assert np.isnan(api.run_measures(store, "r2")["nc1_class"])
    _, table = api.compare(store, ["r0", "r1", "r2"])
    assert table.set_index("measure").loc["nc1_class", "runs"] == 2
