"""The geometry columns of analysis/layers and analysis/cka.parquet on a real analysed run (SCIENCE.md 7,
docs/store.md), their re-analysis rule, and how a version-2 run reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from backend import api
from backend.analysis.geometry import GEOMETRY_COLUMNS
from backend.store import RunStore


def _copy(src: RunStore, run_id: str, tmp_path: Path) -> RunStore:
    dst = RunStore(tmp_path / "copy")
    shutil.copytree(src.run_dir(run_id), dst.root / run_id)
    return dst


def test_geometry_columns_and_cka_table(analysed_store: tuple[RunStore, str]) -> None:
    store, run_id = analysed_store
    geo = api.layer_geometry(store, run_id)
    assert list(geo.columns[3:]) == list(GEOMETRY_COLUMNS) == list(api.GEOMETRY_MEASURES)
    last = geo[geo["epoch"] == 2]
    # the tiny run is trained on superclasses with predictions recorded: every value is there
    assert last[list(GEOMETRY_COLUMNS)].notna().all().all(), last
    assert last[["knn_class", "probe_class", "nc4_class", "knn_subclass"]].stack().between(0, 1).all()
    assert (last["nc1_class"] > 0).all() and (last["twonn_id"] > 0).all()
    cka = api.read_cka(store, run_id)
    layers = api.run_info(store, run_id).layers
    m = api.cka_layers(cka, 2, list(layers))
    assert m.shape == (2, 2) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T) and 0 < m.iloc[0, 1] < 1
    e = api.cka_epochs(cka, "fc2.relu")
    assert list(e.index) == [0, 1, 2] and np.allclose(np.diag(e), 1)
    to_last = api.cka_to_last(cka)
    assert len(to_last) == 6 and np.allclose(to_last[to_last["epoch"] == 2]["cka"], 1)


def test_cka_is_redone_only_when_needed(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    path = store.analysis.path(run_id, "cka")
    before = path.stat().st_mtime_ns
    api.analyze(store, run_id)
    assert path.stat().st_mtime_ns == before  # up to date: not rewritten
    off = api.analysis_config(store, run_id, ["analysis.geometry=false"])
    report = api.analyze(store, run_id, off)
    assert len(report.analysed) == 6 and not path.exists()  # a changed parameter redoes every snapshot
    assert api.layer_geometry(store, run_id)[list(GEOMETRY_COLUMNS)].isna().all().all()
    report = api.analyze(store, run_id, api.analysis_config(store, run_id, ["analysis.cka_batch=16"]))
    assert len(report.analysed) == 6 and path.exists() and not report.errors


def test_a_version_2_run_reads_with_nan(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    store.analysis.remove(run_id, "cka")
    for f in store.analysis.table_dir(run_id, "layers").rglob("*.parquet"):  # as version 2 wrote them
        table = pq.read_table(f)
        pq.write_table(table.drop_columns(list(GEOMETRY_COLUMNS)), f)
    geo = api.layer_geometry(store, run_id)
    assert len(geo) == 6 and geo[list(GEOMETRY_COLUMNS)].isna().all().all()
    assert api.read_cka(store, run_id).empty and api.cka_to_last(api.read_cka(store, run_id)).empty
    assert api.read_analysis(store, run_id, "layers")["nc1_class"].isna().all()
