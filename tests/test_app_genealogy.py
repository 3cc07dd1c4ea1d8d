"""The Geometry page's cluster genealogy section (app/views/geometry_genealogy.py), through AppTest.from_function
on the analysed tiny run, and its pure Sankey figure."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.charts.genealogy import genealogy_sankey
from backend import api
from tests.conftest import figure_of


def _section() -> None:
    from app import loaders
    from app.views.geometry_genealogy import genealogy_section

    genealogy_section("tiny", loaders.read_run("tiny"), "fc1.relu", 2)


def test_genealogy_section_draws_and_selects(analysed_store: tuple[api.RunStore, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store, run = analysed_store
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(store.root))
    at = AppTest.from_function(_section, default_timeout=60).run()
    assert not at.exception, at.exception
    nodes, links, points = api.cluster_genealogy(store, run, layer="fc1.relu")
    sankey = figure_of(at.get("plotly_chart")[0])["data"][0]
    assert sankey["type"] == "sankey" and len(sankey["node"]["label"]) == len(nodes)
    assert sum(sankey["link"]["value"]) == links["shared"].sum()
    assert "split(s)" in at.caption[0].value
    at.selectbox(key="w-gen-node").set_value(int(nodes["node"].iloc[-1])).run()
    at.button(key="w-gen-select").click().run()
    assert not at.exception
    want = set(api.cluster_members(points, nodes["stage"].iloc[-1], int(nodes["cluster"].iloc[-1])).tolist())
    assert set(at.session_state["cs-selection"]["ids"]) == want and want
    at.radio(key="w-gen-across").set_value("layers").run()
    labels = figure_of(at.get("plotly_chart")[0])["data"][0]["node"]["label"]
    assert any(label.startswith("layer fc2.relu") for label in labels) and not at.exception


def test_sankey_marks_splits_and_uses_class_colours() -> None:
    import pandas as pd

    from app.charts.base import OKABE_ITO
    from backend.analysis.genealogy import genealogy

    pts = pd.DataFrame({"stage": [0] * 4 + [1] * 4, "sample_id": [0, 1, 2, 3] * 2, "cluster": [0, 0, 0, 0, 0, 0, 1, 1]})
    labels = pd.DataFrame({"sample_id": [0, 1, 2, 3], "class": [1, 1, 1, 1], "subclass": [-1] * 4})
    nodes, links = genealogy([0, 1], pts, labels, class_names={0: "a", 1: "b"})
    fig = genealogy_sankey(nodes, links, class_names=["a", "b"])
    node = fig.data[0].node
    assert node.label[0].endswith("(split)") and list(node.color) == [OKABE_ITO[1]] * 3
    assert "classes: b 100%" in node.customdata[0]
