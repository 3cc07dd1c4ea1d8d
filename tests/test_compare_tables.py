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
from tests.test_app_compare_runs import COMPARE, open_page

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
    "a,b" is recorded as a list of values, as backend.jobs.sweep_spec does."""
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


# ------------------------------------------------------------------ 2. axes with no group of two runs

NOT_MEASURABLE = "not measurable: no two runs share the other settings"
RANDOM_POINTS = [  # the random search of docs/sweeps.md in small: every run has its own draws
    ({"train.augment": False, "model.dropout": 0.1127, "train.lr": 0.0213}, 0.10, 0.70),
    ({"train.augment": False, "model.dropout": 0.3018, "train.lr": 0.0871}, 0.30, 0.80),
    ({"train.augment": True, "model.dropout": 0.0415, "train.lr": 0.0502}, 0.20, 0.90),
    ({"train.augment": True, "model.dropout": 0.2466, "train.lr": 0.0134}, 0.25, 0.95),
]


def test_a_random_search_has_no_measurable_axis_and_says_so(tmp_path: Path) -> None:
    store = api.open_store(tmp_path / "store")
    add_sweep(store, "random", RANDOM_POINTS)
    _, table = api.compare_sweep(store, "random")
    row = table.set_index("measure").loc["c1"]
    assert row["tau"] == pytest.approx(1 / 3)  # tau over all pairs is still defined
    assert row["total_axes"] == 0 and np.isnan(row["granulated_total"])
    assert row["not_measurable"] == "model.dropout, train.lr, train.augment"

    out = invoke("compare", "--sweep", "random", "--store", str(store.root), "--csv", str(tmp_path / "t.csv"))
    assert f"model.dropout, train.lr, train.augment: {NOT_MEASURABLE}" in out
    csv = pd.read_csv(tmp_path / "t.csv").set_index("measure")
    assert csv.loc["c1", ["psi[model.dropout]", "psi[train.augment]", "psi[train.lr]"]].tolist() == [NOT_MEASURABLE] * 3
    assert csv.loc["c1", "granulated_total"] == "no measurable axis" and csv.loc["c1", "total_axes"] == 0


def test_an_unmeasurable_axis_is_left_out_of_the_total_which_counts_its_axes(tmp_path: Path) -> None:
    """lr x width grid plus one run with its own dropout and lr: dropout is not measurable (no two runs
    share every other setting), lr and width are, and the total averages those two."""
    store = api.open_store(tmp_path / "store")
    points = [({"train.lr": lr, "model.width": w, "model.dropout": 0.0}, c1, acc) for lr, w, c1, acc in
              [(0.01, 8, 0.1, 0.70), (0.01, 16, 0.3, 0.80), (0.1, 8, 0.2, 0.90), (0.1, 16, 0.25, 0.95)]]
    ids = add_sweep(store, "grid", [*points, ({"train.lr": 0.5, "model.width": 8, "model.dropout": 0.2}, 0.5, 0.6)])
    _, table = api.compare(store, ids)
    row = table.set_index("measure").loc["c1"]
    assert row["not_measurable"] == "model.dropout" and row["total_axes"] == 2
    assert (row["psi[train.lr]"], row["psi[model.width]"]) == pytest.approx((0.0, 1.0))
    assert row["granulated_total"] == pytest.approx(0.5)
    csv = tmp_path / "t.csv"
    out = invoke("compare", *ids, "--store", str(store.root), "--csv", str(csv))
    assert f"model.dropout: {NOT_MEASURABLE}" in out
    exported = pd.read_csv(csv).set_index("measure")
    assert exported.loc["c1", "psi[model.dropout]"] == NOT_MEASURABLE
    assert float(exported.loc["c1", "granulated_total"]) == pytest.approx(0.5)


def test_the_compare_page_names_the_unmeasurable_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = api.open_store(tmp_path / "store")
    add_sweep(store, "random", RANDOM_POINTS)
    at = open_page(store.root, monkeypatch, COMPARE, sweep="random")
    assert not at.exception
    kendall = next(d.value for d in at.dataframe if "measure" in d.value.columns).set_index("measure")
    assert not [c for c in kendall.columns if c.startswith("psi[")]  # no column of Nones
    assert kendall.loc["c1", "total_axes"] == 0 and np.isnan(kendall.loc["c1", "granulated_total"])
    notes = [i.value for i in at.info]
    assert any(f"model.dropout, train.lr, train.augment: {NOT_MEASURABLE}" in n for n in notes), notes


# ------------------------------------------------------------------ 3. ties in test accuracy

TIED_POINTS = [({"train.lr": lr}, c1, acc) for lr, c1, acc in
               [(0.01, 0.1, 0.9), (0.02, 0.2, 0.9), (0.05, 0.3, 0.9), (0.1, 0.4, 0.9), (0.2, 0.5, 0.8)]]


def test_the_table_says_how_many_pairs_tie_in_test_accuracy(tmp_path: Path) -> None:
    """4 runs at 90 % and one at 80 %: 6 of the 10 pairs tie, more than half, so the CLI warns."""
    store = api.open_store(tmp_path / "store")
    add_sweep(store, "tied", TIED_POINTS)
    _, table = api.compare_sweep(store, "tied")
    row = table.set_index("measure").loc["c1"]
    assert (row["pairs"], row["tied_accuracy"]) == (10, 6)
    # the 4 pairs with the 80 % run disagree, the 6 ties score 0 (SCIENCE.md 3.2): tau = -4/10, not +2/10
    assert row["tau"] == pytest.approx(-0.4)
    result = CliRunner().invoke(cli, ["compare", "--sweep", "tied", "--store", str(store.root), "--csv", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert "6 of the 10 pairs of runs tie in test accuracy" in result.stdout
    assert "warning: Most pairs of runs (6 of 10) tie in test accuracy, so this table says little" in result.stderr
    csv = pd.read_csv(tmp_path / "t.csv").set_index("measure")
    assert (csv.loc["c1", "pairs"], csv.loc["c1", "tied_accuracy"]) == (10, 6)

    other = api.open_store(tmp_path / "other")
    add_sweep(other, "linked", LINKED_POINTS)
    result = CliRunner().invoke(cli, ["compare", "--sweep", "linked", "--store", str(other.root)])
    assert "0 of the 15 pairs of runs tie in test accuracy" in result.stdout and "warning" not in result.stderr


def test_the_compare_page_warns_when_most_pairs_tie(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = api.open_store(tmp_path / "store")
    add_sweep(store, "tied", TIED_POINTS)
    at = open_page(store.root, monkeypatch, COMPARE, sweep="tied")
    assert not at.exception
    assert any("Most pairs of runs (6 of 10) tie in test accuracy" in w.value for w in at.warning)
    assert any("6 of the 10 pairs of runs tie in test accuracy" in c.value for c in at.caption)
    caption = next(c.value for c in at.caption if "reference code's Kendall" in c.value)
    assert "No tie counts as agreement" in caption and "counts ties as agreement" not in caption


def test_the_docs_say_how_ties_count() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "sweeps.md").read_text()
    assert "ties count as agreement" not in docs and "No tie counts as agreement" in docs


# ------------------------------------------------------------------ 4. one data set by default

def mixed_store(root: Path) -> api.RunStore:
    """Three digits runs trained on superclasses and one SynthClust run trained on its labels."""
    store = api.open_store(root)
    for i, (lr, c1, acc) in enumerate([(0.01, 0.1, 0.7), (0.05, 0.2, 0.8), (0.1, 0.3, 0.9)]):
        add_run(store, f"digits-{i}", acc=acc, c1=c1, sets={"train.lr": lr})
    add_run(store, "synth", acc=0.5, c1=0.9, sets={"data.name": "synthclust", "data.target": "label", "train.lr": 0.05})
    return store


def test_compare_without_runs_takes_one_data_set_and_warns_when_runs_mix(tmp_path: Path) -> None:
    store = mixed_store(tmp_path / "store")
    root = str(store.root)
    result = CliRunner().invoke(cli, ["compare", "--store", root, "--csv", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert "comparing the 3 runs on digits (target: superclass)" in result.stderr
    assert "left out: 1 on synthclust (target: label)" in result.stderr and "--all-data" in result.stderr
    assert "synth " not in result.stdout and "warning" not in result.stderr
    assert pd.read_csv(tmp_path / "t.csv").set_index("measure").loc["c1", "runs"] == 3
    assert pd.read_csv(tmp_path / "t.csv").set_index("measure").loc["c1", "tau"] == pytest.approx(1.0)

    for args in (["--all-data"], ["digits-0", "digits-1", "synth"]):
        result = CliRunner().invoke(cli, ["compare", *args, "--store", root])
        assert result.exit_code == 0, result.output
        assert "warning: these runs mix data sets or training targets (data.name=digits, data.target=superclass: " \
            in result.stderr
        assert "data.name=synthclust, data.target=label: 1 run)" in result.stderr


def test_the_compare_page_compares_one_data_set_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = mixed_store(tmp_path / "store")
    at = open_page(store.root, monkeypatch, COMPARE)
    assert not at.exception
    assert at.selectbox(key="w-cmp-data").value == "digits/superclass"
    runs = at.multiselect(key="w-cmp-runs-digits/superclass")
    assert runs.options == ["digits-0", "digits-1", "digits-2"] and runs.value == runs.options
    assert at.dataframe[0].value.set_index("measure").loc["c1", "runs"] == 3
    assert not [w for w in at.warning if "mix data sets" in w.value]

    at.selectbox(key="w-cmp-data").select("all").run()
    assert not at.exception and at.query_params["data"] == "all"
    assert "synth" in at.multiselect(key="w-cmp-runs-all").value
    assert at.dataframe[0].value.set_index("measure").loc["c1", "runs"] == 4
    assert any("These runs mix data sets or training targets" in w.value for w in at.warning)
