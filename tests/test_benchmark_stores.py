"""The benchmarks' synthetic stores are written through the store with today's schema: they broke twice when the
schema grew (samples' file_name in v3, the layers table's nc3_reason in v4) and nothing in the suite noticed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend import api


def test_dashboard_benchmark_store_is_readable(tmp_path: Path) -> None:
    from benchmarks.dashboard import EPOCHS, RUN_ID, build_store

    build_store(tmp_path, 40, 0, layers=("a.relu", "b.relu"), thumbnail=b"\x89PNG")
    store = api.open_store(tmp_path)
    assert len(api.read_samples(store, RUN_ID)) == 40
    for layer in ("a.relu", "b.relu"):
        for epoch in EPOCHS:
            assert len(api.read_analysis(store, RUN_ID, "points", layer, epoch)) == 40
            assert len(api.read_analysis(store, RUN_ID, "layers", layer, epoch)) == 1


def test_analysis_benchmark_run_is_readable(tmp_path: Path) -> None:
    from benchmarks.analysis import LAYER, write_synthetic_run

    rng = np.random.default_rng(0)
    values = rng.random((30, 8), dtype=np.float32)
    fine = np.arange(30) % 6
    store = api.open_store(tmp_path)
    write_synthetic_run(store, "bench", values, fine, fine // 2, epochs=(0, 1), test_every=5)
    samples = api.read_samples(store, "bench")
    assert len(samples) == 30 and (samples["split"] == "test").sum() == 6
    assert sorted(store.snapshots("bench")["epoch"].tolist()) == [0, 1]
    assert store.read_activations("bench", LAYER, 1)[1].shape == values.shape
