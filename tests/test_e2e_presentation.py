"""Presentation mode in a real browser (a `streamlit run` server and headless Chromium, as in
tests/test_e2e_browser.py): at 1280 x 720, a common projector, each page's first figure is above the fold, no
control is left on the page, and the figures' tick, legend and axis labels are dark and at least 18 px (14 px
outside presentation mode), read from the rendered SVG text. Streamlit's default chart theme used to replace our
fonts (about 3/4 of their size, grey axis labels): app/widgets.plot passes theme=None."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import api
from tests.test_app_compare_runs import variant
from tests.test_e2e_browser import PLOT, chromium_page, serve

# tick, legend and axis labels of every figure on the page: [text, font size in px, fill as [r, g, b]]
LABELS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(gd =>
  Array.from(gd.querySelectorAll('.xtick text, .ytick text, .legendtext, .xtitle, .ytitle, .legendtitletext'))
    .filter(t => t.textContent.trim())
    .map(t => [t.textContent, parseFloat(getComputedStyle(t).fontSize),
               getComputedStyle(t).fill.match(/\\d+/g).slice(0, 3).map(Number)]))"""
# controls a viewer could see: inputs and buttons that are displayed and not fully transparent
CONTROLS = """() => Array.from(document.querySelectorAll('input, button, select, textarea, [role=slider]'))
  .filter(e => { const r = e.getBoundingClientRect(); if (!r.width || !r.height) return false;
                 for (let n = e; n; n = n.parentElement) if (getComputedStyle(n).opacity === '0') return false;
                 return true; })
  .map(e => e.getAttribute('aria-label') || e.innerText || e.type)"""
FIRST_PLOT = f"() => {{ const r = document.querySelector('{PLOT}').getBoundingClientRect(); return [r.top, r.bottom]; }}"
# the bottom of the first figure's first x-axis title, on the screen
FIRST_XTITLE = f"() => document.querySelector('{PLOT} .xtitle').getBoundingClientRect().bottom"


@pytest.fixture(scope="module")
def server(analysed_store: tuple[api.RunStore, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The analysed tiny run and a copy with another learning rate (tiny-b), so the Compare page has two runs."""
    src, run_id = analysed_store
    store = api.open_store(tmp_path_factory.mktemp("two-runs") / "store")
    shutil.copytree(src.run_dir(run_id), store.root / run_id)
    variant(store, run_id, "tiny-b", lr=0.01, accuracy_change=-0.10, shift=0.1)
    yield from serve(store.root, tmp_path_factory)


@pytest.fixture(scope="module")
def projector() -> Iterator:
    """A Chromium page of 1280 x 720 pixels."""
    with chromium_page(1280, 720) as page:
        yield page


def open_view(page, url: str) -> None:
    page.goto(url, timeout=60_000)
    page.wait_for_selector(PLOT, timeout=120_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .xtick text').length > 0", timeout=60_000)
    page.wait_for_timeout(1500)  # let the page's last elements and fonts settle


def check_labels(page, *, min_px: float) -> None:
    labels = page.evaluate(LABELS)
    assert labels, "no tick, legend or axis label found in the figures"
    small = [(t, px) for t, px, _ in labels if px < min_px]
    assert not small, f"labels under {min_px} px: {small[:5]}"
    pale = [(t, rgb) for t, _, rgb in labels if max(rgb) > 90]
    assert not pale, f"labels not dark: {pale[:5]}"


@pytest.mark.parametrize("view", ["embeddings", "neurons", "layers"])
def test_presentation_mode_fits_a_projector(server: str, projector, analysed_store: tuple[api.RunStore, str],
                                            view: str, tmp_path: Path) -> None:
    _, run_id = analysed_store
    open_view(projector, f"{server}/{view}?run={run_id}&present=1")
    top, bottom = projector.evaluate(FIRST_PLOT)
    assert top >= 0 and bottom <= 720, f"the first figure spans y = {top:.0f}..{bottom:.0f}, the screen 0..720"
    assert projector.evaluate(CONTROLS) == []
    check_labels(projector, min_px=18)
    assert projector.locator('[data-testid="stException"]').count() == 0


def test_fonts_outside_presentation_mode(server: str, projector, analysed_store: tuple[api.RunStore, str]) -> None:
    _, run_id = analysed_store
    for view in ("embeddings", "neurons"):
        open_view(projector, f"{server}/{view}?run={run_id}")
        check_labels(projector, min_px=14)


@pytest.mark.parametrize("present", [False, True])
def test_runs_and_compare_show_their_first_figure_at_1280x720(server: str, projector, present: bool) -> None:
    """The Runs page's first figure fits the screen; the Compare page's first row of panels shows its x-axis title
    (in presentation mode the panels were too tall and the title sat below the fold)."""
    flag = "&present=1" if present else ""
    open_view(projector, f"{server}/runs?{flag}")
    top, bottom = projector.evaluate(FIRST_PLOT)
    assert top >= 0 and bottom <= 720, f"the Runs page's first figure spans y = {top:.0f}..{bottom:.0f}"
    open_view(projector, f"{server}/compare?runs=tiny,tiny-b{flag}")
    assert projector.evaluate(FIRST_XTITLE) <= 720, "the Compare page's first x-axis title is below the fold"
    assert projector.locator('[data-testid="stException"]').count() == 0
