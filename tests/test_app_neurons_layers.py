"""The Neurons and Layers pages through AppTest, on the analysed tiny run (MLP: fc1.relu, fc2.relu; epochs 0-2)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backend import api
from tests.conftest import figure_of

MAIN = Path(__file__).resolve().parent.parent / "app" / "main.py"


def page_path(name: str) -> str:
    """The page's path as main.py registers it (pages live in one folder next to main.py)."""
    found = re.search(rf'st\.Page\("([^"]*/{name}\.py)"', MAIN.read_text(encoding="utf-8"))
    assert found, f"main.py does not register a {name}.py page"
    return found.group(1)


def open_page(name: str, root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(root))
    at = AppTest.from_file(str(MAIN), default_timeout=90)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page_path(name))
    return at.run()


def charts(at: AppTest) -> list[dict]:
    return [figure_of(_with_int_shapes(c)) for c in at.get("plotly_chart")]


def _with_int_shapes(chart):
    """Plotly writes a 2-D typed array's shape as the string "2, 3", which figure_of cannot reshape by."""

    def fix(node):
        if isinstance(node, dict):
            if isinstance(node.get("shape"), str) and "bdata" in node:
                return node | {"shape": [int(n) for n in node["shape"].split(",")]}
            return {k: fix(v) for k, v in node.items()}
        return [fix(v) for v in node] if isinstance(node, list) else node

    spec = json.dumps(fix(json.loads(chart.proto.spec)))
    return SimpleNamespace(proto=SimpleNamespace(spec=spec))


def chart(at: AppTest, title: str) -> dict:
    """The figure whose title contains ``title``."""
    matches = [f for f in charts(at) if title in f["layout"]["title"]["text"]]
    assert len(matches) == 1, [f["layout"]["title"]["text"] for f in charts(at)]
    return matches[0]


def param(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def copy_store(store: api.RunStore, tmp_path: Path) -> api.RunStore:
    """A private copy of the shared fixture store, safe to damage."""
    shutil.copytree(store.root, tmp_path / "store")
    return api.open_store(tmp_path / "store")


# ------------------------------------------------------------------------------------------ neurons


def test_neurons_page_shows_the_units_and_the_chosen_units_distributions(
        analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_page("neurons", store.root, monkeypatch)
    assert not at.exception and not at.error
    assert at.title[0].value == "Neurons"
    assert at.sidebar.selectbox(key="w-layer").value == "fc2.relu"  # last layer by default
    assert at.sidebar.select_slider(key="w-epoch").value == 2
    units = api.read_analysis(store, run_id, "units", "fc2.relu", 2)
    table = at.dataframe[0].value
    assert table["unit"].tolist() == units["unit"].tolist() and table["c1"].tolist() == pytest.approx(units["c1"].tolist())
    assert set(table["class (c3)"]) <= {"round", "stroke", "bend", "twin-curve", "hook"}  # names, not ids
    unit = at.sidebar.selectbox(key="w-unit-tiny-fc2.relu").value
    assert unit == int(units.loc[~units["dead"]].sort_values("c1").iloc[-1]["unit"])  # most selective unit
    assert param(at, "unit") == str(unit)

    dist = chart(at, f"fc2.relu unit {unit}: pre-activations")
    assert dist["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert dist["layout"]["yaxis"]["title"]["text"].startswith("pre-activation")
    samples = api.read_samples(store, run_id)
    train_ids = samples.loc[samples["split"] == "train", "sample_id"].to_numpy()
    for epoch in (0, 1, 2):  # every training sample's value appears once per epoch
        ids, values = api.read_activations(store, run_id, "fc2.relu", epoch)
        got = [y for t in dist["data"] if t["x"] and t["x"][0] == str(epoch) for y in t["y"]]
        assert sorted(got) == pytest.approx(sorted(values[np.isin(ids, train_ids), unit]), abs=1e-5)
    scores = chart(at, "scores over training")
    assert [t["name"] for t in scores["data"]][:3] == ["selectivity c1", "variance ratio c3", "purity (%)"]
    assert scores["data"][0]["x"] == [0, 1, 2]
    assert scores["data"][0]["y"][2] == pytest.approx(float(units.loc[units["unit"] == unit, "c1"].iloc[0]))
    best = chart(at, "Best-neuron c1 per subclass")
    assert best["layout"]["yaxis"]["title"]["text"] == "subclasses (count)"
    every = api.read_analysis(store, run_id, "units")
    every = every[every["epoch"] == 2]
    expected = every.groupby("c1_subclass")["c1"].max()  # one value per subclass that is some unit's best
    assert sorted(best["data"][0]["x"]) == pytest.approx(sorted(expected.tolist()))
    assert len(at.image) >= 1  # top-activating thumbnails


def test_changing_unit_layer_and_epoch_changes_the_figures(analysed_store: tuple[api.RunStore, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = analysed_store
    at = open_page("neurons", store.root, monkeypatch, layer="fc2.relu", epoch="2", unit="0")

    def dist_values() -> list[float]:
        return [y for t in chart(at, "pre-activations")["data"] for y in t["y"]]

    before = dist_values()
    at.sidebar.selectbox(key="w-unit-tiny-fc2.relu").set_value(5).run()
    assert not at.exception and param(at, "unit") == "5"
    assert chart(at, "pre-activations")["layout"]["title"]["text"].startswith("fc2.relu unit 5")
    assert dist_values() != before
    at.sidebar.selectbox(key="w-layer").set_value("fc1.relu").run()
    assert not at.exception and param(at, "layer") == "fc1.relu"
    assert "fc1.relu unit 5" in chart(at, "pre-activations")["layout"]["title"]["text"]  # unit kept: valid here
    vline = [s["x0"] for s in chart(at, "scores over training")["layout"]["shapes"] if s["type"] == "line"]
    table_before = at.dataframe[0].value["c3"].tolist()
    at.sidebar.select_slider(key="w-epoch").set_value(1).run()
    assert not at.exception and param(at, "epoch") == "1"
    assert at.dataframe[0].value["c3"].tolist() != table_before
    assert [s["x0"] for s in chart(at, "scores over training")["layout"]["shapes"] if s["type"] == "line"] != vline
    at.segmented_control(key="w-compare").set_value("every class").run()
    assert not at.exception
    assert {t["type"] for t in chart(at, "pre-activations")["data"]} == {"box"}


def test_query_params_restore_the_neuron_view(analysed_store: tuple[api.RunStore, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_page("neurons", store.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1", unit="3")
    assert not at.exception
    assert at.sidebar.selectbox(key="w-layer").value == "fc1.relu"
    assert at.sidebar.select_slider(key="w-epoch").value == 1
    assert at.sidebar.selectbox(key="w-unit-tiny-fc1.relu").value == 3
    assert "fc1.relu unit 3" in chart(at, "pre-activations")["layout"]["title"]["text"]
    # a stale unit (out of range) falls back to the default instead of failing
    at = open_page("neurons", store.root, monkeypatch, layer="fc1.relu", unit="999")
    assert not at.exception and at.sidebar.selectbox(key="w-unit-tiny-fc1.relu").value in range(16)


def test_corrupt_units_file_gives_an_error_panel(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    copy = copy_store(store, tmp_path)
    copy.analysis.path(run_id, "units", "fc2.relu", 1).write_bytes(b"not parquet")
    at = open_page("neurons", copy.root, monkeypatch, layer="fc2.relu", epoch="2")
    assert not at.exception
    assert len(at.error) == 1 and "Unit scores" in at.error[0].value and "epoch 1" in at.error[0].value
    assert chart(at, "pre-activations")  # the other panels still draw
    at.sidebar.select_slider(key="w-epoch").set_value(1).run()
    assert not at.exception
    assert any("Units of fc2.relu at epoch 1" in e.value for e in at.error)


def test_unanalysed_run_and_empty_store_say_what_to_do(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    copy = copy_store(store, tmp_path)
    shutil.rmtree(copy.analysis.root(run_id))
    for name in ("neurons", "layers"):
        at = open_page(name, copy.root, monkeypatch)
        assert not at.exception
        assert f"clusterscope analyze {run_id}" in at.info[0].value
        shown = at.dataframe[0].value  # what the run does hold
        assert shown["layer"].tolist() == ["fc1.relu", "fc2.relu"] and shown["epochs"].tolist() == ["0, 1, 2"] * 2
        empty = open_page(name, tmp_path / "empty", monkeypatch)
        assert not empty.exception and "make demo" in empty.info[0].value


# ------------------------------------------------------------------------------------------ layers


def test_layers_page_heatmap_follows_the_score_and_links_to_embeddings(
        analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_page("layers", store.root, monkeypatch)
    assert not at.exception and not at.error
    assert at.title[0].value == "Layers"
    layers = api.read_analysis(store, run_id, "layers")
    heat = chart(at, "class purity per layer and epoch")
    assert heat["data"][0]["y"] == ["fc1.relu", "fc2.relu"] and heat["data"][0]["x"] == ["0", "1", "2"]
    expected = layers.pivot(index="layer", columns="epoch", values="class_purity").loc[["fc1.relu", "fc2.relu"]]
    assert np.allclose(np.asarray(heat["data"][0]["z"], dtype=float), expected.to_numpy(), equal_nan=True)
    assert heat["data"][0]["colorscale"][0][1] == "#440154"  # Viridis
    link = at.get("page_link")[0].proto
    best = layers.loc[layers["class_purity"].idxmax()]
    assert link.query_string == f"run={run_id}&layer={best['layer']}&epoch={int(best['epoch'])}"
    assert "Embeddings" in link.label

    at.selectbox(key="w-score").set_value("c3").run()
    assert not at.exception and param(at, "score") == "c3"
    heat = chart(at, "c3 (layer) per layer and epoch")
    expected = layers.pivot(index="layer", columns="epoch", values="c3").loc[["fc1.relu", "fc2.relu"]]
    assert np.allclose(np.asarray(heat["data"][0]["z"], dtype=float), expected.to_numpy())

    rotation = chart(at, "Layer rotation and accuracy")
    assert rotation["layout"]["yaxis"]["range"] == [0, 1]
    kernels = api.read_analysis(store, run_id, "rotation").sort_values("depth")["layer"].unique().tolist()
    assert [t["name"] for t in rotation["data"]] == [*kernels, "train", "test"]
    network = chart(at, "c1-c4 over training")
    table = api.read_analysis(store, run_id, "network").sort_values("epoch")
    assert next(t for t in network["data"] if t["name"] == "c3")["y"] == pytest.approx(table["c3"].tolist())
    floors = [t for t in network["data"] if t["name"].startswith("noise floor")]  # c1's, then c2's
    assert [f["y"] for f in floors] == [pytest.approx(table["c1_shuffled"].tolist()), pytest.approx(table["c2_shuffled"].tolist())]


def test_layers_query_params_restore_the_score(analysed_store: tuple[api.RunStore, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = analysed_store
    at = open_page("layers", store.root, monkeypatch, score="noise_fraction")
    assert not at.exception
    assert at.selectbox(key="w-score").value == "noise_fraction"
    assert "lowest noise fraction" in at.get("page_link")[0].proto.label


def test_corrupt_rotation_file_only_breaks_its_panel(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    copy = copy_store(store, tmp_path)
    copy.analysis.path(run_id, "rotation").write_bytes(b"garbage")
    at = open_page("layers", copy.root, monkeypatch)
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("Layer rotation")
    titles = [f["layout"]["title"]["text"] for f in charts(at)]
    assert any("per layer and epoch" in t for t in titles) and any("c1-c4" in t for t in titles)
