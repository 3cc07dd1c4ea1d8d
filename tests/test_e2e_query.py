"""End to end: the nearest-neighbours query sample marked in the Embeddings plots (app/charts/query.py), in a real
browser (Chromium through Playwright).

Typing a sample id in the neighbours panel draws the sample as a star on top of every point and its neighbours as
rings, each in the legend; the epoch slider moves them with the points in the browser alone (the figure's epoch
frames carry their positions: the page's messages to the server are held meanwhile, as in
tests/test_e2e_scrub.py), then the rerun keeps them; a second view marks them too. Needs Chromium and the Python
package `playwright`, like tests/test_e2e_browser.py, whose helpers it uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app.charts import query as charts_query
from backend import api
from tests.test_e2e_browser import PLOT, chromium_page, save
from tests.test_e2e_scrub import HOLD, LAYER, stored, wait_for

SAMPLE, K = 12, 10
# per figure on the page: its title and its query marks ({name, ids, xy, on top: the figure's last traces})
MARKS = f"""() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => {{
  const full = gd._fullData || [], n = full.length;
  return {{title: gd._fullLayout?.title?.text ?? '', marks: full.filter(t => t.meta === '{charts_query.QUERY_META}').map(t => ({{
    name: t.name, ids: Array.from(t.customdata || [], c => c[0]), xy: Array.from(t.x || [], (x, k) => [x, t.y[k]]),
    top: t.index >= n - 2, legend: t.showlegend}}))}};
}})"""
IDLE = "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'"


def neighbours(store: api.RunStore, run_id: str, epoch: int, layer: str = LAYER) -> list[int]:
    ids, acts = api.read_activations(store, run_id, layer, epoch)
    return api.nearest_neighbours(ids, acts, SAMPLE, k=K, post_relu=True)["sample_id"].tolist()


def marked(figure: dict, positions: dict[int, tuple[float, float]], nearest: list[int], found_at: int) -> bool:
    """Whether ``figure`` (one item of MARKS) marks SAMPLE with a star and ``nearest`` with rings, at ``positions``,
    on top of the points and in the legend (the rings' entry naming LAYER and ``found_at``, the epoch of their search)."""
    marks = {m["name"]: m for m in figure["marks"]}
    star, rings = marks.get(charts_query.QUERY), marks.get(charts_query.neighbours_name(K, LAYER, found_at))
    if star is None or rings is None or star["ids"] != [SAMPLE] or sorted(rings["ids"]) != sorted(nearest):
        return False
    assert star["top"] and rings["top"] and star["legend"] and rings["legend"]
    at = {i: xy for m in (star, rings) for i, xy in zip(m["ids"], m["xy"], strict=True)}
    return bool(np.allclose([at[i] for i in sorted(at)], [positions[i] for i in sorted(at)], rtol=1e-5, atol=1e-6))


def test_the_query_sample_is_marked_and_follows_the_epoch_in_the_browser(
        server: str, analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> None:
    store, run_id = analysed_store
    epochs = {e: stored(store, run_id, e) for e in (0, 1, 2)}
    near = {e: neighbours(store, run_id, e) for e in (0, 1, 2)}
    with chromium_page() as page:
        page.add_init_script(HOLD)
        page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch=1", timeout=60_000)
        page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
        page.wait_for_function(IDLE, timeout=60_000)
        assert page.evaluate(MARKS)[0]["marks"] == []  # no query yet

        box = page.get_by_role("spinbutton", name="Sample id")
        box.fill(str(SAMPLE))
        box.press("Enter")
        wait_for(page, lambda: marked(page.evaluate(MARKS)[0], epochs[1], near[1], 1),
                 "the query sample and its neighbours are not marked at epoch 1")
        page.wait_for_function(IDLE, timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        legend = page.locator(f"{PLOT} .legend").first.text_content()
        assert charts_query.QUERY in legend and charts_query.neighbours_name(K, LAYER, 1) in legend
        save(page, "embeddings-query.png", tmp_path)

        page.evaluate("window.__hold = true")  # the server hears nothing of what follows: the browser moves the marks
        page.locator('[data-testid="stSidebar"] input[type="range"][aria-label="Epoch"]').focus()
        page.keyboard.press("ArrowRight")  # epochs 0, 1, 2: epoch 2
        wait_for(page, lambda: "epoch 2" in page.evaluate(MARKS)[0]["title"], "the plot did not switch to epoch 2")
        # the frame moves the marks with the points: epoch 2's positions (of epoch 1's neighbours, until the rerun)
        assert marked(page.evaluate(MARKS)[0], epochs[2], near[1], 1)
        assert "epoch=1" in page.url and page.evaluate("window.__held.length") > 0  # no rerun yet

        page.evaluate("window.__release()")  # the rerun finds epoch 2's neighbours and keeps the marks
        page.wait_for_url("**epoch=2**", timeout=30_000)
        wait_for(page, lambda: marked(page.evaluate(MARKS)[0], epochs[2], near[2], 2),
                 "the marks are not those of epoch 2 after the rerun")

        page.wait_for_function(IDLE, timeout=60_000)
        option = page.get_by_role("option", name="Another epoch", exact=True)
        for _ in range(3):  # a second view marks them too (the list may close if a late rerun redraws the sidebar)
            page.get_by_role("combobox", name="Second view", exact=True).click()
            try:
                option.wait_for(timeout=10_000)
                break
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
        option.click()
        wait_for(page, lambda: len(page.evaluate(MARKS)) == 2 and all(f["marks"] for f in page.evaluate(MARKS)),
                 "the second view does not mark the query")
        page.wait_for_function(IDLE, timeout=60_000)
        for figure in page.evaluate(MARKS):
            epoch = int(re.search(r"epoch (\d+)", figure["title"]).group(1))
            assert marked(figure, epochs[epoch], near[2], 2), figure["title"]
        assert page.locator('[data-testid="stException"]').count() == 0
        save(page, "embeddings-query-two-views.png", tmp_path)
