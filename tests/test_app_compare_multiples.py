"""The Compare page's side-by-side embeddings (app/views/compare_multiples.py), through Streamlit's AppTest on a real store."""

from __future__ import annotations

import re
import shutil

import pytest

from app.charts import multiples as charts_multiples
from backend import api
from tests.test_app_compare_runs import COMPARE, chart, compare_store, open_page  # noqa: F401 - a fixture


def test_one_panel_per_run_at_a_shared_layer_and_epoch(compare_store: api.RunStore,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(compare_store.root, monkeypatch, COMPARE, runs="tiny,tiny-b,tiny-c")
    assert not at.exception
    layers = sorted(api.read_analysis(compare_store, "tiny", "layers")["layer"].unique())
    layer_box = at.selectbox(key="w-cmp-mlayer")
    assert sorted(layer_box.options) == layers and layer_box.value == layers[-1]  # the last hidden layer
    assert at.selectbox(key="w-cmp-mepoch").options == ["0", "1", "2"] and at.selectbox(key="w-cmp-mepoch").value == 2
    fig = chart(at, "compare-multiples")
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    acc = {r: api.read_run(compare_store, r)["final"]["test_accuracy"] for r in ("tiny", "tiny-b", "tiny-c")}
    assert titles == [f"<b>{r}</b> · test {100 * acc[r]:.1f} %<br>lr={lr}"
                      for r, lr in (("tiny", 0.05), ("tiny-b", 0.01), ("tiny-c", 0.1))]
    points = api.read_analysis(compare_store, "tiny", "points", layers[-1], 2)
    panel1 = [t for t in fig["data"] if t["xaxis"] == "x"]
    assert sum(len(t["x"]) for t in panel1) == len(points)  # every probe sample (below the per-panel cap)
    colours = {}
    for t in fig["data"]:
        assert colours.setdefault(t["name"], t["marker"]["color"]) == t["marker"]["color"]  # one colour per class
    assert sum(t["showlegend"] for t in fig["data"]) == len(colours) == 5  # five superclasses, one legend
    assert fig["layout"]["title"]["text"] == f"{layers[-1]} · epoch 2 · UMAP"
    assert at.query_params["mlayer"] == layers[-1] and at.query_params["mepoch"] == "2"

    at.selectbox(key="w-cmp-mepoch").select(0)
    at.radio(key="w-cmp-mproj").set_value("pca")
    at.radio(key="w-cmp-mcolour").set_value("fine").run()
    assert not at.exception
    fig = chart(at, "compare-multiples")
    assert fig["layout"]["title"]["text"] == f"{layers[-1]} · epoch 0 · PCA"
    assert fig["layout"]["xaxis"]["title"]["text"] == "PC 1 (a.u.)"
    assert len({t["name"] for t in fig["data"]}) == 10  # the ten digits
    assert fig["layout"]["legend"]["title"]["text"] == "fine label"
    assert (at.query_params["mepoch"], at.query_params["mproj"], at.query_params["mcolour"]) == ("0", "pca", "fine")


def test_too_many_runs_are_capped_and_the_page_says_so(compare_store: api.RunStore,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts_multiples, "MAX_PANELS", 2)  # the cap, lowered to fit the three runs of the store
    at = open_page(compare_store.root, monkeypatch, COMPARE, runs="tiny,tiny-b,tiny-c")
    assert not at.exception
    assert any("Showing the first 2 of 3 runs" in c.value and "left out: tiny-c" in c.value for c in at.caption)
    assert len(chart(at, "compare-multiples")["layout"]["annotations"]) == 2


def rename_layers(store: api.RunStore, run_id: str, prefix: str) -> None:
    """Give every analysed layer of a run a new name (as another architecture would have)."""
    root = store.analysis.root(run_id)
    for table in ("layers", "points"):
        for folder in sorted(p for p in (root / table).iterdir() if p.is_dir()):
            for f in sorted(folder.iterdir()):
                epoch = int(re.search(r"epoch=(\d+)", f.name).group(1))
                df = store.analysis.read(run_id, table, folder.name, epoch).drop(columns=["layer", "epoch"])
                store.analysis.write(run_id, table, df, params="{}", params_hash="test", layer=prefix + folder.name,
                                     epoch=epoch)
            shutil.rmtree(folder)


def test_runs_without_a_shared_layer_name_are_matched_by_depth(compare_store: api.RunStore,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rename_layers(compare_store, "tiny-b", "other")
    at = open_page(compare_store.root, monkeypatch, COMPARE, runs="tiny,tiny-b")
    assert not at.exception
    assert any("share no layer name" in c.value for c in at.caption)
    box = at.selectbox(key="w-cmp-mlayer")
    assert box.options == ["last hidden layer", "2nd-to-last hidden layer"] and box.value == "depth:1"
    fig = chart(at, "compare-multiples")
    last = api.read_analysis(compare_store, "tiny", "layers").sort_values("depth")["layer"].iloc[-1]
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert f"{last} · epoch 2" in titles[0] and f"other{last} · epoch 2" in titles[1]
    assert fig["layout"]["title"]["text"] == "last hidden layer · epoch 2 · UMAP"
