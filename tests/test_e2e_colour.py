"""End to end: the Embeddings page recolours in the browser (app/views/embeddings_colour.py), then the server follows.

The browser's messages to the server are held back while *Colour by* changes, so what is seen then was drawn by
the browser alone: each trace must hold exactly the samples of its category (HDBSCAN's clusters of the stored
snapshot, the samples' fine labels), in the colours and shapes the server gives them. Once the messages go out,
Streamlit's rerun brings the server's figure, which must be the same, trace for trace. Needs Chromium and the
Python package `playwright`, like tests/test_e2e_browser.py, whose helpers it uses.
"""

from __future__ import annotations

from app.charts import embeddings as charts_embeddings
from backend import api
from tests.test_e2e_browser import PLOT, chromium_page
from tests.test_e2e_scrub import HOLD, LAYER, wait_for

# the point traces of the page's first plot: [name, colour, shape, sorted sample ids], and the legend's title
TRACES = f"""() => {{
  const gd = document.querySelector('{PLOT}');
  const traces = gd._fullData.filter(t => t.meta === 'cs-points').map(t => [t.name, t.marker.color, t.marker.symbol,
    Array.from(t.customdata, c => c[0]).sort((a, b) => a - b)]);
  return {{traces: traces, legend: gd._fullLayout.legend.title.text, recoloured: window.__csColour?.count || 0}};
}}"""
IDLE = "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'"


def groups(traces: list) -> dict[str, set[int]]:
    return {name: set(ids) for name, _, _, ids in traces}


def choose(page, option: str) -> None:
    page.get_by_role("combobox", name="Colour by", exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_colour_by_redraws_in_the_browser_then_the_page_follows(
        server: str, analysed_store: tuple[api.RunStore, str]) -> None:
    store, run_id = analysed_store
    points = api.read_analysis(store, run_id, "points", LAYER, 2)
    clusters: dict[str, set[int]] = {}
    for sid, c in zip(points["sample_id"], points["cluster"], strict=True):
        clusters.setdefault("noise" if c < 0 else f"cluster {c}", set()).add(int(sid))
    samples = api.read_samples(store, run_id).set_index("sample_id").loc[points["sample_id"]]
    fine: dict[str, set[int]] = {}  # the tiny run is trained on superclasses: its subclasses are the digits
    for sid, name in samples["label_name"].items():
        fine.setdefault(str(name), set()).add(int(sid))
    assert len(clusters) > 1 and len(fine) > 1

    with chromium_page() as page:
        page.add_init_script(HOLD)
        page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch=2", timeout=60_000)
        page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
        page.wait_for_function(IDLE, timeout=60_000)
        assert page.evaluate(TRACES)["legend"] == "class (trained on)"

        for option, legend, expected in (("HDBSCAN cluster", charts_embeddings.LEGEND_TITLES["cluster"], clusters),
                                         ("Fine label (subclass)", "fine label", fine)):
            before = page.evaluate(TRACES)["recoloured"]
            page.evaluate("window.__hold = true")  # the server hears nothing of what follows
            choose(page, option)
            drawn = wait_for(page, lambda b=before, t=legend: (d := page.evaluate(TRACES))["recoloured"] > b
                             and d["legend"] == t and d, f"the plot was not recoloured in the browser ({option})")
            assert groups(drawn["traces"]) == expected  # every sample in its own category's trace
            assert page.evaluate("window.__held.length") > 0  # the server has not been told yet

            page.evaluate("window.__release()")  # the rerun: the server's figure replaces the browser's
            page.wait_for_url(f"**colour={'cluster' if option.startswith('HDBSCAN') else 'fine'}**", timeout=30_000)
            page.wait_for_function(IDLE, timeout=60_000)
            served = page.evaluate(TRACES)
            assert served["legend"] == legend
            # the same traces in the same order, colours and shapes; points within a trace may be in another order
            assert served["traces"] == drawn["traces"]
        assert page.locator('[data-testid="stException"]').count() == 0
