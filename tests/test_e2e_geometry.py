"""End to end: the Geometry page (SCIENCE.md 7) in a real browser: a shared link draws the CKA heatmaps, and
choosing another epoch redraws the layer x layer heatmap and writes the epoch to the URL; a click on a node of the
cluster genealogy's Sankey selects that cluster's samples. Needs Chromium and the Python package `playwright`, like
tests/test_e2e_browser.py, whose helpers it uses."""

from __future__ import annotations

import re
import time
from pathlib import Path

from app.charts.genealogy import META as GENEALOGY_META
from backend import api
from tests.test_e2e_browser import PLOT, chromium_page, save
from tests.test_e2e_selection import highlighted

IDLE = "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'"
FIRST_TITLE = f"() => document.querySelector('{PLOT}')?._fullLayout?.title?.text ?? null"


def test_geometry_page_draws_and_follows_the_epoch(server: str, analysed_store: tuple[api.RunStore, str],
                                                   tmp_path: Path) -> None:
    _, run_id = analysed_store
    with chromium_page() as page:
        page.goto(f"{server}/geometry?run={run_id}&epoch=2&layer=fc2.relu", timeout=60_000)
        page.wait_for_selector(PLOT, timeout=120_000)
        page.wait_for_function(f"() => document.querySelectorAll('{PLOT}').length >= 4", timeout=60_000)
        assert page.get_by_role("heading", name="Geometry").is_visible()
        assert page.evaluate(FIRST_TITLE).startswith("Layers at epoch 2")
        cells = page.evaluate(f"() => document.querySelector('{PLOT}')._fullData[0].y")
        assert list(cells) == ["fc1.relu", "fc2.relu"]
        save(page, "geometry.png", tmp_path)

        page.locator('[data-testid="stSelectbox"]', has_text="Epoch (layer x layer)").click()
        page.get_by_role("option", name="0", exact=True).click()
        page.wait_for_url("**epoch=0**", timeout=30_000)
        deadline = time.monotonic() + 30
        while not (page.evaluate(FIRST_TITLE) or "").startswith("Layers at epoch 0"):
            assert time.monotonic() < deadline, "the layer x layer heatmap did not follow the epoch"
            time.sleep(0.2)
        assert page.locator('[data-testid="stException"]').count() == 0
        save(page, "geometry-epoch0.png", tmp_path)


# every node of the genealogy Sankey drawn: its index in the figure's nodes and the middle of its box on the page
SANKEY_NODES = f"""() => {{
  const gd = Array.from(document.querySelectorAll('{PLOT}')).find(g => g.layout?.meta === '{GENEALOGY_META}');
  if (!gd) return null;
  gd.scrollIntoView();
  return Array.from(gd.querySelectorAll('.sankey-node')).map(el => {{
    const r = el.querySelector('.node-rect').getBoundingClientRect(), d = el.__data__;
    return {{index: d.node.pointNumber, x: r.left + r.width / 2, y: r.top + r.height / 2, h: r.height}};
  }});
}}"""


def test_clicking_a_genealogy_node_selects_its_cluster(server: str, analysed_store: tuple[api.RunStore, str],
                                                       tmp_path: Path) -> None:
    """Issue 17: "click a cluster to select its samples": a click on a Sankey node makes that cluster's samples the
    selection (the page says so and picks it in the list), and the Embeddings page then shows and highlights them."""
    store, run_id = analysed_store
    nodes, _, points = api.cluster_genealogy(store, run_id, layer="fc2.relu")
    with chromium_page() as page:
        page.goto(f"{server}/geometry?run={run_id}&epoch=2&layer=fc2.relu", timeout=60_000)
        page.wait_for_function(f"() => ({SANKEY_NODES})()?.length > 0", timeout=120_000)
        page.wait_for_function(IDLE, timeout=60_000)
        page.wait_for_function(f"() => Array.from(document.querySelectorAll('{PLOT}'))"  # the click listener is on
                               f".some(g => g.layout?.meta === '{GENEALOGY_META}' && g.__csGenealogy)", timeout=30_000)
        drawn = page.evaluate(SANKEY_NODES)
        while (again := page.evaluate(SANKEY_NODES)) != drawn:  # the nodes move into place (a transition)
            drawn = again
            page.wait_for_timeout(200)
        target = max(drawn, key=lambda n: (n["index"] != 0, n["h"]))  # a tall node, not the first in the list
        row = nodes.loc[nodes["node"] == target["index"]].iloc[0]
        want = set(api.cluster_members(points, row["stage"], int(row["cluster"])).tolist())
        page.mouse.move(target["x"] - 30, target["y"])
        page.mouse.click(target["x"], target["y"])
        page.get_by_text(re.compile(rf"^{len(want)} samples of .* c{int(row['cluster'])}\b.* selected")).wait_for(timeout=30_000)
        page.wait_for_function(IDLE, timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        save(page, "geometry-genealogy-click.png", tmp_path)

        page.get_by_role("link", name="Open fc2.relu at epoch 2 in Embeddings").click()  # the same session
        page.get_by_role("heading", name=f"Selection: {len(want)} samples").wait_for(timeout=120_000)
        page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=60_000)
        page.wait_for_function(IDLE, timeout=60_000)
        deadline = time.monotonic() + 30
        while highlighted(page)[0] != want:  # the browser draws the highlight (app/views/embeddings_highlight.py)
            assert time.monotonic() < deadline, "the cluster's samples are not highlighted"
            page.wait_for_timeout(200)
