"""End to end: a real `streamlit run` server and a real browser (Chromium through Playwright).

AppTest runs the scripts without a browser; this test checks what AppTest cannot: that the page
loads from a shared link, that Plotly draws the stored embedding, and that moving the epoch slider
redraws it with the other epoch's points.

Needs Chromium (Debian package `chromium`) and the Python package `playwright`; `.ci/run` installs
Chromium when it is missing. The test fails, rather than skips, without them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backend import api
from tests.ports import free_port, serves

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "app" / "main.py"
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'
# The x of every trace of the first Plotly figure on the page: a list, or {dtype, bdata} for a typed array.
# null while Streamlit swaps the figure's element on a rerun (the caller then tries again)
PLOT_XS = f"() => {{ const gd = document.querySelector('{PLOT}'); return gd?.data ? Array.from(gd.data).map(t => t.x) : null; }}"


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"Chromium not found (looked for `chromium` on PATH and {path}). `.ci/run` installs it "
                    "(apt-get install chromium); on another machine install your distribution's chromium package.")
    return path


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Wait until the server ``proc`` started answers ``url``'s health check: ``proc`` itself, not another
    process that happens to listen on the port (tests/ports.py)."""
    deadline, port, other = time.monotonic() + timeout, int(url.rsplit(":", 1)[1]), False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    if serves(proc.pid, port):
                        return
                    other = True
        except OSError:
            pass
        time.sleep(0.3)
    whose = f"; another process answers on port {port}" if other else ""
    pytest.fail(f"streamlit did not answer /_stcore/health within {timeout:.0f} s{whose}:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group, then kill it if it does not exit."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def serve(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = os.environ | {"CLUSTERSCOPE_STORE": str(root), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(MAIN), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)


# where on the screen the middle point of the first trace is drawn, and the traces' names (the classes)
POINT = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, tr = gd._fullData[0], i = Math.floor(tr.x.length / 2);
  const box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(tr.x[i]), y: box.top + ya._offset + ya.l2p(tr.y[i]), names: gd._fullData.map(t => t.name)};
}"""


def plot_xs(page) -> list[float]:
    """Every x of every trace of the page's first Plotly figure, typed arrays decoded ([] while it is redrawn)."""
    out: list[float] = []
    for x in page.evaluate(PLOT_XS) or []:
        out += np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist() if isinstance(x, dict) else x
    return out


def save(page, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("CLUSTERSCOPE_SCREENSHOTS"):
        folder = Path(os.environ["CLUSTERSCOPE_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator:
    """A page of the system Chromium (headless) of ``width`` x ``height`` pixels, driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The Python package `playwright` is missing: `pip install playwright` (the browser itself is the "
                    "system Chromium, which `.ci/run` installs).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


@pytest.fixture
def page() -> Iterator:
    """A Chromium page (1400 x 1000) driven by Playwright."""
    with chromium_page() as p:
        yield p


def test_epoch_slider_redraws_the_embedding(server: str, page, analysed_store: tuple[api.RunStore, str],
                                            tmp_path: Path) -> None:
    store, run_id = analysed_store
    expected = {e: sorted(api.read_analysis(store, run_id, "points", "fc2.relu", e)["umap_x"]) for e in (1, 2)}
    page.goto(f"{server}/embeddings?run={run_id}&layer=fc2.relu&epoch=1", timeout=60_000)
    page.wait_for_selector(PLOT, timeout=120_000)  # generous: CI machines may be busy
    page.wait_for_function(f"() => document.querySelector('{PLOT}').data?.length > 0", timeout=30_000)
    # the shared link ran the whole app (navigation, presentation switch), not the page script alone
    assert page.get_by_role("heading", name="Embeddings").is_visible()
    assert page.get_by_text("Presentation mode").is_visible()
    first = plot_xs(page)
    assert sorted(first) == pytest.approx(expected[1], rel=1e-5)
    save(page, "embeddings-epoch1.png", tmp_path)

    page.locator('[data-testid="stSlider"] input[type="range"]').first.focus()  # the sidebar's epoch slider
    page.keyboard.press("ArrowRight")  # epochs 0, 1, 2: one step right is epoch 2
    page.wait_for_url("**epoch=2**", timeout=30_000)
    deadline = time.monotonic() + 30
    while (second := plot_xs(page)) in (first, []):
        assert time.monotonic() < deadline, "the plot did not change after the epoch changed"
        time.sleep(0.2)
    assert sorted(second) == pytest.approx(expected[2], rel=1e-5)
    assert page.locator('[data-testid="stException"]').count() == 0
    save(page, "embeddings-epoch2.png", tmp_path)

    # hovering a point shows its thumbnail and labels (app/hover.py)
    point = page.evaluate(POINT)
    page.mouse.move(point["x"] - 40, point["y"] - 40)
    page.mouse.move(point["x"], point["y"], steps=4)
    card = page.locator("#cs-hover-card")
    card.wait_for(state="visible", timeout=15_000)
    text = card.inner_text()  # the point under the pointer, or one drawn on top of it
    assert any(f"class {name}\n" in text for name in point["names"]) and re.search(r"^sample \d+$", text, re.M), text
    assert card.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    save(page, "embeddings-hover.png", tmp_path)


def test_runs_page_links_open_the_run_in_another_page(server: str, page, analysed_store: tuple[api.RunStore, str],
                                                      tmp_path: Path) -> None:
    _, run_id = analysed_store
    page.goto(server, timeout=60_000)
    link = page.locator('[data-testid="stPageLink"] a', has_text="Embeddings").first
    link.wait_for(timeout=120_000)
    save(page, "runs.png", tmp_path)
    link.click()
    page.wait_for_url(f"**/embeddings?run={run_id}**", timeout=30_000)
    page.wait_for_selector(PLOT, timeout=120_000)
    assert page.get_by_role("heading", name="Embeddings").is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_sidebar_navigation_keeps_the_view(server: str, page, analysed_store: tuple[api.RunStore, str]) -> None:
    """Streamlit drops the URL's parameters when the sidebar switches pages; the session's memory of the
    choices (app/state.py) opens Neurons on the layer and epoch chosen on Embeddings, not on its defaults
    (the last layer and epoch)."""
    _, run_id = analysed_store
    page.goto(f"{server}/embeddings?run={run_id}&layer=fc1.relu&epoch=1", timeout=60_000)
    page.wait_for_selector(PLOT, timeout=120_000)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Neurons").first.click()
    page.wait_for_url("**/neurons?**", timeout=60_000)
    # the page writes its parameters one by one as its script runs: wait for the epoch, the last of them
    page.wait_for_url(re.compile(r".*[?&]epoch=\d.*"), timeout=30_000)
    assert f"run={run_id}" in page.url and "layer=fc1.relu" in page.url and "epoch=1" in page.url, page.url
    assert page.get_by_role("heading", name="Neurons").is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server over an empty store of its own, so the import does not change the shared tiny store."""
    root = tmp_path_factory.mktemp("upload-store")
    for url in serve(root, tmp_path_factory):
        yield url, root


def test_upload_page_imports_a_checkpoint(upload_server: tuple[str, Path], page, analysed_store: tuple[api.RunStore, str],
                                          tmp_path: Path) -> None:
    url, root = upload_server
    store, run_id = analysed_store
    import torch

    ckpt = tmp_path / "epoch=2.pt"
    torch.save(store.load_checkpoint(run_id, 2), ckpt)
    page.goto(f"{url}/upload", timeout=60_000)
    page.get_by_role("heading", name="Upload").wait_for(timeout=120_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(ckpt))
    page.get_by_text("epoch=2.pt").first.wait_for(timeout=30_000)
    for label, value in (("Probe samples from the training split", "300"), ("Probe samples from the test split", "100")):
        box = page.get_by_role("spinbutton", name=label)
        box.fill(value)
        box.press("Enter")
    page.wait_for_timeout(1000)  # let the reruns of the inputs settle before the click
    page.get_by_role("button", name="Import").click()
    page.get_by_text("Imported run").wait_for(timeout=300_000)  # the job imports, then analyses (UMAP compiles once)
    save(page, "upload.png", tmp_path)
    assert page.locator('[data-testid="stException"]').count() == 0
    imported = api.open_store(root)
    (new,) = imported.run_ids()
    info = api.read_run(imported, new)
    assert info["origin"]["sources"][0]["file"] == "epoch=2.pt" and info["recorded_epochs"] == [2]
    assert info["dataset"]["n_probe_train"] == 300
