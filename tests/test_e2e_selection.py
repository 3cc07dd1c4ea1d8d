"""End to end: selecting points on the Embeddings page in a real browser (Chromium through Playwright).

A click, a box and a lasso, in the single view and in a second view ("Another epoch", "Another layer"):
the page shows the selected samples' images, their composition and a CSV of them, highlights them in
every view, and then settles (one rerun per selection, no redraw loop). AppTest cannot select points:
only Plotly.js in a browser reports them. One server for the module over the tiny analysed run; needs
Chromium and the Python package `playwright`, like tests/test_e2e_browser.py, whose helpers it uses.
"""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from app.charts import embeddings as charts_embeddings
from backend import api
from tests.test_e2e_browser import PLOT, chromium_path, save

LAYER, EPOCH = "fc2.relu", 1
SECOND = {None: "", "epoch": "&second=epoch&epoch_b=2", "layer": "&second=layer&layer_b=fc1.relu"}
# counts the messages the browser sends the server (each widget change, so each selection, is one)
# (and their sizes in bytes, in order)
COUNT_SENDS = ("window.__sent = 0; window.__sentBytes = []; const send = WebSocket.prototype.send;"
               "WebSocket.prototype.send = function (d) { window.__sent += 1;"
               " window.__sentBytes.push(d.byteLength ?? d.size ?? d.length); return send.call(this, d); };")
EXCEPTION = '[data-testid="stException"]'
SCRIPT_STATE = "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state')"
# the plot area of the i-th figure on the page, in page pixels, and its data ranges
AREA = """(i) => {
  const gd = document.querySelectorAll('.js-plotly-plot')[i], s = gd._fullLayout._size, r = gd.getBoundingClientRect();
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  return {l: r.left + s.l, t: r.top + s.t, w: s.w, h: s.h, x: [xa.p2l(0), xa.p2l(s.w)], y: [ya.p2l(s.h), ya.p2l(0)]};
}"""
# every drawn point of the i-th figure: [page x, page y, sample id]
POINTS = """(i) => {
  const gd = document.querySelectorAll('.js-plotly-plot')[i], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const r = gd.getBoundingClientRect(), out = [];
  for (const t of gd._fullData) for (let k = 0; k < t.x.length; k++)
    out.push([r.left + xa._offset + xa.l2p(t.x[k]), r.top + ya._offset + ya.l2p(t.y[k]), t.customdata[k][0]]);
  return out;
}"""
# marks each figure's data as drawn now; TAGGED: whether each figure still shows that data (not a figure sent anew)
TAG = f"() => document.querySelectorAll('{PLOT}').forEach(gd => {{ gd.data[0].__csTag = true; }})"
TAGGED = f"() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => gd.data[0].__csTag === true)"
# per figure, the sample ids of its neighbours' query mark (app/charts/query.py)
QUERY_IDS = (f"() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => gd._fullData"
             ".filter(t => t.name === 'query sample').flatMap(t => Array.from(t.customdata, c => c[0])))")
# per figure, its point traces: [customdata, marker opacity, the point indices Plotly's own selection keeps opaque
# while the page highlights a selection (app/views/embeddings_highlight.py: the view it was made in), else null]
# per figure: [whether the page restyled its points (an opacity per point), the sample ids Plotly's own selection keeps]
OWN = (f"() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => {{"
       " const ts = gd._fullData.filter(t => t.meta === 'cs-points'), ids = [];"
       " ts.forEach(t => (t.selectedpoints || []).forEach(k => ids.push(t.customdata[k][0])));"
       " return [gd.data.some(t => t.meta === 'cs-points' && typeof t.marker.opacity !== 'number'), ids]; })")
REGIONS = f"() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => (gd.layout.selections || []).length)"
TRACES = (f"() => Array.from(document.querySelectorAll('{PLOT}')).map(gd => gd.data.filter(t => t.meta === 'cs-points')"
          ".map(t => [t.customdata, t.marker.opacity,"
          " window.__csHL?.ids && Array.isArray(t.selectedpoints) ? t.selectedpoints : null]))")


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


def decode(value: object) -> np.ndarray:
    """A Plotly typed-array spec (or a plain list) as a NumPy array."""
    if isinstance(value, dict):
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return arr.reshape([int(d) for d in value["shape"].split(",")]) if "shape" in value else arr
    return np.asarray(value)


def expect_poll(check, message: str, timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds (the browser applies some changes when idle), else fail with ``message``."""
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, message
        time.sleep(0.1)


def highlighted(page) -> list[set[int]]:
    """Per figure, the sample ids drawn opaque (empty when nothing is highlighted): by the page's opacities, or, in
    the view the selection was made in, by Plotly's own selection (it dims the points left out)."""
    out = []
    for traces in page.evaluate(TRACES):
        ids: set[int] = set()
        for custom, opacity, chosen in traces:
            if not isinstance(opacity, (int, float)):  # an array: the page highlights a selection
                ids |= set(decode(custom)[:, 0][decode(opacity) > 0.5].tolist())
            elif chosen is not None:
                ids |= set(decode(custom)[:, 0][np.asarray(chosen, dtype=np.int64)].tolist())
        out.append(ids)
    return out


def wait_idle(page, *, settle: float = 2.5, timeout: float = 60.0) -> None:
    """Wait until the app's script is not running, then check it stays so, with nothing sent, for ``settle`` s."""
    deadline = time.monotonic() + timeout
    while page.evaluate(SCRIPT_STATE) != "notRunning":
        assert time.monotonic() < deadline, f"the page still runs after {timeout:.0f} s"
        time.sleep(0.1)
    sent, end = page.evaluate("window.__sent"), time.monotonic() + settle
    while time.monotonic() < end:
        assert page.evaluate(SCRIPT_STATE) == "notRunning", "the page reran by itself after the selection"
        time.sleep(0.05)
    assert page.evaluate("window.__sent") == sent, "the browser asked for another rerun after the selection"


def wait_selection(page, sent: int, plot: int, tmp_path: Path, timeout: float = 30.0) -> None:
    """Wait for the selection's heading; if it does not come, fail saying whether the browser sent the selection
    (a click Plotly did not take as one, or a page that did not show what it got), with a screenshot."""
    heading = page.get_by_role("heading", name=re.compile(r"^Selection: \d+ samples$"))
    try:
        heading.wait_for(timeout=timeout * 1000)
    except PlaywrightTimeout:  # said below, with what the page shows
        save(page, "selection-missing.png", tmp_path)
        hover = page.evaluate(f"(i) => (document.querySelectorAll('{PLOT}')[i]._hoverdata || [])"
                              ".map(p => p.customdata?.[0])", plot)
        pytest.fail(f"no selection heading after {timeout:.0f} s: the browser sent {page.evaluate('window.__sent') - sent}"
                    f" message(s) since the selection, the script is {page.evaluate(SCRIPT_STATE)}, Plotly hovers"
                    f" {hover}, exceptions shown: {page.locator(EXCEPTION).count()};"
                    f" screenshot {tmp_path / 'selection-missing.png'}")


def drag(page, path: list[tuple[float, float]]) -> None:
    page.mouse.move(*path[0])
    page.mouse.down()
    for x, y in path[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def select(page, mode: str, plot: int) -> dict:
    """Select points in the ``plot``-th figure; returns the data ranges selected or the sample id clicked."""
    area = page.evaluate(AREA, plot)
    if mode == "click":  # the point farthest from any other, so the click cannot hit another
        pts = np.array(page.evaluate(POINTS, plot))
        d = np.hypot(*(pts[:, None, :2] - pts[None, :, :2]).transpose(2, 0, 1)) + np.eye(len(pts)) * 1e9
        x, y, sample = pts[int(np.argmax(d.min(axis=1)))]
        page.mouse.move(x - 30, y - 30)
        page.mouse.move(x, y, steps=4)  # Plotly clicks the point it hovers last: wait until that is this one
        expect(page.locator("#cs-hover-card")).to_contain_text(re.compile(rf"sample {int(sample)}\s*$"), timeout=15_000)
        # ... in Plotly's own hover state too, which its click selects from
        page.wait_for_function(f"([i, id]) => document.querySelectorAll('{PLOT}')[i]._hoverdata?.[0]?.customdata?.[0] === id",
                               arg=[plot, int(sample)], timeout=15_000)
        page.mouse.click(x, y)
        return {"id": int(sample)}
    page.locator(PLOT).nth(plot).hover()
    page.locator(PLOT).nth(plot).locator(f'.modebar-btn[data-val="{"select" if mode == "box" else "lasso"}"]').click()
    (x0, y0), (x1, y1) = (round(area["l"] + 5), round(area["t"] + 5)), (round(area["l"] + area["w"] / 2), round(area["t"] + area["h"] / 2))
    drag(page, [(x0, y0), (x1, y1)] if mode == "box" else [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
    to_x = lambda px: area["x"][0] + (area["x"][1] - area["x"][0]) * (px - area["l"]) / area["w"]  # noqa: E731
    to_y = lambda py: area["y"][1] - (area["y"][1] - area["y"][0]) * (py - area["t"]) / area["h"]  # noqa: E731
    return {"x": (to_x(x0), to_x(x1)), "y": (to_y(y1), to_y(y0)), "px": (area["x"][1] - area["x"][0]) / area["w"],
            "py": (area["y"][1] - area["y"][0]) / area["h"]}


def expected_ids(store: api.RunStore, run_id: str, layer: str, epoch: int, picked: dict) -> tuple[set[int], set[int]]:
    """(the sample ids surely selected, those within a pixel of the selection's edge, which may or may not be)."""
    if "id" in picked:
        return {picked["id"]}, set()
    pts = api.read_analysis(store, run_id, "points", layer, epoch)
    x, y, ids = pts["umap_x"].to_numpy(np.float32), pts["umap_y"].to_numpy(np.float32), pts["sample_id"].to_numpy()

    def inside(margin: float) -> np.ndarray:
        (x0, x1), (y0, y1) = picked["x"], picked["y"]
        return ((x > x0 + margin * picked["px"]) & (x < x1 - margin * picked["px"])
                & (y > y0 + margin * picked["py"]) & (y < y1 - margin * picked["py"]))

    sure = inside(1.0)
    return set(ids[sure].tolist()), set(ids[inside(-1.0) & ~sure].tolist())


# Each mode in one view and in two, but the lasso in two only: the app reads a lasso's selection as a box's, the
# points Plotly reports (app/views/embeddings.py, selected_ids); tests/test_e2e_density.py draws both in one view.
@pytest.mark.parametrize(("mode", "second", "plot"), [
    ("click", None, 0), ("box", None, 0),
    ("click", "epoch", 1), ("box", "epoch", 0), ("lasso", "layer", 1),
])
def test_selecting_points_shows_them_and_settles(server: str, page, analysed_store: tuple[api.RunStore, str],
                                                 mode: str, second: str | None, plot: int, tmp_path: Path) -> None:
    store, run_id = analysed_store
    page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch={EPOCH}{SECOND[second]}", timeout=60_000)
    views = 1 if second is None else 2
    page.wait_for_function(f"() => Array.from(document.querySelectorAll('{PLOT}')).filter(g => g.data?.length).length"
                           f" === {views}", timeout=120_000)
    wait_idle(page, settle=0.5)
    assert page.get_by_text("Select points (click, box or lasso)").is_visible()
    if views == 2:  # side by side, each legend under its plot: the points keep most of the width (0.39 beside it)
        widths = page.evaluate(f"() => Array.from(document.querySelectorAll('{PLOT}'))"
                               ".map(gd => gd._fullLayout._size.w / gd._fullLayout.width)")
        assert min(widths) > 0.6, widths
    sent = page.evaluate("window.__sent")
    page.evaluate(TAG)

    picked = select(page, mode, plot)
    layer, epoch = {None: (LAYER, EPOCH), "epoch": (LAYER, 2 if plot else EPOCH),
                    "layer": ("fc1.relu" if plot else LAYER, EPOCH)}[second]
    sure, edge = expected_ids(store, run_id, layer, epoch, picked)
    assert sure, "the selection drawn holds no point: the test's box is misplaced"
    wait_selection(page, sent, plot, tmp_path)
    wait_idle(page)
    assert page.evaluate("window.__sent") - sent == 1, "one selection should cost one rerun"
    message = page.evaluate("window.__sentBytes")[-1]  # the selection's (bytes)
    assert page.locator(EXCEPTION).count() == 0
    save(page, f"embeddings-select-{mode}-{second or 'single'}.png", tmp_path)

    # the CSV, the images (at most 48) and the composition are those of the selected samples
    with page.expect_download() as download:
        page.get_by_role("button", name="Download selection (CSV)").click()
    csv = pd.read_csv(download.value.path())
    assert download.value.suggested_filename == f"{run_id}-selection.csv"
    ids = set(csv["sample_id"])
    assert len(csv) == len(ids) and sure <= ids <= sure | edge, (len(sure), len(edge), len(ids))
    assert page.get_by_role("heading", name=f"Selection: {len(ids)} samples").is_visible()
    assert list(csv.columns) == ["sample_id", "split", "class_name", "subclass_name", "superclass_name", "cluster"]

    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()  # the selection's are "class/subclass"
    assert sum("/" in c for c in captions) == min(48, len(ids))  # (one point also lists its neighbours' images)
    labels = charts_embeddings.label_samples(api.read_samples(store, run_id), target="superclass")
    chosen = labels[labels["sample_id"].isin(ids)]
    rows = page.locator('[data-testid="stDataFrame"] table tbody tr')
    cells = [row.locator("td").all_inner_texts() for row in rows.all()]
    shown = {value: int(count) for level, value, count, *_ in cells if level == "class"}
    assert shown == dict(Counter(chosen["class_name"])), cells

    # every view, the other one included, draws the selected samples opaque and the rest faded
    assert highlighted(page) == [ids] * views
    if mode == "click":  # one point: the neighbours panel's query, which every view marks (app/charts/query.py)
        queries = page.evaluate(QUERY_IDS)
        assert queries == [[picked["id"]]] * views, queries
        # the panel under the plots (outside their fragment, app/views/embeddings.py) lists the clicked sample's neighbours
        assert page.get_by_role("spinbutton", name="Sample id").input_value() == str(picked["id"])
        assert page.get_by_text(re.compile(rf"^Sample {picked['id']} is ")).is_visible()
    else:  # in the browser: the server sent no new figure for the highlight (it cost a selection seconds at 100,000 points)
        assert page.evaluate(TAGGED) == [True] * views
        # the box or lasso went to the server as its region, without its points (app/views/embeddings_highlight.py) ...
        assert message < 2_000, (message, len(ids))
        # ... which selected what Plotly's own selection shows, up to points within a pixel of the edge (Plotly
        # tests pixels): the view it was made in is restyled only where they differ, the other views always
        own = page.evaluate(OWN)
        plotly_ids = set(own[plot][1])
        assert sure <= plotly_ids <= sure | edge and own[plot][0] == (plotly_ids != ids), (plotly_ids ^ ids, own[plot][0])
        assert all(restyled for k, (restyled, _) in enumerate(own) if k != plot)

    if second is None:  # the button clears the selection and its highlight (and, after a click, the neighbours' query)
        sent = page.evaluate("window.__sent")
        page.get_by_role("button", name="Clear selection").click()
        page.get_by_text("Select points (click, box or lasso)").wait_for(timeout=30_000)
        # ... and Plotly's own: no box or lasso drawn any more, no point dimmed (it kept both before). After a
        # click the neighbours' query goes too: the plots' rerun is followed by the whole page's (the panel)
        no_query = page.get_by_text(re.compile(r"^Give a sample id, or select one point"))
        expect_poll(lambda: page.evaluate(OWN) == [[False, []]] and page.evaluate(REGIONS) == [0] and no_query.is_visible(),
                    "Plotly still shows the cleared selection, or the neighbours panel the clicked sample")
        # a box or lasso removed from Plotly makes Plotly report an empty selection, which Streamlit sends, so that the
        # chart's widget forgets the box too: one more message and rerun (measured: always 2 after a box, 1 after a
        # click), then quiet. Under load that rerun could start after the quiet period below had begun.
        expect_poll(lambda: page.evaluate("window.__sent") - sent == (1 if mode == "click" else 2),
                    "Clear selection did not cost the button's message (and, after a box or lasso, Plotly's empty selection)")
        wait_idle(page, settle=1.5)
        assert highlighted(page) == [set()]
        assert page.evaluate(OWN) == [[False, []]] and page.evaluate(REGIONS) == [0]
        assert page.get_by_text("Select points (click, box or lasso)").is_visible()
        assert page.evaluate(QUERY_IDS) == [[]]
        assert page.get_by_role("spinbutton", name="Sample id").input_value() == ""


def test_a_box_through_points_selects_its_edge_points_in_the_browser_and_on_the_server(
        server: str, page, analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> None:
    """A box whose corners are two points (set as Plotly stores a selection: data coordinates): the server, which
    gets the box without its points, counts the points on its edges in, as Plotly's rule does, and the page shows
    that selection."""
    store, run_id = analysed_store
    page.goto(f"{server}/embeddings?run={run_id}&layer={LAYER}&epoch={EPOCH}", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.length > 0", timeout=120_000)
    wait_idle(page, settle=0.5)
    pts = api.read_analysis(store, run_id, "points", LAYER, EPOCH)
    x, y, ids = pts["umap_x"].to_numpy(np.float32), pts["umap_y"].to_numpy(np.float32), pts["sample_id"].to_numpy()
    near = lambda q, among: among[np.argmin(np.hypot(x[among] - np.quantile(x, q), y[among] - np.quantile(y, q)))]  # noqa: E731
    low = near(0.3, np.arange(len(x)))
    high = near(0.7, np.flatnonzero((x > x[low]) & (y > y[low])))
    x0, y0, x1, y1 = x[low], y[low], x[high], y[high]  # two points at the box's corners
    box = {"type": "rect", "xref": "x", "yref": "y", "x0": float(x0), "x1": float(x1), "y0": float(y0), "y1": float(y1)}
    sent = page.evaluate("window.__sent")
    page.evaluate(f"(box) => window.Plotly.relayout(document.querySelector('{PLOT}'), {{selections: [box]}})", box)
    wait_selection(page, sent, 0, tmp_path)
    wait_idle(page)
    assert page.evaluate("window.__sent") - sent == 1 and page.evaluate("window.__sentBytes")[-1] < 2_000
    inside = set(ids[(x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)].tolist())
    on_edges = set(ids[(x == x0) | (x == x1) | (y == y0) | (y == y1)].tolist()) & inside
    with page.expect_download() as download:
        page.get_by_role("button", name="Download selection (CSV)").click()
    assert set(pd.read_csv(download.value.path())["sample_id"]) == inside and {ids[low], ids[high]} <= on_edges
    restyled, plotly_ids = page.evaluate(OWN)[0]  # Plotly's own selection shows it, or the page's highlight
    assert restyled == (set(plotly_ids) != inside) and highlighted(page) == [inside], (set(plotly_ids) ^ inside)
