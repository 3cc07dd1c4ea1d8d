"""End to end: a selection followed over epochs and layers, and its trajectories, in a real browser.

A box selection on the Embeddings page, then the epoch slider's arrow key, then another layer: the same
samples stay highlighted and the selection panel (composition, CSV) keeps showing them; the trajectories
toggle draws their paths; a selection in the new view replaces the old one; Clear clears it. Uses the
helpers of tests/test_e2e_selection.py and tests/test_e2e_browser.py (Chromium through Playwright).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import api
from tests.test_e2e_browser import PLOT, chromium_page, save
from tests.test_e2e_selection import COUNT_SENDS, decode, select, wait_idle
from tests.test_e2e_selection import highlighted as highlighted_views

# per figure, per trace: [customdata, marker opacity (an array when a selection is highlighted), mode]
TRACES = (f"() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => gd.data.map("
          "t => [t.customdata ?? null, t.marker?.opacity ?? null, t.mode ?? null]))")


@pytest.fixture
def page() -> Iterator:
    with chromium_page() as p:
        p.context.add_init_script(COUNT_SENDS)
        yield p


def highlighted(page) -> set[int]:
    """The sample ids the first figure draws opaque (empty when nothing is highlighted): the page's opacities, or
    Plotly's own selection in the view it was made in (tests/test_e2e_selection.py)."""
    return highlighted_views(page)[0]


def traces(page, mode: str) -> list:
    return [t for t in page.evaluate(TRACES)[0] if t[2] == mode]


def settle_on(page, url_part: str, before: list) -> None:
    """Wait for the URL to name the new view and the first figure to be another one, then for the page to idle."""
    page.wait_for_url(f"**{url_part}**", timeout=30_000)
    deadline = time.monotonic() + 60
    while (now := page.evaluate(TRACES)) == before or not now or not now[0]:
        assert time.monotonic() < deadline, f"the plot was not redrawn for {url_part}"
        time.sleep(0.2)
    wait_idle(page, settle=1.0)


def csv_ids(page) -> set[int]:
    with page.expect_download() as download:
        page.get_by_role("button", name="Download selection (CSV)").click()
    return set(pd.read_csv(download.value.path())["sample_id"])


def test_selection_follows_epoch_and_layer_and_draws_trajectories(server: str, page, tmp_path: Path,
                                                                  analysed_store: tuple[api.RunStore, str]) -> None:
    _, run_id = analysed_store
    page.goto(f"{server}/embeddings?run={run_id}&layer=fc2.relu&epoch=1", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
    wait_idle(page, settle=0.5)
    toggle = page.locator('[data-testid="stCheckbox"]', has_text="Draw the selection's trajectories").locator("input")
    assert toggle.is_disabled() and page.get_by_text("Select points to draw their trajectories").is_visible()

    select(page, "box", 0)
    heading = page.get_by_role("heading", name=re.compile(r"^Selection: \d+ samples$"))
    heading.wait_for(timeout=30_000)
    wait_idle(page)
    ids = highlighted(page)
    assert ids and heading.inner_text() == f"Selection: {len(ids)} samples" and csv_ids(page) == ids

    before = page.evaluate(TRACES)
    page.locator('[data-testid="stSlider"] input[type="range"]').first.focus()  # the sidebar's epoch slider
    page.keyboard.press("ArrowRight")  # epochs 0, 1, 2: epoch 2
    settle_on(page, "epoch=2", before)
    assert highlighted(page) == ids, "the epoch's view lost the selection"
    assert heading.inner_text() == f"Selection: {len(ids)} samples" and csv_ids(page) == ids

    before = page.evaluate(TRACES)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text="Layer").first.click()
    page.get_by_role("option", name="fc1.relu").click()
    settle_on(page, "layer=fc1.relu", before)
    assert highlighted(page) == ids, "the layer's view lost the selection"
    assert heading.inner_text() == f"Selection: {len(ids)} samples" and csv_ids(page) == ids

    before = page.evaluate(TRACES)
    page.get_by_text("Draw the selection's trajectories").click()
    deadline = time.monotonic() + 60
    while not traces(page, "lines"):
        assert time.monotonic() < deadline, "no trajectory was drawn"
        time.sleep(0.2)
    wait_idle(page, settle=1.0)
    rings = [t for t in page.evaluate(TRACES)[0] if t[2] == "markers" and t[1] is None]
    ringed = set(decode(rings[0][0])[:, 0].tolist()) if len(rings) == 1 else set()
    assert ringed <= ids and len(ringed) == min(len(ids), 200), (len(rings), len(ringed), len(ids))
    assert highlighted(page) == ids and page.locator('[data-testid="stException"]').count() == 0
    save(page, "embeddings-trajectories.png", tmp_path)

    select(page, "box", 0)  # a selection in the new view (same box, another layout) replaces the old one
    deadline = time.monotonic() + 60
    while highlighted(page) in (ids, set()):
        assert time.monotonic() < deadline, "the new selection was not highlighted"
        time.sleep(0.2)
    wait_idle(page)
    new = highlighted(page)
    assert new and new != ids and csv_ids(page) == new and heading.inner_text() == f"Selection: {len(new)} samples"
    page.get_by_role("button", name="Clear selection").click()
    page.get_by_text("Select points (click, box or lasso)").wait_for(timeout=30_000)
    wait_idle(page, settle=1.0)
    assert highlighted(page) == set() and not traces(page, "lines") and toggle.is_disabled()


def test_the_same_region_selected_at_another_epoch_selects_that_epochs_samples(
        server: str, page, analysed_store: tuple[api.RunStore, str]) -> None:
    """A box (in data coordinates, as Plotly stores it) at epoch 1, the epoch slider, then the very same box at epoch
    2: the selection becomes the samples in the box at epoch 2 (the page reads the region anew under each layout,
    app/views/embeddings_select.py), and the selection made at epoch 1 had followed the switch until then."""
    from tests.test_e2e_selection import OWN

    store, run_id = analysed_store
    layer = "fc2.relu"
    page.goto(f"{server}/embeddings?run={run_id}&layer={layer}&epoch=1", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
    wait_idle(page, settle=0.5)
    inside = {}
    for epoch in (1, 2):
        pts = api.read_analysis(store, run_id, "points", layer, epoch)
        inside[epoch] = (pts["umap_x"].to_numpy(np.float32), pts["umap_y"].to_numpy(np.float32), pts["sample_id"].to_numpy())
    x, y, _ = inside[1]
    box = {"type": "rect", "xref": "x", "yref": "y", "x0": float(np.quantile(x, 0.2)), "x1": float(np.quantile(x, 0.6)),
           "y0": float(np.quantile(y, 0.2)), "y1": float(np.quantile(y, 0.7))}
    ids = {e: set(i[(x >= box["x0"]) & (x <= box["x1"]) & (y >= box["y0"]) & (y <= box["y1"])].tolist())
           for e, (x, y, i) in inside.items()}
    assert ids[1] and ids[2] and ids[1] != ids[2]
    heading = page.get_by_role("heading", name=re.compile(r"^Selection: \d+ samples$"))
    draw_box = f"(box) => window.Plotly.relayout(document.querySelector('{PLOT}'), {{selections: [box]}})"
    page.evaluate(draw_box, box)
    heading.wait_for(timeout=30_000)
    wait_idle(page)
    assert csv_ids(page) == ids[1]

    before = page.evaluate(TRACES)
    page.locator('[data-testid="stSlider"] input[type="range"]').first.focus()
    page.keyboard.press("ArrowRight")  # epoch 2
    settle_on(page, "epoch=2", before)
    assert highlighted(page) == ids[1] and csv_ids(page) == ids[1], "the switch lost the selection"
    assert page.evaluate(OWN)[0][0], "the view's points moved: the page highlights the selection, not Plotly's box"

    page.evaluate(draw_box, box)
    deadline = time.monotonic() + 60
    while heading.inner_text() != f"Selection: {len(ids[2])} samples":
        assert time.monotonic() < deadline, f"the box at epoch 2 did not select its samples: {heading.inner_text()}"
        time.sleep(0.2)
    wait_idle(page)
    assert csv_ids(page) == ids[2] and highlighted(page) == ids[2]
