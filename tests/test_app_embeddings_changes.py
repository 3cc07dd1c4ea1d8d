"""The Embeddings page's new colourings (neighbourhood change, forgetting, cartography region) and its "what changed"
section, through AppTest on the analysed tiny run."""

from __future__ import annotations

import numpy as np
import pytest

from backend import api
from tests.conftest import figure_of
from tests.test_app_embeddings import open_embeddings


def test_colour_by_neighbourhood_change_and_region(analysed_store: tuple[api.RunStore, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store, run = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run, layer="fc1.relu", epoch="2", colour="neighbour_change")
    assert not at.exception, at.exception
    trace = figure_of(at.get("plotly_chart")[0])["data"][0]
    assert "neighbourhood change" in trace["marker"]["colorbar"]["title"]["text"]
    stored = api.neighbour_change(store, run, "fc1.relu", 2).set_index("sample_id")["neighbour_change"]
    ids = [int(row[0]) for row in trace["customdata"]]
    np.testing.assert_allclose(trace["marker"]["color"], stored.loc[ids].to_numpy(), rtol=1e-6)
    at.sidebar.selectbox(key="w-colour").set_value("region").run()
    names = {t["name"] for t in figure_of(at.get("plotly_chart")[0])["data"]}
    assert names and names <= {"easy-to-learn", "ambiguous", "hard-to-learn"}
    assert names == set(api.training_events(store, run)["region"])
    at.sidebar.selectbox(key="w-colour").set_value("forgetting").run()
    trace = figure_of(at.get("plotly_chart")[0])["data"][0]
    assert "forgetting events" in trace["marker"]["colorbar"]["title"]["text"] and not at.exception


def test_what_changed_lists_the_movers_and_the_flips(analysed_store: tuple[api.RunStore, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store, run = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run, layer="fc1.relu", epoch="2")
    assert not at.exception, at.exception
    assert any(h.value == "What changed at epoch 2" for h in at.subheader)
    top = api.neighbour_change(store, run, "fc1.relu", 2).nlargest(12, "neighbour_change")
    movers = next(d.value for d in at.dataframe if "neighbour_change" in d.value.columns)
    assert movers["sample_id"].tolist() == top["sample_id"].tolist()
    assert any("recorded epochs only" in c.value for c in at.caption)
    # the approximate graph's floor, measured by benchmarks/change_floor.py (benchmarks/README.md)
    assert any("an unchanged neighbourhood scores a floor of about 0.003" in c.value for c in at.caption)
    flips = api.prediction_flips(store, run, 2)
    assert any(f"{len(flips):,} prediction flip(s)" in m.value for m in at.markdown) == (len(flips) > 0)
    at.button(key="w-changed-select").click().run()
    assert set(at.session_state["cs-selection"]["ids"]) == set(top["sample_id"].tolist())


def test_first_epoch_says_there_is_nothing_before(analysed_store: tuple[api.RunStore, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store, run = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run, layer="fc1.relu", epoch="0")
    assert not at.exception
    assert any("first recorded epoch" in c.value for c in at.caption)
