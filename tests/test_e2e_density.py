"""End to end: selecting on the Embeddings page's density view in a real browser (Chromium through Playwright).

The analysed tiny run (1,797 points) served with the draw limit lowered to 1,000 (CLUSTERSCOPE_DRAW_POINTS), so
the page shows the density of every point under a sample of 1,000: a box and a lasso select EVERY point in their
region, drawn or not (the CSV holds them all), show their images, highlight the drawn ones, and the page settles;
the epoch slider redraws the density of the new epoch, and the two-line title clears Plotly's mode bar.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.charts import density as charts_density
from backend import api
from tests.test_e2e_browser import PLOT, chromium_path, save, serve
from tests.test_e2e_selection import COUNT_SENDS, decode, expected_ids, highlighted, select, wait_idle

LAYER, EPOCH = "fc2.relu", 1


@pytest.fixture(scope="module")
def server(analysed_store: tuple[api.RunStore, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLUSTERSCOPE_DRAW_POINTS", "1000")
        yield from serve(analysed_store[0].root, tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.add_init_script(COUNT_SENDS)
    try:
        yield context.new_page()
    finally:
        context.close()


def drawn_region(page, picked: dict) -> dict:
    """The data ranges of the selection Plotly drew (its rectangle, or the lasso's rectangular path), as
    :func:`tests.test_e2e_selection.select` returns them: the plot may have moved a little since the drag began."""
    sel = page.evaluate(f"() => document.querySelector('{PLOT}').layout.selections[0]")
    if sel["type"] == "rect":
        xs, ys = [sel["x0"], sel["x1"]], [sel["y0"], sel["y1"]]
    else:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", sel["path"])]
        xs, ys = numbers[0::2], numbers[1::2]
    return picked | {"x": (min(xs), max(xs)), "y": (min(ys), max(ys))}


@pytest.mark.parametrize("mode", ["box", "lasso"])
def test_selecting_a_region_of_the_density_view_selects_every_point_in_it(
        server: str, page, analysed_store: tuple[api.RunStore, str], mode: str, tmp_path: Path) -> None:
    store, run_id = analysed_store
    page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch={EPOCH}", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 1", timeout=120_000)
    wait_idle(page, settle=0.5)
    assert page.get_by_text(re.compile(r"Density view")).first.is_visible()
    assert page.evaluate(f"() => document.querySelector('{PLOT}').data[0].type") == "heatmap"
    drawn = page.evaluate(f"() => document.querySelector('{PLOT}')._fullData.slice(1).reduce((n, t) => n + t.x.length, 0)")
    assert drawn < 1_797
    sent = page.evaluate("window.__sent")

    picked = select(page, mode, 0)
    page.wait_for_function(f"() => document.querySelector('{PLOT}').layout.selections?.length > 0", timeout=10_000)
    region = drawn_region(page, picked)  # as Plotly drew it at the mouse's release
    page.get_by_role("heading", name=re.compile(r"^Selection: \d+ samples$")).wait_for(timeout=60_000)
    wait_idle(page)
    sure, edge = expected_ids(store, run_id, LAYER, EPOCH, region)  # ALL points, not only the drawn
    assert page.evaluate("window.__sent") - sent == 1, "one selection should cost one rerun"
    assert page.locator('[data-testid="stException"]').count() == 0
    save(page, f"embeddings-density-select-{mode}.png", tmp_path)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download selection (CSV)").click()
    ids = set(pd.read_csv(download.value.path())["sample_id"])
    assert sure <= ids <= sure | edge, (len(sure), len(edge), len(ids))
    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
    assert sum("/" in c for c in captions) == min(48, len(ids))  # the selection's images are shown
    lit = highlighted(page)[0]  # the drawn points of the region are highlighted, the others faded
    assert lit and lit <= ids


HEAT_COUNTS = f"() => {{ const t = document.querySelector('{PLOT}')?.data?.[0]; return t?.type === 'heatmap' ? t.customdata : null; }}"


def stored_counts(store: api.RunStore, run_id: str, epoch: int) -> np.ndarray:
    pts = api.read_analysis(store, run_id, "points", LAYER, epoch)
    return charts_density.density(pts["umap_x"].to_numpy(), pts["umap_y"].to_numpy()).counts


def drawn_counts(page) -> np.ndarray | None:
    spec = page.evaluate(HEAT_COUNTS)
    return None if spec is None else decode(spec).reshape(charts_density.BINS, charts_density.BINS)


def boxes_overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_the_density_view_follows_the_epoch_slider_and_its_title_clears_the_mode_bar(
        server: str, page, analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> None:
    """Issue 18: the epoch slider redraws the density view with the new epoch's picture (every point counted again),
    and Plotly's mode bar (shown on hover) does not cover the two-line title."""
    store, run_id = analysed_store
    counts = {e: stored_counts(store, run_id, e) for e in (1, 2)}
    assert not np.array_equal(counts[1], counts[2])
    page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch=1", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 1", timeout=120_000)
    wait_idle(page, settle=0.5)
    assert np.array_equal(drawn_counts(page), counts[1])

    page.locator(PLOT).first.hover()  # the mode bar shows
    page.locator(f"{PLOT} .modebar").first.wait_for(state="visible", timeout=10_000)
    bar = page.locator(f"{PLOT} .modebar").first.bounding_box()
    title = page.locator(f"{PLOT} .gtitle").first.bounding_box()
    assert bar and title and not boxes_overlap(bar, title), (bar, title)
    save(page, "embeddings-density-title.png", tmp_path)

    page.locator('[data-testid="stSidebar"] input[type="range"][aria-label="Epoch"]').focus()
    page.keyboard.press("ArrowRight")  # epochs 0, 1, 2: epoch 2
    page.wait_for_url("**epoch=2**", timeout=30_000)
    deadline = time.monotonic() + 60
    while not np.array_equal(now := drawn_counts(page), counts[2]):
        assert time.monotonic() < deadline, "the density view did not redraw epoch 2's picture"
        assert now is None or np.array_equal(now, counts[1]), "the density view shows neither epoch's picture"
        page.wait_for_timeout(100)
    assert "epoch 2" in page.evaluate(f"() => document.querySelector('{PLOT}').layout.title.text")
    wait_idle(page, settle=0.5)
    assert page.evaluate(f"() => document.querySelector('{PLOT}').data[0].type") == "heatmap"
    assert page.locator('[data-testid="stException"]').count() == 0
    save(page, "embeddings-density-epoch2.png", tmp_path)
