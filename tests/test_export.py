"""Static export of the dashboard's figures (PNG and SVG through kaleido and the system Chromium, self-contained
HTML, the animated GIF), on the Embeddings scatter, whose arrays are typed-array specs (charts_embeddings.typed_array).

Needs Chromium, like tests/test_e2e_browser.py (`.ci/run` installs it); fails, rather than skips, without it.
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app.charts import base as charts
from app.charts import embeddings as charts_embeddings


@pytest.fixture(scope="module")
def figures() -> list:
    if shutil.which("chromium") is None and shutil.which("google-chrome") is None:
        pytest.fail("Static export needs Chrome or Chromium (`.ci/run` installs the Debian package chromium).")
    rng = np.random.default_rng(0)
    n = 600
    label = np.arange(n) % 3
    df = pd.DataFrame({"sample_id": np.arange(n), "cluster": label, "umap_x": rng.normal(size=n) + 6 * label,
                       "umap_y": rng.normal(size=n), "colour_value": np.asarray(["a", "b", "c"])[label]})
    colours = charts.category_colours(["a", "b", "c"])
    return [charts_embeddings.embedding_scatter(df, projection="umap", colour="colour_value", colours=colours,
                                                title=f"export test · epoch {e}", ranges=([-4, 18], [-4, 4]))
            for e in (1, 2)]


def test_png_svg_and_html_draw_the_points(figures: list) -> None:
    from app import widgets

    fig = figures[0]
    png = Image.open(io.BytesIO(widgets.static_image(fig, "png", width=800, height=500))).convert("RGB")
    assert png.size == (800, 500)
    pixels = np.asarray(png).reshape(-1, 3)
    # the three classes' colours are drawn (markers are opaque at their centres; allow anti-aliasing)
    for hex_colour in charts.category_colours(["a", "b", "c"]).values():
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels.astype(int) - rgb).sum(axis=1) < 60).sum() > 200, hex_colour
    svg = widgets.static_image(fig, "svg", width=800, height=500).decode()
    assert svg.startswith("<svg") and "export test · epoch 1" in svg
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    assert "bdata" in html and len(html) > 1_000_000  # plotly.js itself is inside: it opens offline


def test_gif_of_the_epochs(figures: list) -> None:
    from app import widgets

    pngs = widgets.render_pngs(figures, width=400, height=300)
    gif = Image.open(io.BytesIO(charts_embeddings.gif_from_pngs(pngs)))
    assert gif.format == "GIF" and gif.n_frames == 2 and gif.size == (400, 300)


def _dropping(monkeypatch: pytest.MonkeyPatch, calls: int) -> list[int]:
    """kaleido as it fails under load: for its first ``calls`` calls the first frame asked for is not written and
    its error is returned in a tuple, as kaleido returns a render's timeout; the other frames are drawn for real."""
    import kaleido

    real, seen = kaleido.write_fig_from_object_sync, []

    def flaky(jobs: list[dict]) -> tuple:
        seen.append(len(jobs))
        if len(seen) > calls:
            return real(jobs)
        real(jobs[1:]) if len(jobs) > 1 else None
        return (TimeoutError("render timed out"),)

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", flaky)
    return seen


def test_a_frame_kaleido_left_unwritten_is_drawn_again(figures: list, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import widgets

    seen = _dropping(monkeypatch, calls=1)
    pngs = widgets.render_pngs(figures, width=400, height=300)
    assert seen == [2, 1]  # the chunk, then only the frame it left out
    assert [Image.open(io.BytesIO(p)).size for p in pngs] == [(400, 300)] * 2


def test_a_frame_that_fails_twice_is_one_clear_error(figures: list, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import widgets

    _dropping(monkeypatch, calls=2)
    with pytest.raises(RuntimeError, match=r"1 of the animation's frames could not be drawn, twice "
                                           r"\(TimeoutError: render timed out\); try again"):
        widgets.render_pngs(figures, width=400, height=300)
