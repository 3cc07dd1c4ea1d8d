"""Take the dashboard's screenshots: every page, normal and presentation mode, at 1280 x 720 (a projector).

    CLUSTERSCOPE_STORE=STORE clusterscope app --server.port 8599 &      # a small store: two analysed runs
    python docs/screenshots/take.py http://127.0.0.1:8599 RUN DYNAMICS_RUN  # and one with [dynamics]

Headless Chromium through Playwright (the system chromium, as tests/test_e2e_browser.py uses); each PNG is
what the screen shows (not the whole page), reduced to 256 colours to keep the files small.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'


def pages(run: str, dynamics_run: str) -> dict[str, str]:
    return {"runs": "?", "embeddings": f"embeddings?run={run}", "neurons": f"neurons?run={run}",
            "layers": f"layers?run={run}", "compare": "compare?", "mechanisms": f"mechanisms?run={dynamics_run}",
            "upload": "upload?"}


def shoot(page, url: str, path: Path) -> None:  # noqa: ANN001 - a Playwright Page
    page.goto(url, timeout=60_000)
    page.get_by_role("heading").first.wait_for(timeout=120_000)
    with contextlib.suppress(Exception):  # a page without a figure (Upload) is shot as it is
        page.wait_for_selector(PLOT, timeout=20_000)
    page.wait_for_timeout(4000)  # the page's last elements and fonts
    page.wait_for_function("() => !document.querySelector('[data-stale=true]')", timeout=30_000)
    png = Image.open(io.BytesIO(page.screenshot()))
    png.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.name}: {path.stat().st_size // 1024} KiB")


def main(base: str, run: str, dynamics_run: str) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            for name, query in pages(run, dynamics_run).items():
                shoot(page, f"{base}/{query}", HERE / f"{name}-1280x720.png")
                shoot(page, f"{base}/{query}&present=1", HERE / f"{name}-present-1280x720.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
