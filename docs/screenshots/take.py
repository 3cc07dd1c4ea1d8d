"""Take the dashboard's screenshots: every page, normal and presentation mode, at 1280 x 720 (a projector), and
with --readme the larger ones README.md and docs/sweeps.md show (1400 x 1000, normal mode).

    clusterscope demo --store STORE                                     # the demo store (about two minutes)
    CLUSTERSCOPE_STORE=STORE clusterscope app --server.port 8599 &
    python docs/screenshots/take.py http://127.0.0.1:8599 demo-digits-base demo-synthclust --readme
    # compare-sweep.png: a server over a store holding the thesis-digits sweep (configs/sweeps/thesis_digits.toml)
    python docs/screenshots/take.py http://127.0.0.1:8599 RUN DYNAMICS_RUN --sweep-url http://127.0.0.1:8600
    # embeddings-density*.png: a server over a run of more points than the draw limit (200,000), e.g. the
    # 1,000,000-point store of benchmarks/browser.py, or any store served with CLUSTERSCOPE_DRAW_POINTS lowered
    python docs/screenshots/take.py http://127.0.0.1:8599 RUN DYNAMICS_RUN --only-readme --density-url http://127.0.0.1:8601 \
        --density-run bench-dashboard

Headless Chromium through Playwright (the system chromium, as tests/test_e2e_browser.py uses); each PNG is
what the screen shows (not the whole page), reduced to 256 colours to keep the files small.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'
# where on the screen the middle point of the first trace is drawn (as tests/test_e2e_browser.py finds it)
POINT = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, tr = gd._fullData[0], i = Math.floor(tr.x.length / 2);
  const box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(tr.x[i]), y: box.top + ya._offset + ya.l2p(tr.y[i])};
}"""


def pages(run: str, dynamics_run: str) -> dict[str, str]:
    return {"runs": "?", "embeddings": f"embeddings?run={run}", "neurons": f"neurons?run={run}",
            "layers": f"layers?run={run}", "geometry": f"geometry?run={run}", "compare": "compare?",
            "mechanisms": f"mechanisms?run={dynamics_run}", "upload": "upload?"}


def load(page, url: str) -> None:
    page.goto(url, timeout=60_000)
    page.get_by_role("heading").first.wait_for(timeout=120_000)
    with contextlib.suppress(Exception):  # a page without a figure (Upload) is shot as it is
        page.wait_for_selector(PLOT, timeout=20_000)
    page.wait_for_timeout(4000)  # the page's last elements and fonts
    page.wait_for_function("() => !document.querySelector('[data-stale=true]')", timeout=30_000)


def save(png: bytes, path: Path) -> None:
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True)
    print(f"{path.name}: {path.stat().st_size // 1024} KiB")


def shoot(page, url: str, path: Path) -> None:
    load(page, url)
    save(page.screenshot(), path)


def projector(browser, base: str, run: str, dynamics_run: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    for name, query in pages(run, dynamics_run).items():
        shoot(page, f"{base}/{query}", HERE / f"{name}-1280x720.png")
        shoot(page, f"{base}/{query}&present=1", HERE / f"{name}-present-1280x720.png")


def readme(browser, base: str, run: str, dynamics_run: str) -> None:
    """The README's screenshots (1400 x 1000): every page, a hover card, the Compare page's side-by-side embeddings."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name, query in pages(run, dynamics_run).items():
        if name != "upload":
            shoot(page, f"{base}/{query}", HERE / f"{name}.png")
    load(page, f"{base}/embeddings?run={run}")
    point = page.evaluate(POINT)
    page.mouse.move(point["x"] - 40, point["y"] - 40)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.locator("#cs-hover-card").wait_for(state="visible", timeout=10_000)
    page.wait_for_timeout(1000)  # the thumbnail
    save(page.screenshot(), HERE / "embeddings-hover.png")
    load(page, f"{base}/compare?")
    section = page.get_by_role("heading", name="Side by side")
    section.scroll_into_view_if_needed()
    page.wait_for_timeout(3000)  # the grid's WebGL panels
    figure = page.locator('[data-testid="stPlotlyChart"]').last
    figure.scroll_into_view_if_needed()
    page.wait_for_timeout(2000)
    save(figure.screenshot(), HERE / "compare-multiples.png")


def sweep(browser, base: str, name: str = "thesis-digits") -> None:
    """compare-sweep.png: the Compare page of a sweep, its first sections (a tall window: the page scrolls inside)."""
    page = browser.new_page(viewport={"width": 1280, "height": 2400})
    shoot(page, f"{base}/compare?sweep={name}", HERE / "compare-sweep.png")


def density(browser, base: str, run: str) -> None:
    """embeddings-density.png (the density view) and embeddings-density-select.png (a box selection on it, the
    selected samples' images below): a run above the page's draw limit."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    load(page, f"{base}/embeddings?run={run}")
    page.get_by_text("Density view").first.wait_for(timeout=120_000)
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.data?.[0]?.type === 'heatmap'", timeout=300_000)
    page.wait_for_timeout(3000)  # the WebGL points over it
    save(page.screenshot(), HERE / "embeddings-density.png")
    gd = page.locator(PLOT).first
    gd.hover()
    gd.locator('.modebar-btn[data-val="select"]').click()
    area = page.evaluate(f"""() => {{ const gd = document.querySelector('{PLOT}'), s = gd._fullLayout._size;
        const r = gd.getBoundingClientRect(); return [r.left + s.l, r.top + s.t, s.w, s.h]; }}""")
    left, top, w, h = area
    page.mouse.move(left + 5, top + 5)
    page.mouse.down()
    page.mouse.move(left + w / 2, top + h / 2, steps=8)
    page.mouse.up()
    page.get_by_role("heading", name="Selection", exact=False).wait_for(timeout=300_000)
    page.wait_for_function("() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'",
                           timeout=300_000)
    page.wait_for_timeout(3000)
    page.get_by_role("heading", name="Selection", exact=False).scroll_into_view_if_needed()
    page.mouse.wheel(0, -350)
    page.wait_for_timeout(1500)
    save(page.screenshot(), HERE / "embeddings-density-select.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the dashboard's URL, e.g. http://127.0.0.1:8599")
    parser.add_argument("run", help="a run for the Embeddings, Neurons and Layers pages")
    parser.add_argument("dynamics_run", help="a run with [dynamics] for the Mechanisms page")
    parser.add_argument("--readme", action="store_true", help="also the README's 1400 x 1000 screenshots")
    parser.add_argument("--only-readme", action="store_true", help="only the README's screenshots")
    parser.add_argument("--sweep-url", help="a dashboard over a store with the thesis-digits sweep: compare-sweep.png")
    parser.add_argument("--density-url", help="a dashboard over a run above the draw limit: embeddings-density*.png")
    parser.add_argument("--density-run", default="bench-dashboard", help="that run (--density-url)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            if not args.only_readme:
                projector(browser, args.base, args.run, args.dynamics_run)
            if (args.readme or args.only_readme) and not args.density_url:
                readme(browser, args.base, args.run, args.dynamics_run)
            if args.sweep_url:
                sweep(browser, args.sweep_url)
            if args.density_url:
                density(browser, args.density_url, args.density_run)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
