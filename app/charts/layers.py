"""Pure figure builders for the Layers page: DataFrame in, Plotly figure out. No Streamlit.

Scores come from the ``layers``, ``network`` and ``rotation`` analysis tables (docs/store.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from app.charts.base import FONT, OKABE_ITO, SEQUENTIAL, SPLIT_COLOURS, SPLIT_DASH, set_template


@dataclass(frozen=True)
class Score:
    label: str
    unit: str  # what the number measures and its range, for the colour bar
    help: str
    zrange: tuple[float, float] | None = None  # fixed colour range for bounded fractions
    higher_is_better: bool = True


SCORES: dict[str, Score] = {
    "class_purity": Score("class purity", "fraction, 0-1", "Share of clustered samples in their cluster's majority "
                          "class (HDBSCAN on a 10-D UMAP; SCIENCE.md 3.5).", (0.0, 1.0)),
    "subclass_purity": Score("subclass purity", "fraction, 0-1", "Majority-subclass share inside each cluster's "
                             "majority superclass; compare with chance (SCIENCE.md 3.5).", (0.0, 1.0)),
    "fragmentation": Score("fragmentation", "clusters per class", "Mean number of >= 60 %-pure clusters per class; "
                           "above 1 means classes split into intraclass clusters."),
    "noise_fraction": Score("noise fraction", "fraction, 0-1", "Share of samples HDBSCAN leaves unclustered.",
                            (0.0, 1.0), higher_is_better=False),
    "c1": Score("c1 (layer)", "selectivity, std. units", "Subclass selectivity of the layer's top-5 units "
                "(SCIENCE.md 3.1, layer-wise variant)."),
    "c2": Score("c2 (layer)", "silhouette, -1 to 1", "Cosine silhouette of subclasses inside each superclass."),
    "c3": Score("c3 (layer)", "std. ratio, >= 0", "Within-class / whole-data standard deviation of the top-5 units."),
    "c4": Score("c4 (layer)", "spread ratio, >= 0", "Spread of pairwise distances within a class / over all data."),
    "wtm_fraction": Score("WTM fraction", "fraction, 0-1", "Share of units whose winner-take-most index exceeds 1 "
                          "(SCIENCE.md 3.4, proposed).", (0.0, 1.0)),
    "trust_umap": Score("UMAP trustworthiness", "0-1, k = 10", "How well the 2-D UMAP keeps each sample's neighbours."),
}


def layer_order(layers: pd.DataFrame) -> list[str]:
    """Layer names in forward (depth) order. layers : columns layer, depth."""
    return layers.sort_values(["depth", "layer"]).drop_duplicates("layer")["layer"].tolist()


def best_cell(layers: pd.DataFrame, score: str) -> tuple[str, int] | None:
    """The (layer, epoch) with the best ``score`` (lowest for scores where lower is better)."""
    rows = layers.dropna(subset=[score])
    if rows.empty:
        return None
    pick = rows[score].idxmax() if SCORES[score].higher_is_better else rows[score].idxmin()
    return str(rows.at[pick, "layer"]), int(rows.at[pick, "epoch"])


def score_heatmap(layers: pd.DataFrame, score: str, *, title: str = "") -> go.Figure:
    """Layer x epoch heatmap of one score of the ``layers`` table, first layer on top.

    layers : one row per (layer, epoch) with columns layer, epoch, depth and ``score``.
    A transparent marker sits on every cell, so a click selects the cell (Streamlit does not
    report clicks on heatmap traces); its customdata is [layer, epoch, value]. The clicked cell
    is tinted orange.
    """
    meta = SCORES[score]
    order = layer_order(layers)
    epochs = sorted(int(e) for e in layers["epoch"].unique())
    grid = layers.pivot_table(index="layer", columns="epoch", values=score, aggfunc="first").reindex(
        index=order, columns=epochs)
    xs = [str(e) for e in epochs]
    z = grid.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(
        x=xs, y=order, z=z, colorscale=SEQUENTIAL, hoverinfo="skip",
        zmin=meta.zrange[0] if meta.zrange else None, zmax=meta.zrange[1] if meta.zrange else None,
        colorbar={"title": {"text": f"{meta.label}<br>({meta.unit})", "side": "right"}},
        texttemplate="%{z:.2f}" if z.size <= 150 else None, textfont={"size": 12},
    ))
    cx = [x for _ in order for x in xs]
    cy = [layer for layer in order for _ in xs]
    fig.add_trace(go.Scatter(
        x=cx, y=cy, mode="markers", showlegend=False, name="cells",
        customdata=[[layer, int(x), float(v)] for layer, x, v in zip(cy, cx, z.ravel(), strict=True)],
        marker={"size": 30, "color": "rgba(0,0,0,0)", "symbol": "square"},
        selected={"marker": {"color": "rgba(213,94,0,0.55)", "opacity": 1}}, unselected={"marker": {"opacity": 0}},
        hovertemplate="layer %{y}<br>epoch %{x}<br>" + meta.label + " %{customdata[2]:.3f}<extra></extra>",
    ))
    fig.update_xaxes(title="epoch", type="category", categoryorder="array", categoryarray=xs)
    fig.update_yaxes(title="layer (forward order)", type="category", categoryorder="array", categoryarray=order,
                     autorange="reversed")
    fig.update_layout(title=title or f"{meta.label} per layer and epoch", font=FONT,
                      height=max(320, 120 + 48 * len(order)), hoverdistance=-1, margin={"t": 60})
    return set_template(fig)


def integer_epochs(fig: go.Figure, epochs: pd.Series, **where: object) -> None:
    """Epoch ticks on whole numbers only (plotly would label 0.5 on a short run)."""
    last = int(epochs.max()) if len(epochs) else 1
    fig.update_xaxes(tick0=0, dtick=max(1, -(-last // 10)), **where)


def depth_colours(n: int) -> list[str]:
    """Viridis by depth: dark for the first layer, yellow for the last (SCIENCE.md 3.3)."""
    return sample_colorscale(SEQUENTIAL, [i / max(n - 1, 1) for i in range(n)])


def _lr_drops(fig: go.Figure, lr_steps: Sequence[int], **where: object) -> None:
    for k, step in enumerate(sorted(lr_steps)):
        label = {"annotation_text": "lr drop", "annotation_position": "top left"} if k == 0 else {}
        fig.add_vline(x=step, line={"color": "#777777", "dash": "dash", "width": 1.5}, **label, **where)


def rotation_and_accuracy(rotation: pd.DataFrame, metrics: pd.DataFrame, *, lr_steps: Sequence[int] = (),
                          title: str = "") -> go.Figure:
    """Layer-rotation curves over accuracy curves, on one shared epoch axis (SCIENCE.md 3.3, 6.8).

    rotation : columns epoch, layer, depth, rotation (1 - cos(w0, wt)).
    metrics : columns epoch, split, accuracy (fraction). The rotation axis is fixed to [0, 1].
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08)
    kernels = rotation.sort_values("depth").drop_duplicates("layer")["layer"].tolist()
    colours = depth_colours(len(kernels))
    many = len(kernels) > 12
    for kernel, colour in zip(kernels, colours, strict=True):
        rows = rotation[rotation["layer"] == kernel].sort_values("epoch")
        fig.add_trace(go.Scatter(x=rows["epoch"], y=rows["rotation"], mode="lines", name=kernel,
                                 line={"color": colour, "width": 2.5}, legendgroup="rotation",
                                 legendgrouptitle_text="kernel (first to last)", showlegend=not many,
                                 hovertemplate=kernel + "<br>epoch %{x}<br>rotation %{y:.3f}<extra></extra>"),
                      row=1, col=1)
    if many:  # a colour bar reads better than dozens of legend entries
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker={"colorscale": SEQUENTIAL, "cmin": 0, "cmax": len(kernels) - 1,
                                         "color": [0], "showscale": True,
                                         "colorbar": {"title": {"text": "kernel depth"}, "len": 0.55, "y": 0.75}}),
                      row=1, col=1)
    for split in ("train", "test"):
        rows = metrics[metrics["split"] == split].sort_values("epoch")
        fig.add_trace(go.Scatter(x=rows["epoch"], y=rows["accuracy"] * 100.0, mode="lines+markers", name=split,
                                 line={"color": SPLIT_COLOURS[split], "dash": SPLIT_DASH[split], "width": 3},
                                 marker={"size": 5}, legendgroup="accuracy", legendgrouptitle_text="accuracy"),
                      row=2, col=1)
    _lr_drops(fig, lr_steps, row="all", col=1)
    fig.update_yaxes(title_text="rotation (1 - cos)", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 101], row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    integer_epochs(fig, pd.concat([rotation["epoch"], metrics["epoch"]]))
    fig.update_layout(title=title or "Layer rotation and accuracy", font=FONT, height=620,
                      margin={"t": 60})
    return set_template(fig)


NETWORK_MEASURES = {
    "c1": "c1 subclass selectivity (std. units)",
    "c2": "c2 subclass silhouette (-1 to 1)",
    "c3": "c3 variance ratio (std. ratio)",
    "c4": "c4 distance-spread ratio",
}


NOISE_FLOOR = "noise floor (subclasses shuffled within superclasses)"
NOISE_FLOOR_COLOUR = "#555555"  # dark grey: readable on white, apart from the Okabe-Ito measure colours


def network_measures(network: pd.DataFrame, *, lr_steps: Sequence[int] = (), title: str = "") -> go.Figure:
    """Network-level c1..c4 against epoch, one panel each, with lr-drop markers (SCIENCE.md 6.4).

    network : columns epoch, c1, c2, c3, c4 (the ``network`` analysis table); where it has
    c1_shuffled / c2_shuffled values, their noise floor (subclasses shuffled within superclasses,
    SCIENCE.md 3.1 "Invariances") is drawn dashed in grey in the c1 and c2 panels.
    """
    net = network.sort_values("epoch")
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, subplot_titles=list(NETWORK_MEASURES.values()),
                        vertical_spacing=0.16, horizontal_spacing=0.1)
    for k, measure in enumerate(NETWORK_MEASURES):
        row, col = divmod(k, 2)
        fig.add_trace(go.Scatter(x=net["epoch"], y=net[measure], mode="lines+markers", name=measure,
                                 line={"color": OKABE_ITO[k], "width": 3}, marker={"size": 6}, showlegend=False),
                      row=row + 1, col=col + 1)
        floor = f"{measure}_shuffled"
        if floor in net and net[floor].notna().any():
            fig.add_trace(go.Scatter(x=net["epoch"], y=net[floor], mode="lines+markers", name=NOISE_FLOOR,
                                     legendgroup="floor", showlegend=measure == "c1",
                                     line={"color": NOISE_FLOOR_COLOUR, "width": 2, "dash": "dash"}, marker={"size": 5},
                                     hovertemplate=f"epoch %{{x}}<br>{measure} noise floor = %{{y:.3f}}<extra></extra>"),
                          row=row + 1, col=col + 1)
        fig.update_yaxes(title_text=measure, row=row + 1, col=col + 1)
        _lr_drops(fig, lr_steps, row=row + 1, col=col + 1)
    fig.update_xaxes(title_text="epoch", row=2)
    integer_epochs(fig, net["epoch"])
    fig.update_layout(title=title or "Network-level measures over training", font=FONT, height=560, margin={"t": 90},
                      legend={"orientation": "h", "y": -0.15, "x": 0})
    fig.update_annotations(font_size=14)
    return set_template(fig)
