"""The Embeddings page's density view (app/views/embeddings_density.py, app/charts/density.py): AppTest on the
analysed tiny run (1,797 points) with the draw limit lowered to 1,000 (CLUSTERSCOPE_DRAW_POINTS), and the pure
counting and region tests on synthetic points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.charts import density as charts_density
from app.views import embeddings_density
from backend import api
from tests.conftest import figure_of
from tests.test_app_embeddings import open_embeddings

LIMIT = 1_000  # below the tiny run's 1,797 probe samples


def test_above_the_draw_limit_the_page_shows_the_density_of_every_point(analysed_store: tuple[api.RunStore, str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    monkeypatch.setenv("CLUSTERSCOPE_DRAW_POINTS", str(LIMIT))
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2")
    assert not at.exception
    assert any(c.value.startswith("**Density view**: 1,797 samples are more than the 1,000") for c in at.caption)
    fig = figure_of(at.get("plotly_chart")[0])
    heat, *points = fig["data"]
    assert heat["type"] == "heatmap" and heat["colorscale"] == "Viridis"
    assert "points per pixel" in heat["colorbar"]["title"]["text"]
    assert "density view" in fig["layout"]["title"]["text"]
    assert int(np.nansum(np.asarray(heat["customdata"], dtype=float))) == 1_797  # every point counted, none sampled
    drawn = sum(len(t["x"]) for t in points)
    assert drawn == pytest.approx(LIMIT, abs=10) and all(t["type"] == "scattergl" for t in points)


def test_the_density_view_builds_only_the_views_it_draws(analysed_store: tuple[api.RunStore, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: a density view's first load builds every point's view (counted, selectable) and the sample drawn,
    not also a stratified sample of *Max points drawn* (200,000 of 10^6 points, then unused). Every view the page
    builds is recorded (the real builder still runs) after the loaders' view cache is emptied."""
    from app import loaders
    from app.charts import embeddings as charts_embeddings

    store, run_id = analysed_store
    monkeypatch.setenv("CLUSTERSCOPE_DRAW_POINTS", str(LIMIT))
    built: list[int] = []
    build = charts_embeddings.view_points

    def recorded(*args: object, max_points: int, **kwargs: object) -> pd.DataFrame:
        built.append(max_points)
        return build(*args, max_points=max_points, **kwargs)

    monkeypatch.setattr(charts_embeddings, "view_points", recorded)
    loaders._embedding_view.clear()  # a first load: no view cached by an earlier test
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="1")
    assert not at.exception and any("Density view" in c.value for c in at.caption)
    assert sorted(set(built)) == [embeddings_density.sample_size(200_000), 1_797], built


def test_up_to_the_draw_limit_every_point_is_drawn(analysed_store: tuple[api.RunStore, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    monkeypatch.delenv("CLUSTERSCOPE_DRAW_POINTS", raising=False)
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2")
    fig = figure_of(at.get("plotly_chart")[0])
    assert not at.exception and {t["type"] for t in fig["data"]} == {"scattergl"}
    assert sum(len(t["x"]) for t in fig["data"]) == 1_797
    assert not any("Density view" in c.value for c in at.caption)


def test_density_counts_every_point_in_its_pixel() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 10_000), rng.normal(5, 2, 10_000)
    d = charts_density.density(np.append(x, np.nan), np.append(y, 1.0), bins=64)
    assert d.counts.shape == (64, 64) and d.counts.sum() == 10_000 == d.total  # the NaN point is left out
    i, j = int((x[0] - d.x0) // d.dx), int((y[0] - d.y0) // d.dy)
    assert d.counts[j, i] >= 1
    trace = charts_density.density_trace(d)
    assert trace["colorbar"]["ticktext"][0] == "1" and "points per pixel" in trace["colorbar"]["title"]["text"]
    # the same counts as NumPy's histogram2d over the same image (a second implementation; a point exactly on a
    # pixel's edge may fall on either side, within rounding, so the points here are continuous)
    d = charts_density.density(x, y, bins=64)
    ranges = [[d.y0, d.y0 + 64 * d.dy], [d.x0, d.x0 + 64 * d.dx]]
    np.testing.assert_array_equal(d.counts, np.histogram2d(y, x, bins=64, range=ranges)[0].astype(np.int64))


def test_a_box_or_lasso_selects_every_point_in_its_region() -> None:
    xy = np.array([[0, 0], [1, 1], [2, 2], [3, 0], [0.5, 1.5]], dtype=float)
    box = {"selection": {"points": [], "box": [{"x": [0.6, 2.5], "y": [0.5, 2.5]}], "lasso": []}}
    assert charts_density.in_region(xy[:, 0], xy[:, 1], box).tolist() == [False, True, True, False, False]
    triangle = {"selection": {"points": [], "box": [], "lasso": [{"x": [-1, 4, -1], "y": [-1, -1, 4]}]}}
    # (3, 0) lies on the triangle's long edge: inside, as for Plotly's lasso (a test below)
    assert charts_density.in_region(xy[:, 0], xy[:, 1], triangle).tolist() == [True, True, False, True, True]
    assert charts_density.in_region(xy[:, 0], xy[:, 1], {"selection": {"points": [{"customdata": [3, 0]}]}}) is None
    full = pd.DataFrame({"sample_id": [10, 11, 12, 13, 14], "umap_x": xy[:, 0], "umap_y": xy[:, 1]})
    resolve = embeddings_density.region_resolver(full, "umap", lambda event: {99})
    assert resolve(box) == {11, 12} and resolve({"selection": {"points": [{}]}}) == {99}


def test_the_draw_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLUSTERSCOPE_DRAW_POINTS", raising=False)
    assert embeddings_density.draw_limit() == 200_000 and not embeddings_density.is_density(200_000)
    monkeypatch.setenv("CLUSTERSCOPE_DRAW_POINTS", "50")
    assert embeddings_density.is_density(51) and embeddings_density.sample_size(10_000) == 50


def test_the_hover_table_is_sent_once_per_browser_tab(analysed_store: tuple[api.RunStore, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The hover cards' table (MBs at 100,000 points) goes with the first run only; later runs of the same view
    send a small stand-in, and the selection's highlight is a small script of its own (embeddings_highlight)."""
    from app.views import embeddings

    store, run_id = analysed_store
    monkeypatch.delenv("CLUSTERSCOPE_DRAW_POINTS", raising=False)
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2")
    first = [h.proto.body for h in at.get("html")]
    table = "__csHoverInstalled"  # the hover script's own (the colouring script reads the table too: embeddings_colour)
    assert any(table in body and len(body) > 50_000 for body in first)
    at.run()
    again = [h.proto.body for h in at.get("html")]
    assert not at.exception and embeddings.HOVER_KEPT in again and not any(table in b for b in again)
    assert any("window.__csHighlight([]);" in b for b in again)


def test_a_selection_region_is_tested_on_the_positions_as_the_browser_has_them() -> None:
    """The browser draws float32 positions: a point whose float32 x is the box's edge is inside, as for Plotly,
    though its float64 x lies just outside."""
    edge = float(np.float32(0.1))  # 0.10000000149..., above the float64 0.1
    full = pd.DataFrame({"sample_id": [1, 2], "umap_x": [0.1, 0.05], "umap_y": [0.0, 0.0]})
    box = {"selection": {"points": [], "box": [{"x": [edge, 1.0], "y": [-1.0, 1.0]}], "lasso": []}}
    assert embeddings_density.region_resolver(full, "umap", lambda event: set())(box) == {1}


def test_a_selection_event_is_reported_by_what_it_says() -> None:
    """embeddings_select.report: a region as its boxes and lassos (not the points it selects in a layout), a
    click as its sample ids, nothing as ''."""
    from app.views.embeddings_select import report

    box = {"selection": {"points": [], "box": [{"xref": "x", "yref": "y", "x": [0, 1], "y": [0, 1]}], "lasso": []}}
    click = {"selection": {"points": [{"x": 0.5, "customdata": {"0": 7, "1": 2}}], "box": [], "lasso": []}}
    assert report(None) == report({"selection": {"points": [], "box": [], "lasso": []}}) == ""
    assert report(box) == report(box) != report(click) != ""
    assert '"points": [7]' in report(click)


def test_a_lasso_counts_the_points_on_its_edges_in_as_plotly_does() -> None:
    """Plotly's lasso tester (plotly.js src/lib/polygon.js) counts a point on an edge or a vertex as inside; the
    server's rule does too, so the server and the browser agree on the points a lasso passes through."""
    square = {"selection": {"points": [], "box": [], "lasso": [{"x": [0, 2, 2, 0], "y": [0, 0, 2, 2]}]}}
    xy = np.array([[1, 1], [0, 1], [2, 1], [1, 0], [1, 2], [0, 0], [2, 2], [3, 1], [1, 2.5]], dtype=float)
    inside = charts_density.in_region(xy[:, 0], xy[:, 1], square).tolist()
    assert inside == [True] * 7 + [False, False]
    diamond = {"selection": {"points": [], "box": [], "lasso": [{"x": [0, 1, 0, -1], "y": [-1, 0, 1, 0]}]}}
    xy = np.array([[0.5, 0.5], [-0.5, -0.5], [0, 0], [0.6, 0.6], [0, 1.0]], dtype=float)
    assert charts_density.in_region(xy[:, 0], xy[:, 1], diamond).tolist() == [True, True, True, False, True]
