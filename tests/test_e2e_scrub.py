"""End to end: the Embeddings page switches epochs in the browser (app/views/embeddings_scrub.py), then the server follows.

The browser's messages to the server are held back while the epoch slider moves, so what is seen then was
drawn by the browser alone: the plot must show the stored layout of the new epoch, point by point, while the
URL and the scores still name the old one. Once the messages go out, Streamlit's rerun brings the URL and
the scores panel to the new epoch. Needs Chromium and the Python package `playwright`, like
tests/test_e2e_browser.py, whose helpers it uses.
"""

from __future__ import annotations

import time

import numpy as np

from app.charts import embeddings as charts_embeddings
from backend import api
from tests.test_e2e_browser import PLOT, chromium_page

LAYER = "fc2.relu"
# holds the page's messages to the server while window.__hold is true; window.__release() sends them
HOLD = """window.__hold = false; window.__held = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (d) { if (window.__hold) { window.__held.push([this, d]); return; } return send.call(this, d); };
window.__release = () => {
  window.__hold = false; const h = window.__held; window.__held = []; h.forEach(([ws, d]) => send.call(ws, d));
};"""
# every point drawn by the page's first figure: {sample id: [x, y]}, and the frames it holds
DRAWN = f"""() => {{
  const gd = document.querySelector('{PLOT}'), out = {{}};
  for (const t of gd._fullData) for (let k = 0; k < t.x.length; k++) out[t.customdata[k][0]] = [t.x[k], t.y[k]];
  return {{points: out, frames: Object.keys(gd._transitionData._frameHash || {{}})}};
}}"""


def stored(store: api.RunStore, run_id: str, epoch: int) -> dict[int, tuple[float, float]]:
    pts = api.read_analysis(store, run_id, "points", LAYER, epoch)
    xy = pts[["umap_x", "umap_y"]].to_numpy(np.float32)
    return {int(i): (float(x), float(y)) for i, (x, y) in zip(pts["sample_id"], xy, strict=True)}


def same(drawn: dict[str, list[float]], layout: dict[int, tuple[float, float]]) -> bool:
    """Whether the points drawn are those of ``layout``: the same samples, each where the layout puts it."""
    ids = sorted(layout)
    if sorted(int(k) for k in drawn) != ids:
        return False
    return bool(np.allclose([drawn[str(i)] for i in ids], [layout[i] for i in ids], rtol=1e-5, atol=1e-6))


def wait_for(page, check, what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def test_the_epoch_slider_redraws_in_the_browser_then_the_page_follows(
        server: str, analysed_store: tuple[api.RunStore, str]) -> None:
    store, run_id = analysed_store
    epochs = {e: stored(store, run_id, e) for e in (1, 2)}
    assert epochs[1] != epochs[2]
    with chromium_page() as page:
        page.add_init_script(HOLD)
        page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch=1", timeout=60_000)
        page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
        page.get_by_text(f"{LAYER} · epoch 1", exact=True).wait_for(timeout=30_000)  # the scores panel
        page.wait_for_function("() => document.querySelector('.stApp')?.getAttribute('data-test-script-state')"
                               " === 'notRunning'", timeout=60_000)
        drawn = page.evaluate(DRAWN)
        assert {f"{charts_embeddings.SCRUB_FRAME}{e}" for e in (0, 1, 2)} <= set(drawn["frames"])
        assert same(drawn["points"], epochs[1])

        page.evaluate("window.__hold = true")  # the server hears nothing of what follows
        page.locator('[data-testid="stSidebar"] input[type="range"][aria-label="Epoch"]').focus()
        page.keyboard.press("ArrowRight")  # epochs 0, 1, 2: one step right is epoch 2
        points = wait_for(page, lambda: (p := page.evaluate(DRAWN)["points"]) and not same(p, epochs[1]) and p,
                          "the plot was not redrawn in the browser")
        assert same(points, epochs[2])
        assert "epoch 2" in page.evaluate(f"() => document.querySelector('{PLOT}').layout.title.text")
        assert "epoch=1" in page.url and page.evaluate("window.__held.length") > 0  # no rerun yet
        assert page.get_by_text(f"{LAYER} · epoch 1", exact=True).is_visible()

        page.evaluate("window.__release()")  # the rerun: the URL and the scores follow
        page.wait_for_url("**epoch=2**", timeout=30_000)
        page.get_by_text(f"{LAYER} · epoch 2", exact=True).wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelector('.stApp')?.getAttribute('data-test-script-state')"
                               " === 'notRunning'", timeout=60_000)
        assert same(page.evaluate(DRAWN)["points"], epochs[2])
        assert page.locator('[data-testid="stException"]').count() == 0
