"""End to end: the Embeddings page's search box and neighbours list in a real browser (Chromium, Playwright).

Typing a search highlights the matches in the plot (Plotly.js draws them opaque, the rest faded) and the
neighbours of a single match show their thumbnails. One server for the module over the tiny analysed run;
needs Chromium and the Python package `playwright`, like tests/test_e2e_selection.py, whose helpers it uses.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.charts import embeddings as charts_embeddings
from backend import api
from tests.test_e2e_browser import PLOT, chromium_page, save
from tests.test_e2e_selection import COUNT_SENDS, highlighted, wait_idle


def test_search_highlights_matches_and_neighbours_show_thumbnails(server: str, analysed_store: tuple[api.RunStore, str],
                                                                  tmp_path: Path) -> None:
    store, run_id = analysed_store
    labels = charts_embeddings.label_samples(api.read_samples(store, run_id), target="superclass")
    hooks = set(labels.loc[labels["superclass_name"] == "hook", "sample_id"].tolist())
    ids, acts = api.read_activations(store, run_id, "fc2.relu", 1)
    nearest = api.nearest_neighbours(ids, acts, 12, k=10, post_relu=True)["sample_id"].tolist()
    with chromium_page() as page:
        page.context.add_init_script(COUNT_SENDS)
        page.goto(f"{server}/embeddings?run={run_id}&layer=fc2.relu&epoch=1", timeout=60_000)
        page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
        wait_idle(page, settle=0.5)
        box = page.get_by_role("textbox", name="Find samples")
        box.fill("hook")
        box.press("Enter")
        page.get_by_text(re.compile(rf"{len(hooks)} samples match .hook.; {len(hooks)} of them are drawn")).wait_for(timeout=30_000)
        wait_idle(page, settle=1.0)
        assert highlighted(page) == [hooks]
        assert page.get_by_role("heading", name=f"Selection: {len(hooks)} samples").is_visible()

        box.fill("12")
        box.press("Enter")
        page.get_by_text(f"1. {nearest[0]} ·").wait_for(timeout=30_000)
        wait_idle(page, settle=1.0)
        assert highlighted(page) == [{12}]
        assert page.locator('[data-testid="stException"]').count() == 0
        # the selection's one image, then the sample and its 10 neighbours (then the "what changed" lists' own
        # thumbnails); every thumbnail decoded by the browser
        images = page.locator('[data-testid="stImage"] img')
        assert images.count() >= 1 + 11
        assert all(w > 0 for w in images.evaluate_all("els => els.map(e => e.naturalWidth)"))
        captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
        assert captions[1] == "sample 12"
        assert [c.split(" ·")[0] for c in captions[2:12]] == [f"{r}. {i}" for r, i in enumerate(nearest, 1)]
        save(page, "embeddings-search-neighbours.png", tmp_path)
