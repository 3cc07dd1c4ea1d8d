"""The second view's cluster colours (app/charts/clusters.py): a cluster takes the colour and shape of the first
view's cluster holding more than half of its samples (paired one to one), every other cluster a pair no cluster of
either view has; on hand-made clusters, then on the analysed tiny run through the page (AppTest)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.charts import clusters
from app.charts.base import NOISE_COLOUR
from backend import api
from tests.conftest import figure_of
from tests.test_app_embeddings import open_embeddings

PALETTE = ["#a", "#b", "#c"]
SHAPES = ["circle", "square"]


def frame(groups: dict[int, range]) -> pd.DataFrame:
    return pd.DataFrame([(i, c) for c, ids in groups.items() for i in ids], columns=["sample_id", "cluster"])


def test_paired_clusters_take_the_first_views_colours_and_the_others_new_ones() -> None:
    ref = frame({0: range(0, 10), 1: range(10, 20), -1: range(20, 26)})
    # 7 is ref's 0 and 5 ref's 1 under other ids; 8 holds what ref calls noise; 9 is half ref 0 and half ref 1
    view = frame({7: range(0, 8), 5: range(10, 18), 8: range(20, 26), 9: [8, 9, 18, 19], -1: range(26, 28)})
    colours, symbols = clusters.matched_styles(ref, view, PALETTE, SHAPES)
    assert list(colours) == ["noise", "cluster 5", "cluster 7", "cluster 8", "cluster 9"]  # the legend's order
    assert (colours["cluster 7"], symbols["cluster 7"]) == ("#a", "circle")  # ref's cluster 0 (the first id)
    assert (colours["cluster 5"], symbols["cluster 5"]) == ("#b", "circle")  # ref's cluster 1
    # 8 shares nothing with a cluster of ref; 9 is paired with no one (7 and 5 hold the pairs): new (colour, shape)s
    assert (colours["cluster 8"], symbols["cluster 8"]) == ("#c", "circle")
    assert (colours["cluster 9"], symbols["cluster 9"]) == ("#a", "square")
    assert (colours["noise"], symbols["noise"]) == (NOISE_COLOUR, "circle")


def test_a_split_cluster_gives_its_colour_to_the_part_holding_most_of_it() -> None:
    ref = frame({0: range(0, 20)})
    view = frame({2: range(0, 14), 3: range(14, 20)})
    colours, _ = clusters.matched_styles(ref, view, PALETTE, SHAPES)
    assert colours == {"cluster 2": "#a", "cluster 3": "#b"}
    # a cluster with exactly half of its samples in its pair does not take the pair's colour (more than half)
    colours, _ = clusters.matched_styles(ref, frame({4: range(16, 24)}), PALETTE, SHAPES)
    assert colours == {"cluster 4": "#b"}


def test_the_reference_styles_are_those_the_page_draws() -> None:
    from app.charts import embeddings as charts_embeddings

    names = ["noise"] + [f"cluster {i}" for i in range(20)]
    colours = charts_embeddings.cluster_colours(names, charts_embeddings.CLUSTER_PALETTE)
    symbols = charts_embeddings.marker_symbols(colours)
    ref = clusters.reference_styles(np.arange(-1, 20), charts_embeddings.CLUSTER_PALETTE, charts_embeddings.SYMBOLS)
    assert {n: (colours[n], symbols[n]) for n in names} == {
        ("noise" if c < 0 else f"cluster {c}"): style for c, style in ref.items()}


def test_the_second_view_colours_its_clusters_by_the_first_views(analysed_store: tuple[api.RunStore, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from app.charts import embeddings as charts_embeddings

    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", colour="cluster",
                         second="layer", layer_b="fc1.relu")
    assert not at.exception
    a, b = (figure_of(c) for c in at.get("plotly_chart")[:2])
    assert "per layer" in a["layout"]["legend"]["title"]["text"]
    assert b["layout"]["legend"]["title"]["text"] == charts_embeddings.LEGEND_TITLES["matched"]
    style_a = {t["name"]: (t["marker"]["color"], t["marker"]["symbol"]) for t in a["data"]}
    members = {}
    for fig in (a, b):
        for t in fig["data"]:
            ids = np.asarray(t["customdata"])[:, 0]
            members[id(fig), t["name"]] = set(ids.tolist())
    drawn_b = []
    for t in b["data"]:
        mine = members[id(b), t["name"]]
        style = (t["marker"]["color"], t["marker"]["symbol"])
        drawn_b.append(style)
        if t["name"] == "noise":
            continue
        best, shared = max(((n, len(mine & members[id(a), n])) for n in style_a if n != "noise"), key=lambda x: x[1])
        if style in style_a.values():  # a colour of view A: the cluster of A holding most of its samples, more than half
            holder = next(n for n, s in style_a.items() if s == style)
            assert holder == best and shared > len(mine) / 2, (t["name"], holder, best)
    assert len(set(drawn_b)) == len(drawn_b)  # every legend entry of B differs
    assert any(s in style_a.values() for s in drawn_b[1:])  # the tiny run's layers do share clusters
