"""How the Kendall tables are assembled (SCIENCE.md 3.2): the same runs give the same table whichever
command builds it, unmeasurable axes, ties in test accuracy, and which runs are compared by default.

The runs are written through the store API (real run.json and Parquet files, no training): each has a
real run config, a final test accuracy and a network table with the c1 the test chooses.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backend import api, schema
from backend.cli import cli
from backend.config import to_dict
from tests.conftest import tiny_config

BASE = to_dict(tiny_config())


def add_run(store: api.RunStore, run_id: str, *, acc: float, c1: float, sets: dict[str, object],
            sweep: dict | None = None) -> None:
    """A complete, analysed run whose config is the tiny config with ``sets`` ({"train.lr": 0.1, ...})."""
    config = copy.deepcopy(BASE)
    for key, value in sets.items():
        section, name = key.split(".")
        config[section][name] = value
    config["run_id"] = run_id
    info = {"status": "complete", "config": config, "final": {"train_accuracy": 1.0, "test_accuracy": acc}}
    if sweep is not None:
        info["sweep"] = sweep
    store.create_run(run_id, info)
    row = {n: [np.nan] for n in schema.NETWORK_SCHEMA.names} | {"epoch": [2], "c1": [c1], "c3": [c1 / 2]}
    net = pd.DataFrame(row).astype({n: "Int32" for n in schema.NETWORK_SCHEMA.names if n.startswith(("k_", "epoch"))})
    store.analysis.write(run_id, "network", net, params="{}", params_hash="test")


def add_sweep(store: api.RunStore, name: str, points: list[tuple[dict[str, object], float, float]]) -> list[str]:
    """Sweep runs; each point is (axes as the sweep records them, c1, test accuracy). A linked axis
    "a,b" is recorded as a list of values, as backend.sweep does."""
    ids = []
    for i, (axes, c1, acc) in enumerate(points):
        sets = {}
        for axis, value in axes.items():
            sets |= dict(zip(axis.split(","), value, strict=True)) if "," in axis else {axis: value}
        run_id = f"{name}-{i}"
        add_run(store, run_id, acc=acc, c1=c1, sets=sets, sweep={"name": name, "file": "", "axes": axes, "trial": i})
        ids.append(run_id)
    return ids


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


# ------------------------------------------------------------------ 1. linked axes: one column per key

LINKED = "train.lr,train.weight_decay"
LINKED_POINTS = [  # (lr, wd) linked, x width; c1 and test accuracy chosen so that merging the axis changes psi
    ({LINKED: [0.01, 0.0], "model.width": 8}, 0.10, 0.70),
    ({LINKED: [0.01, 0.0], "model.width": 16}, 0.30, 0.80),
    ({LINKED: [0.1, 0.0], "model.width": 8}, 0.20, 0.90),
    ({LINKED: [0.1, 0.0], "model.width": 16}, 0.25, 0.95),
    ({LINKED: [0.1, 4e-5], "model.width": 8}, 0.40, 0.85),
    ({LINKED: [0.1, 4e-5], "model.width": 16}, 0.45, 0.75),
]


def test_a_linked_axis_gives_one_column_per_hyperparameter_whichever_command(tmp_path: Path) -> None:
    store = api.open_store(tmp_path / "store")
    ids = add_sweep(store, "linked", LINKED_POINTS)
    _, by_runs = api.compare(store, ids)
    _, by_sweep = api.compare_sweep(store, "linked")
    pd.testing.assert_frame_equal(by_sweep, by_runs)
    psi = [c for c in by_sweep.columns if c.startswith("psi[")]
    assert psi == ["psi[model.width]", "psi[train.lr]", "psi[train.weight_decay]"]
    # by hand: psi[lr] compares (0.01, 0) with (0.1, 0) at each width: +1 at width 8, -1 at width 16 -> 0;
    # psi[wd] compares (0.1, 0) with (0.1, 4e-5): c1 rises and accuracy falls at both widths -> -1;
    # psi[width]: +1 at (0.01, 0), +1 at (0.1, 0), -1 at (0.1, 4e-5) -> 1/3; total = (0 - 1 + 1/3) / 3
    row = by_sweep.set_index("measure").loc["c1"]
    assert row[["psi[train.lr]", "psi[train.weight_decay]", "psi[model.width]", "granulated_total"]].tolist() == \
        pytest.approx([0.0, -1.0, 1 / 3, -2 / 9])

    root = str(store.root)
    invoke("compare", *ids, "--store", root, "--csv", str(tmp_path / "runs.csv"))
    invoke("compare", "--sweep", "linked", "--store", root, "--csv", str(tmp_path / "sweep.csv"))
    assert (tmp_path / "runs.csv").read_text() == (tmp_path / "sweep.csv").read_text()
