"""The density view of the Embeddings page: every point of a large view as an image, a sample drawn on top.

Above ``app/views/embeddings_density.draw_limit()`` points (200,000 by default) a browser drawing every point
as WebGL would be slow and unreadable (points over points). Instead the server counts the points of each pixel
of a ``BINS`` x ``BINS`` image of the layout (one bincount over all points, nothing sampled) and the
page shows that image, coloured by the count on a log scale (Viridis: perceptually uniform, colour-blind safe,
prints in grey), with a colour bar in points per pixel. A stratified sample of the points is drawn over it as
ordinary WebGL points (hover, selection), and a box or lasso selects every point in its region, drawn or not
(:func:`in_region`). Pure: arrays in, figures and arrays out.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go

from app.charts.base import SEQUENTIAL
from app.charts.embeddings import POINTS, decode_typed, fast_figure, typed_array

BINS = 512  # [P] pixels of the density image per axis: about the plot's width on a laptop screen
UNIT = "points per pixel"
SAMPLE_MARKER = {"size": 4, "opacity": 0.45}  # the sample drawn on top: small and see-through, the density shows
TOP_MARGIN = {False: 90, True: 110}  # px above the plot: the title and the note under it (presentation: larger font)
HOVER = "%{customdata} points per pixel<extra>density of all points</extra>"


class Density(NamedTuple):
    """Points per pixel of a layout: ``counts[j, i]`` points have x in [x0 + i dx, x0 + (i+1) dx), y likewise."""

    counts: np.ndarray  # (BINS, BINS), int64; rows are y
    x0: float
    dx: float
    y0: float
    dy: float
    total: int  # the points counted (all of the view's)


def density(x: np.ndarray, y: np.ndarray, *, bins: int = BINS) -> Density:
    """The points per pixel of (``x``, ``y``) on a ``bins`` x ``bins`` image of their range (5 % margin).
    Non-finite coordinates are left out."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = np.asarray(x, dtype=np.float64)[keep], np.asarray(y, dtype=np.float64)[keep]
    if not len(x):
        return Density(np.zeros((bins, bins), dtype=np.int64), 0.0, 1.0 / bins, 0.0, 1.0 / bins, 0)
    (xl, xh), (yl, yh) = ((float(v.min()), float(v.max())) for v in (x, y))
    px, py = 0.05 * (xh - xl or 1.0), 0.05 * (yh - yl or 1.0)
    x0, y0 = xl - px, yl - py
    dx, dy = (xh + px - x0) / bins, (yh + py - y0) / bins
    # one bincount of the flat pixel index: NumPy's histogram2d (a searchsorted per axis) took 0.37 s of the
    # density view's first load at 10^6 points; the margin keeps every point off the top edges
    i = np.minimum(((x - x0) / dx).astype(np.int64), bins - 1)
    j = np.minimum(((y - y0) / dy).astype(np.int64), bins - 1)
    counts = np.bincount(j * bins + i, minlength=bins * bins).reshape(bins, bins)
    return Density(counts, float(x0), float(dx), float(y0), float(dy), len(x))


def density_trace(d: Density, *, present: bool = False) -> dict:
    """A heatmap trace of ``d`` (below the points: put it first): colour log10(count), the colour bar labelled in
    points per pixel; empty pixels transparent. Not selectable: the points drawn over it are."""
    counts = d.counts.astype(np.float32)
    top = max(float(counts.max()), 1.0)
    z = np.where(counts > 0, np.log10(np.maximum(counts, 1.0)), np.nan).astype(np.float32)
    decades = list(range(int(np.floor(np.log10(top))) + 1))
    return {
        "type": "heatmap", "z": typed_array(z), "x0": d.x0 + d.dx / 2, "dx": d.dx, "y0": d.y0 + d.dy / 2, "dy": d.dy,
        "customdata": typed_array(d.counts.astype(np.int32)), "hovertemplate": HOVER, "hoverongaps": False,
        "colorscale": SEQUENTIAL, "zmin": 0.0, "zmax": max(np.log10(top), 0.3), "showscale": True, "name": "density",
        "showlegend": False,
        "colorbar": {"title": {"text": f"{UNIT} (all {d.total:,})", "side": "right"}, "x": 1.02, "xanchor": "left",
                     "tickvals": decades, "ticktext": [f"{10 ** k:,}" for k in decades], "thickness": 18 if present else 14},
    }


def with_density(fig: go.Figure, d: Density, *, present: bool = False, note: str = "") -> go.Figure:
    """``fig`` (the sample's embedding scatter) with the density of all points under its traces and ``note``
    (e.g. "density view: ...") under the title. A new figure: ``fig`` may be a cached one."""
    spec = fig.to_plotly_json()
    data = [t | {"marker": t.get("marker", {}) | SAMPLE_MARKER} if t.get("meta") == POINTS else t for t in spec["data"]]
    layout = dict(spec["layout"])
    legend = dict(layout.get("legend") or {})
    layout["legend"] = legend | {"x": 1.22, "xanchor": "left"}  # right of the colour bar
    # two title lines: the top margin of the app's other two-line figures, so Plotly's mode bar stays clear of them
    layout["margin"] = dict(layout.get("margin") or {}) | {"t": TOP_MARGIN[present]}
    if note:
        title = dict(layout.get("title") or {})
        layout["title"] = title | {"text": f"{title.get('text', '')}<br><sup>{note}</sup>"}
    return fast_figure([density_trace(d, present=present), *data], layout)


def in_region(x: np.ndarray, y: np.ndarray, event: object) -> np.ndarray | None:
    """Which points (``x``, ``y``: every point of the view) lie in a ``st.plotly_chart`` selection's boxes or
    lassos; None when the selection has neither (a click: its points are the selection)."""
    selection = (event or {}).get("selection") or {}
    boxes, lassos = selection.get("box") or [], selection.get("lasso") or []
    if not boxes and not lassos:
        return None
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    for box in boxes:
        (xa, xb), (ya, yb) = sorted(map(float, decode_typed(box["x"]))), sorted(map(float, decode_typed(box["y"])))
        inside |= (x >= xa) & (x <= xb) & (y >= ya) & (y <= yb)
    for lasso in lassos:
        inside |= in_polygon(x, y, np.asarray(decode_typed(lasso["x"]), float), np.asarray(decode_typed(lasso["y"]), float))
    return inside


def in_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Which points (``x``, ``y``) lie inside the polygon of vertices (``px``, ``py``), by Plotly's rule (its
    lasso's tester, plotly.js src/lib/polygon.js, on the page's points): a point on an edge is inside, any other
    by the parity of the edges above it (Plotly counts in pixels, y downwards: ``y`` is negated to count alike)."""
    x, y = np.asarray(x, dtype=np.float64), -np.asarray(y, dtype=np.float64)
    px, py = np.append(px, px[:1]).astype(np.float64), -np.append(py, py[:1]).astype(np.float64)
    if len(px) < 4:
        return np.zeros(len(x), dtype=bool)
    crossings, on_edge = np.zeros(len(x), dtype=np.int64), np.zeros(len(x), dtype=bool)
    for h, g, d, f in zip(px[:-1], py[:-1], px[1:], py[1:], strict=True):
        lo = min(h, d)
        near = (x >= lo) & (x <= max(h, d)) & (y <= max(g, f))
        above = near & (y < min(g, f))
        with np.errstate(divide="ignore", invalid="ignore"):
            at = y if d == h else g + (x - h) * (f - g) / (d - h)
        on_edge |= near & ~above & (y == at)
        crossings += (above | (near & (y < at))) & (x != lo)
    box = (x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max())
    return box & (on_edge | (crossings % 2 == 1))
