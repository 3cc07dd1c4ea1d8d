"""Benchmark: what the user waits for on the Embeddings page, in a real browser, against a minimal page.

benchmarks/dashboard.py times the server's side of an epoch switch through AppTest; this one times what
a user sees: headless Chromium (/usr/bin/chromium, through Playwright) on the app served as
``clusterscope app`` serves it, from the input (key press, click, mouse release) to the redrawn plot:

* ``epoch``: ArrowRight/ArrowLeft on the focused epoch slider, until the plot holds the other epoch. The page
  switches it in the browser (app/views/embeddings_scrub.py) and reruns after; ``epoch, rerun only`` is the same page with
  that turned off (``CLUSTERSCOPE_SCRUB_POINTS=0``), every switch a rerun. The three (minimal page, page,
  page by rerun) are timed in turn, A/B/C/A/B/C, so that a busy machine weighs on each alike;
* ``layer``: choosing the other layer in the sidebar's Layer box, until the plot holds it;
* ``colour``: choosing "HDBSCAN cluster" / "Class (trained on)" in "Colour by", until the plot is recoloured;
* ``first plot``: opening the page in a new browser context (empty browser cache; the server warm),
  until the first plot is drawn; ``first plot, cache warm``: the same in a new tab of that context (the
  browser's cache holds Streamlit's and Plotly's scripts, as for a user coming back);
* ``select``: releasing the mouse after a box selection of ``SELECT`` points (the leftmost ones; a quarter of
  them when fewer than 4 x ``SELECT`` are drawn), until the selected samples' images are shown;
* ``density first picture`` (``--density-sizes``, 1,000,000 points by default): first load of a view above the
  page's draw limit (200,000, app/views/embeddings_density.py), which shows the density of all points under a
  drawn sample; the tab must not crash. The minimal page is not timed there (it would draw every point).

"Drawn" is the first animation frame after the plot's data changed. Each interaction is timed the same
way on a minimal Streamlit page (written to a temporary folder): the same controls in the sidebar and one
``st.plotly_chart`` of one Scattergl trace of the same points (colour as a number per point), showing
the images of a box selection: the floor any Streamlit page pays for a rerun, sending the figure and
Plotly.js drawing it. Both draw every point (the Embeddings page draws up to 200,000 by default).

The store is the synthetic one of benchmarks/dashboard.py (10 classes, epochs 1 and 2), with two layers
and an 8x8 PNG thumbnail per sample. Medians and ratios are printed, never asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:  # run as a script: benchmarks/ is on sys.path
    from _common import median, table
    from dashboard import EPOCHS, RUN_ID, build_store
except ModuleNotFoundError:  # run as ``python -m benchmarks.browser``
    from benchmarks._common import median, table
    from benchmarks.dashboard import EPOCHS, RUN_ID, build_store

LAYERS = ("fc1.relu", "fc2.relu")
COLOURS = ("Class (trained on)", "HDBSCAN cluster")
TIMEOUT = 120_000  # ms: a wait longer than this is a failure, not a timing
SELECT = 10_000  # points a box selection holds (issue 18: box selection of 10,000 points to images shown <= 2 s)
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'
# the time of the user's last input, and a promise of the first frame after the plot's data changed
PROBE = """
window.__input = 0;
for (const kind of ['keydown', 'pointerdown', 'pointerup']) {
  document.addEventListener(kind, () => { window.__input = performance.now(); }, true);
}
window.__sig = () => {
  const gd = document.querySelector('PLOT');
  if (!gd || !gd.data || !gd._fullLayout) return null;
  const head = v => v == null ? '' : (v.bdata ? v.bdata.length + v.bdata.slice(0, 48) : JSON.stringify(v).slice(0, 64));
  return gd.data.map(t => [t.name, head(t.x), head(t.marker && t.marker.color)].join(':')).join('|');
};
window.__changed = (old) => new Promise(resolve => {
  const give_up = performance.now() + 120000;
  const tick = () => { const s = window.__sig(); if (s && s !== old) requestAnimationFrame(() => resolve(performance.now()));
                       else if (performance.now() > give_up) resolve(null); else requestAnimationFrame(tick); };
  tick();
});
""".replace("PLOT", PLOT)
MINIMAL = '''
import numpy as np, plotly.graph_objects as go, streamlit as st
from backend import api

store = api.open_store()

@st.cache_data
def points(layer, epoch):
    return api.read_analysis(store, "{run}", "points", layer, epoch)

@st.cache_data
def thumbnails():
    return api.read_samples(store, "{run}", thumbnails=True)["thumbnail"].tolist()

layer = st.sidebar.selectbox("Layer", {layers})
epoch = st.sidebar.select_slider("Epoch", {epochs}, value={epochs}[0])
colour = st.sidebar.selectbox("Colour by", ["Class (trained on)", "HDBSCAN cluster"])
df = points(layer, epoch)
c = (df["sample_id"] % 10 if colour.startswith("Class") else df["cluster"]).to_numpy()
fig = go.Figure(go.Scattergl(x=df["umap_x"].to_numpy(np.float32), y=df["umap_y"].to_numpy(np.float32), mode="markers",
                             marker={{"color": c, "size": 6}}))
event = st.plotly_chart(fig, key="plot", on_select="rerun", selection_mode=("points", "box", "lasso"))
picked = [p["point_index"] for p in event["selection"]["points"]][:48]
if picked:
    st.image([thumbnails()[i] for i in picked], width=56)
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="probe samples (points drawn)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each interaction per page and size")
    p.add_argument("--density-sizes", type=int, nargs="*", default=[1_000_000],
                   help="probe samples of views above the draw limit (the density view's first picture only)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2,000 points, 2 repeats")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic layouts")
    p.add_argument("--only", choices=["select", "first"],
                   help="time this interaction only: the box selection, or the first plot (then the density view's too)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.density_sizes = [2_000], 2, []
    return args


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (86, 180, 233)).save(out, format="PNG")
    return out.getvalue()


def serve(script: Path, store: Path, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """The app (through ``clusterscope app``, with its Streamlit settings) or another script, on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ["--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    if script == ROOT / "app" / "main.py":
        cmd = [sys.executable, "-m", "backend.cli", "app", "--store", str(store), *flags]
    else:
        cmd = [sys.executable, "-m", "streamlit", "run", str(script), *flags]
    from backend.serve import app_streamlit_variables

    # the minimal page is served with the app's Streamlit settings too (no file watcher...): the floor of a page served alike
    env = os.environ | app_streamlit_variables() | {"CLUSTERSCOPE_STORE": str(store), "PYTHONPATH": str(ROOT)} | (env or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{script} did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


class Session:
    """One browser tab on one page: opens it, and times each interaction (seconds)."""

    def __init__(self, browser, url: str, n: int, *, app: bool) -> None:
        self.browser, self.url, self.n, self.app = browser, url, n, app
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(PROBE)
        self.page = self.context.new_page()
        self.crashed = False
        self.page.on("crash", lambda *_: setattr(self, "crashed", True))
        self.epoch, self.layer, self.colour = 0, 0, 0  # indices of the EPOCHS, LAYERS, COLOURS shown

    def open(self) -> float:
        """Load the page and wait for its first plot; returns the seconds it took."""
        self.epoch, self.layer, self.colour = 0, 0, 0  # the URL's view (a new session: no remembered choice)
        t0 = time.perf_counter()
        self.page.goto(self.url, timeout=TIMEOUT)
        self.page.wait_for_function("() => window.__sig() !== null", timeout=TIMEOUT, polling="raf")
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        took = time.perf_counter() - t0
        self.idle()
        return took

    def idle(self) -> None:
        self.page.wait_for_function("() => document.querySelector('.stApp')?.getAttribute('data-test-script-state')"
                                    " === 'notRunning'", timeout=TIMEOUT)

    def timed(self, act) -> float:
        old = self.page.evaluate("window.__sig()")
        act()
        end = self.page.evaluate("(old) => window.__changed(old)", old)
        if end is None:
            raise RuntimeError(f"the plot did not change within {TIMEOUT / 1000:.0f} s ({self.url})")
        took = (end - self.page.evaluate("window.__input")) / 1000
        self.idle()
        return took

    def choose(self, label: str, option: str) -> None:
        self.page.get_by_role("combobox", name=label, exact=True).click()
        self.page.get_by_role("option", name=option, exact=True).click()

    def switch_epoch(self) -> float:
        slider = self.page.locator('[data-testid="stSlider"] input[type="range"]').first
        slider.focus()
        self.epoch = 1 - self.epoch
        return self.timed(lambda: self.page.keyboard.press("ArrowRight" if self.epoch else "ArrowLeft"))

    def switch_layer(self) -> float:
        self.layer = 1 - self.layer
        return self.timed(lambda: self.choose("Layer", LAYERS[self.layer]))

    def switch_colour(self) -> float:
        self.colour = 1 - self.colour
        return self.timed(lambda: self.choose("Colour by", COLOURS[self.colour]))

    def select(self) -> float:
        """Open the page afresh (no selection yet), box-select the leftmost ``SELECT`` points (the plot's full
        height, from its left edge to the x that leaves them left of it); seconds until images show."""
        self.open()
        gd = self.page.locator(PLOT).first
        gd.hover()
        gd.locator('.modebar-btn[data-val="select"]').click()
        area = self.page.evaluate(f"""(want) => {{ const gd = document.querySelector('{PLOT}'), s = gd._fullLayout._size;
            const xs = []; gd._fullData.forEach(t => {{ if (t.type === 'scattergl') for (const x of t.x) xs.push(x); }});
            xs.sort((a, b) => a - b); const k = Math.min(want, Math.floor(xs.length / 4));
            const cut = (xs[k - 1] + xs[k]) / 2, px = gd._fullLayout.xaxis.l2p(cut);
            const r = gd.getBoundingClientRect(); return [r.left + s.l, r.top + s.t, px, s.h]; }}""", SELECT)
        left, top, w, h = area
        self.page.mouse.move(left + 1, top + 1)
        self.page.mouse.down()
        self.page.mouse.move(left + w, top + h - 1, steps=8)
        self.page.mouse.up()
        self.page.wait_for_function("""() => { const im = document.querySelectorAll('[data-testid="stImage"] img');
            return im.length > 0 && Array.from(im).every(i => i.complete); }""", timeout=TIMEOUT, polling="raf")
        took = (self.page.evaluate("performance.now()") - self.page.evaluate("window.__input")) / 1000
        self.idle()
        return took

    def close(self) -> None:
        self.context.close()


def measure(browser, url: str, n: int, repeats: int, *, app: bool, only: str | None = None) -> dict[str, list[float]]:
    print(f"  {'page' if app else 'minimal'}, n={n}: first load", flush=True)
    first = Session(browser, url, n, app=app)
    first.open()  # warms the server's caches and its first run; not timed
    first.close()
    if only == "select":
        s = Session(browser, url, n, app=app)
        took = [s.select() for _ in range(repeats)]
        s.close()
        return {"select": took}
    if only == "first":
        return first_plots(browser, url, n, repeats, app=app)
    out = first_plots(browser, url, n, repeats, app=app) | {k: [] for k in ("layer", "colour", "select")}
    s = Session(browser, url, n, app=app)
    s.open()
    print("  switching", flush=True)
    for _ in range(2):  # once through every view, so that both pages serve from their caches
        s.switch_epoch(), s.switch_layer(), s.switch_colour()
    for _ in range(repeats):
        out["layer"].append(s.switch_layer())
        out["colour"].append(s.switch_colour())
        out["select"].append(s.select())
    s.close()
    return out


def first_plots(browser, url: str, n: int, repeats: int, *, app: bool) -> dict[str, list[float]]:
    """Seconds from opening the page to its first plot, ``repeats`` times: in a new browser context (empty
    cache: a first visit), and in a new tab of a context that opened it before (the browser's cache holds
    Streamlit's and Plotly's scripts: a user coming back)."""
    took: dict[str, list[float]] = {"first plot": [], "first plot, cache warm": []}
    for _ in range(repeats):
        s = Session(browser, url, n, app=app)
        took["first plot"].append(s.open())
        s.page.close()
        s.page = s.context.new_page()
        took["first plot, cache warm"].append(s.open())
        s.close()
    return took


def epoch_switches(browser, urls: dict[str, str], n: int, repeats: int) -> dict[str, list[float]]:
    """Epoch switches on each page of ``urls`` in turn (one each, ``repeats`` rounds), so that the load of a
    shared machine weighs on each alike; prints the load average."""
    sessions = {name: Session(browser, url, n, app=name != "minimal") for name, url in urls.items()}
    out: dict[str, list[float]] = {name: [] for name in urls}
    try:
        for s in sessions.values():
            s.open()
            s.switch_epoch(), s.switch_epoch()  # both epochs once: served from the caches
        print(f"  epoch switches, interleaved: load average {os.getloadavg()[0]:.2f} before", flush=True)
        for _ in range(repeats):
            for name, s in sessions.items():
                out[name].append(s.switch_epoch())
        print(f"  load average {os.getloadavg()[0]:.2f} after", flush=True)
    finally:
        for s in sessions.values():
            s.close()
    return out


def density_first_picture(browser, tmp: Path, n: int, args: argparse.Namespace) -> list:
    """First loads of a view of ``n`` points above the page's draw limit: the density view (median seconds);
    raises if the tab crashed."""
    root = tmp / f"store-{n}"
    build_store(root, n, args.seed, layers=LAYERS, thumbnail=png())
    proc, url = serve(ROOT / "app" / "main.py", root, tmp / f"density-{n}.log")
    url += f"/embeddings?run={RUN_ID}&layer={LAYERS[0]}&epoch={EPOCHS[0]}"
    took = []
    try:
        for k in range(args.repeats + 1):  # the first one warms the server's caches: not timed
            s = Session(browser, url, n, app=True)
            t = s.open()
            density = s.page.evaluate(f"() => document.querySelector('{PLOT}').data[0].type") == "heatmap"
            crashed = s.crashed
            s.close()
            if crashed or not density:
                raise RuntimeError(f"n={n}: the tab crashed or showed no density view ({crashed=}, {density=})")
            took += [t] if k else []
    finally:
        stop(proc)
    print(f"browser density first picture n={n}: {median(took) * 1000:.0f} ms (runs {[round(t * 1000) for t in took]}), "
          "no tab crash", flush=True)
    return [n, "density first picture", median(took) * 1000, float("nan"), float("nan")]


def main(argv: list[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    args = parse_args(argv)
    print(f"browser benchmark: sizes {args.sizes}, {args.repeats} repeats, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cs-bench-browser-") as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for n in args.sizes:
            root = Path(tmp) / f"store-{n}"
            build_store(root, n, args.seed, layers=LAYERS, thumbnail=png())
            minimal = Path(tmp) / f"minimal_{n}.py"
            minimal.write_text(MINIMAL.format(run=RUN_ID, layers=list(LAYERS), epochs=list(EPOCHS)))
            times, urls, procs = {}, {}, []
            try:
                servers = (("minimal", minimal, None), ("page", ROOT / "app" / "main.py", None),
                           ("rerun", ROOT / "app" / "main.py", {"CLUSTERSCOPE_SCRUB_POINTS": "0"}))
                for name, script, env in servers[:2] if args.only else servers:
                    proc, url = serve(script, root, Path(tmp) / f"{name}-{n}.log", env)
                    procs.append(proc)
                    urls[name] = url + (f"/embeddings?run={RUN_ID}&layer={LAYERS[0]}&epoch={EPOCHS[0]}" if name != "minimal" else "/")
                epochs = {} if args.only else epoch_switches(browser, urls, n, 3 * args.repeats)
                for name in ("minimal", "page"):
                    times[name] = ({"epoch": epochs[name]} if epochs else {}) | measure(
                        browser, urls[name], n, args.repeats, app=name == "page", only=args.only)
                    print(f"  load average {os.getloadavg()[0]:.2f} after the {name} page", flush=True)
                if epochs:
                    times["page"]["epoch, rerun only"], times["minimal"]["epoch, rerun only"] = epochs["rerun"], epochs["minimal"]
            finally:
                for proc in procs:
                    stop(proc)
            for what in times["page"]:
                a, b = median(times["page"][what]), median(times["minimal"][what])
                rows.append([n, what, a * 1000, b * 1000, a / b])
                print(f"RATIO browser {what} n={n}: page {a * 1000:.0f} ms / minimal {b * 1000:.0f} ms = {a / b:.2f}",
                      flush=True)
        for n in [] if args.only == "select" else args.density_sizes:
            rows.append(density_first_picture(browser, Path(tmp), n, args))
        browser.close()
    print(table(["points", "interaction", "page ms (median)", "minimal ms (median)", "ratio"], rows))


if __name__ == "__main__":
    main()
