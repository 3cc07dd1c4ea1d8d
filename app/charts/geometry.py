"""Pure figure builders for the Geometry page (SCIENCE.md 7): DataFrame in, Plotly figure out. No Streamlit.

CKA matrices come from backend.api.cka_layers / cka_epochs; the curves from api.layer_geometry (the
geometry columns of the ``layers`` table, docs/store.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.base import FONT, SEQUENTIAL, set_template
from app.charts.layers import depth_colours, integer_epochs

# The curve panels of the page: (title with unit, [(column, label of its line style)]); solid = classes,
# dashed = subclasses, so colour stays for depth.
PANELS: dict[str, tuple[str, list[str]]] = {
    "nc1": ("NC1 (lower = more collapsed)", ["nc1_class", "nc1_subclass"]),
    "nc2": ("NC2 angles (0 = simplex)", ["nc2_angle_class", "nc2_angle_subclass"]),
    "nc2_norm": ("NC2 norms (0 = equal)", ["nc2_norm_class", "nc2_norm_subclass"]),
    "nc3": ("NC3, last layer (0 = classifier rows ∝ centred class means)", ["nc3_class"]),
    "nc4": ("NC4 (share, 0-1)", ["nc4_class", "nc4_subclass"]),
    "knn": ("k-NN accuracy (0-1)", ["knn_class", "knn_subclass"]),
    "probe": ("linear-probe accuracy (0-1)", ["probe_class", "probe_subclass"]),
    "twonn": ("TwoNN dimension (dimensions)", ["twonn_id"]),
}
DASH = {"class": "solid", "subclass": "dash"}
LOG_PANELS = ("nc1",)  # NC1 spans orders of magnitude as groups collapse


def cka_heatmap(matrix: pd.DataFrame, *, x_title: str, y_title: str, title: str) -> go.Figure:
    """A CKA matrix (rows and columns as given, e.g. layers in forward order or epochs ascending) as a
    heatmap on a fixed [0, 1] Viridis scale, the first row on top, values written in cells when few."""
    xs = [str(c) for c in matrix.columns]
    ys = [str(i) for i in matrix.index]
    z = matrix.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(
        x=xs, y=ys, z=z, zmin=0.0, zmax=1.0, colorscale=SEQUENTIAL,
        colorbar={"title": {"text": "CKA (0-1)", "side": "top"}},
        texttemplate="%{z:.2f}" if z.size <= 144 else None, textfont={"size": 14},
        hovertemplate=y_title + " %{y}<br>" + x_title + " %{x}<br>CKA %{z:.3f}<extra></extra>",
    ))
    fig.update_xaxes(title=x_title, type="category", categoryorder="array", categoryarray=xs)
    fig.update_yaxes(title=y_title, type="category", categoryorder="array", categoryarray=ys, autorange="reversed")
    fig.update_layout(title=title, font=FONT, height=min(680, max(460, 200 + 32 * len(ys))))  # a title of two lines, rotated labels
    return set_template(fig)


def cka_to_last_curves(to_last: pd.DataFrame, layers: Sequence[str], *, title: str) -> go.Figure:
    """CKA of each epoch with the layer's last analysed epoch, one line per layer coloured by depth (dark =
    first layer): a layer has settled when its line reaches 1. to_last : columns layer, epoch, cka."""
    fig = go.Figure()
    for layer, colour in zip(layers, depth_colours(len(layers)), strict=True):  # solid lines: one per layer
        rows = to_last[to_last["layer"] == layer].sort_values("epoch")
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(x=rows["epoch"], y=rows["cka"], mode="lines+markers", name=layer,
                                 line={"color": colour, "width": 3}, marker={"size": 6},
                                 hovertemplate=layer + "<br>epoch %{x}<br>CKA to last %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="CKA with last epoch (0-1)", range=[0, 1.02])
    integer_epochs(fig, to_last["epoch"])
    fig.update_layout(title=title, font=FONT, height=420, margin={"t": 60}, legend={"title": {"text": "layer (first to last)"}})
    return set_template(fig)


def geometry_curves(geo: pd.DataFrame, layers: Sequence[str], panels: Sequence[str], *, title: str) -> go.Figure:
    """The chosen :data:`PANELS` over epochs, one line per layer coloured by depth (dark = first layer); a
    class measure solid, its subclass counterpart dashed. geo : api.layer_geometry's table. A panel whose
    columns are all NaN says so instead of drawing empty axes."""
    rows = -(-len(panels) // 2)
    fig = make_subplots(rows=rows, cols=2 if len(panels) > 1 else 1, shared_xaxes=True,
                        subplot_titles=[PANELS[p][0] for p in panels], vertical_spacing=0.22 / max(rows, 1) + 0.06)
    colours = dict(zip(layers, depth_colours(len(layers)), strict=True))
    for k, panel in enumerate(panels):
        r, c = divmod(k, 2)
        drawn = False
        for column in PANELS[panel][1]:
            level = "subclass" if column.endswith("_subclass") else "class"
            for layer in layers:
                part = geo[geo["layer"] == layer].sort_values("epoch")
                if column not in part or part[column].isna().all():
                    continue
                drawn = True
                fig.add_trace(go.Scatter(
                    x=part["epoch"], y=part[column], mode="lines+markers", name=layer, legendgroup=layer,
                    showlegend=k == 0 and level == "class", line={"color": colours[layer], "width": 2.5, "dash": DASH[level]},
                    marker={"size": 5}, hovertemplate=f"{layer}<br>{column}<br>epoch %{{x}}<br>%{{y:.3f}}<extra></extra>"),
                    row=r + 1, col=c + 1)
        if panel in LOG_PANELS and drawn:
            fig.update_yaxes(type="log", dtick=1, row=r + 1, col=c + 1)  # ticks at powers of ten only
        if not drawn:
            fig.add_annotation(text="not computed for this run", showarrow=False, font={"size": 14},
                               xref=f"x{k + 1 if k else ''} domain", yref=f"y{k + 1 if k else ''} domain", x=0.5, y=0.5)
    fig.update_xaxes(title_text="epoch")
    integer_epochs(fig, geo["epoch"] if len(geo) else pd.Series([1]))
    fig.update_layout(title=title, font=FONT, height=220 + 340 * rows, margin={"t": 90},
                      legend={"title": {"text": "layer"}, "orientation": "h",
                              "y": -0.12 / rows, "x": 0, "yanchor": "top"})
    fig.update_annotations(font_size=14)
    return set_template(fig)
