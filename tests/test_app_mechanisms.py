"""The Mechanisms page through AppTest: a tiny SynthClust run with recorded dynamics and the analysed tiny digits run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backend import api
from backend.config import load_config
from tests.test_app_neurons_layers import charts, open_page, param

DYN = (
    'data.name="synthclust"', 'data.target="superclass"', "data.synthclust.dim=60", "data.synthclust.clusters_per_class=4",
    "data.synthclust.train_per_cluster=20", "data.synthclust.test_per_cluster=5", 'model.name="mlp"', "model.depth=1",
    "model.width=12", "model.batch_norm=false", "model.bias=false", 'train.optimizer="layca-sgd"', "train.lr=0.037037",
    "train.batch_size=160", "train.epochs=6", 'train.device="cpu"', "snapshots.epochs=[0, 6]", "dynamics.enabled=true",
    "dynamics.every=1", "dynamics.probe_size=40", "dynamics.units=8", 'run_id="wtm"',
)


@pytest.fixture(scope="module")
def mech_root(analysed_store: tuple[api.RunStore, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the analysed tiny digits run (rotation table, no dynamics) and a SynthClust run with dynamics."""
    src, run_id = analysed_store
    root = tmp_path_factory.mktemp("mech") / "store"
    shutil.copytree(src.run_dir(run_id), root / run_id)
    api.train(load_config(None, DYN), api.open_store(root), progress=False)
    return root


def titles(at) -> list[str]:
    return [f["layout"]["title"]["text"] for f in charts(at)]


def test_mechanisms_page_shows_the_winner_take_most_panel(mech_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page("mechanisms", mech_root, monkeypatch, run="wtm", unit="3")
    assert not at.exception and not at.error
    shown = titles(at)
    for part in ("fc1.relu unit 3:<br>cluster means over training", "fc1.relu unit 3:<br>final pre-activations",
                 "Average derivative sign per layer (wtm)", "Loss share of easy and difficult examples (wtm)",
                 "Winner-take-most index per layer and epoch (wtm)"):
        assert any(part in t for t in shown), (part, shown)
    curves = next(f for f in charts(at) if "cluster means" in f["layout"]["title"]["text"])
    assert len(curves["data"]) == 8  # one line per cluster (2 classes x 4)
    assert {t["name"] for t in curves["data"]} == {"class 0", "class 1"}  # coloured and named by class
    assert param(at, "layer") == "fc1.relu" and param(at, "unit") == "3"
    # the unit picker lists the 8 recorded units, largest outgoing weight first
    picker = next(s for s in at.sidebar.selectbox if s.label == "Unit")
    assert len(picker.options) == 8 and picker.options[0].startswith("unit ") and "rank 1 " in picker.options[0]
    assert "|w out|" in picker.options[0]


def test_run_without_dynamics_says_how_to_record_and_rotation_is_titled_with_accuracy(
        mech_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page("mechanisms", mech_root, monkeypatch, run="tiny", rot="tiny,wtm")
    assert not at.exception and not at.error
    assert any("recorded no training dynamics" in i.value and "dynamics.enabled=true" in i.value for i in at.info)
    assert any("No layer rotation yet for **wtm**" in i.value for i in at.info)  # not analysed: said, not failed
    rot = next(f for f in charts(at) if f["layout"]["title"]["text"] == "Layer rotation across runs")
    info = api.read_run(api.open_store(mech_root), "tiny")
    assert any(f"test {info['final']['test_accuracy']:.2%}" in a["text"] for a in rot["layout"]["annotations"])
    assert {t["name"] for t in rot["data"]} == {"fc1.linear", "fc2.linear", "classifier"}
    assert param(at, "rot") == "tiny,wtm"


def test_a_corrupt_dynamics_file_is_reported_in_its_panel(mech_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    shutil.copytree(mech_root, root)
    victim = sorted((root / "wtm" / "dynamics" / "units" / "fc1.relu").glob("epoch=*.parquet"))[0]
    victim.write_bytes(b"not parquet")
    at = open_page("mechanisms", root, monkeypatch, run="wtm")
    assert not at.exception
    assert any("Training dynamics of fc1.relu" in e.value and "not a readable Parquet file" in e.value for e in at.error)
