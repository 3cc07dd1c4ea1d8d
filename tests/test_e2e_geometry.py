"""End to end: the Geometry page (SCIENCE.md 7) in a real browser: a shared link draws the CKA heatmaps, and
choosing another epoch redraws the layer x layer heatmap and writes the epoch to the URL. Needs Chromium and
the Python package `playwright`, like tests/test_e2e_browser.py, whose helpers it uses."""

from __future__ import annotations

import time
from pathlib import Path

from backend import api
from tests.test_e2e_browser import PLOT, chromium_page, save

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
