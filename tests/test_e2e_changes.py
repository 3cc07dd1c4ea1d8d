"""End to end: the Embeddings page coloured by cartography region in a real browser (Chromium through Playwright):
choosing the colouring in the sidebar redraws the stored points with one trace per region, in the page's
colour-blind-safe colours, and the "what changed" section shows the moved samples' thumbnails.
Needs Chromium and the Python package `playwright`, like tests/test_e2e_browser.py, whose helpers it uses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.charts.embeddings import FIXED_COLOURS
from backend import api
from tests.test_e2e_browser import PLOT, chromium_page, save

NAMES = f"() => {{ const gd = document.querySelector('{PLOT}'); return gd?.data ? gd.data.map(t => [t.name, t.marker.color]) : null; }}"


@pytest.fixture
def page() -> Iterator:
    with chromium_page() as p:
        yield p


def test_colour_by_cartography_region(server: str, page, analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> None:
    store, run_id = analysed_store
    page.goto(f"{server}/embeddings?run={run_id}&layer=fc1.relu&epoch=2", timeout=60_000)
    page.wait_for_selector(PLOT, timeout=120_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}').data?.length > 0", timeout=30_000)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text="Colour by").first.click()
    page.get_by_role("option", name="Cartography region (recorded epochs)").click()
    page.wait_for_url("**colour=region**", timeout=30_000)
    regions = set(api.training_events(store, run_id)["region"])
    deadline = time.monotonic() + 60
    while {n for n, _ in (page.evaluate(NAMES) or [])} != regions:
        assert time.monotonic() < deadline, f"the plot was not redrawn by region: {page.evaluate(NAMES)}"
        time.sleep(0.2)
    assert all(colour == FIXED_COLOURS["region"][name] for name, colour in page.evaluate(NAMES))
    assert page.get_by_role("heading", name="What changed at epoch 2").is_visible()
    assert page.locator('[data-testid="stImage"] img').count() >= 12  # the movers' thumbnails
    assert page.locator('[data-testid="stException"]').count() == 0
    save(page, "embeddings-region.png", tmp_path)
