"""Pure figure builders for the Mechanisms page (SCIENCE.md 3.3, 3.4; section 6 items 6 and 8). No Streamlit.

Inputs are the frames of ``api.mechanisms`` (one layer's training dynamics) and ``api.rotation_runs``.
Classes keep the colour of ``charts.category_colours`` over the run's class names; layers are coloured
by depth with viridis (dark = first layer), as on the Layers page. Every trace is SVG (no WebGL).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.base import FONT, OKABE_ITO, category_colours
from app.charts.layers import depth_colours


def _name(names: Sequence[str], i: int) -> str:
    return names[i] if 0 <= i < len(names) else str(i)


def unit_curves(curves: pd.DataFrame, unit: int, *, class_names: Sequence[str], cluster_names: Sequence[str],
                title: str = "") -> go.Figure:
    """The winner-take-most picture: each cluster's mean pre-activation of ``unit`` against iteration,
    one line per cluster, coloured by its class (SCIENCE.md 3.4, Fig. 3.2).

    curves : columns step, unit, cluster, target, mean (``api.mechanisms(...)["curves"]``).
    """
    colours = category_colours(list(class_names))
    rows = curves[curves["unit"] == unit]
    fig = go.Figure()
    seen: set[int] = set()
    for cluster, group in rows.groupby("cluster", sort=True):
        target = int(group["target"].iloc[0])
        cname = _name(class_names, target)
        group = group.sort_values("step")
        fig.add_trace(go.Scatter(
            x=group["step"], y=group["mean"], mode="lines", name=cname, legendgroup=cname, showlegend=target not in seen,
            line={"color": colours.get(cname, OKABE_ITO[target % len(OKABE_ITO)]), "width": 2},
            hovertemplate=f"cluster {_name(cluster_names, int(cluster))} ({cname})<br>iteration %{{x}}"
                          "<br>mean pre-activation %{y:.3f}<extra></extra>"))
        seen.add(target)
    fig.add_hline(y=0, line={"color": "#777777", "width": 1, "dash": "dot"})
    fig.update_layout(title=title or f"Unit {unit}: cluster-mean pre-activation", font=FONT, template="plotly_white",
                      height=420, xaxis_title="iteration (optimizer steps)", yaxis_title="mean pre-activation",
                      legend={"title": {"text": "class of the cluster"}})
    return fig


def final_histograms(final: pd.DataFrame, unit: int, *, class_names: Sequence[str], title: str = "") -> go.Figure:
    """Per-class histogram of ``unit``'s pre-activations at the last recording (SCIENCE.md 3.4, Fig. 3.3).

    final : columns unit, pre, target.
    """
    colours = category_colours(list(class_names))
    rows = final[final["unit"] == unit]
    fig = go.Figure()
    lo, hi = (float(rows["pre"].min()), float(rows["pre"].max())) if len(rows) else (0.0, 1.0)
    size = (hi - lo) / 40 or 1.0
    for target, group in rows.groupby("target", sort=True):
        cname = _name(class_names, int(target))
        fig.add_trace(go.Histogram(x=group["pre"], name=cname, opacity=0.65, xbins={"start": lo, "end": hi + size, "size": size},
                                   marker={"color": colours.get(cname, OKABE_ITO[0])}))
    fig.update_layout(title=title or f"Unit {unit}: final pre-activations per class", font=FONT, template="plotly_white",
                      height=420, barmode="overlay", xaxis_title="pre-activation", yaxis_title="probe samples",
                      legend={"title": {"text": "class"}})
    return fig


def sign_histograms(hists: dict[str, pd.DataFrame], *, title: str = "") -> go.Figure:
    """Histogram of average derivative signs s-bar over (sample, unit), one panel per layer (SCIENCE.md 3.4, 6.7).

    hists : layer -> frame with columns left, right, fraction (``backend.analysis.dynamics.sign_histogram``),
    in forward order.
    """
    layers = list(hists)
    cols = min(3, max(len(layers), 1))
    rows = max(1, math.ceil(len(layers) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=layers or [""], shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.2)
    colours = depth_colours(len(layers))
    for k, layer in enumerate(layers):
        h = hists[layer]
        fig.add_trace(go.Bar(x=(h["left"] + h["right"]) / 2, y=h["fraction"] * 100, width=h["right"] - h["left"],
                             marker={"color": colours[k], "line": {"width": 0}}, name=layer, showlegend=False,
                             hovertemplate="s̄ %{x:.2f}<br>%{y:.1f} % of (sample, unit) pairs<extra>" + layer + "</extra>"),
                      row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(title_text="average derivative sign s̄", range=[-1.05, 1.05], row=rows)
    fig.update_yaxes(title_text="% of (sample, unit)", col=1)
    fig.update_layout(title=title or "Average derivative sign per layer", font=FONT, template="plotly_white",
                      height=300 + 220 * rows, bargap=0, margin={"t": 90})
    fig.update_annotations(font_size=14)
    return fig


def loss_share_chart(share: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Easy and difficult examples' share of the probe loss against iteration (SynthClust; SCIENCE.md 3.4).

    share : columns step, difficult, easy (fractions).
    """
    fig = go.Figure()
    for k, group in enumerate(("easy", "difficult")):
        fig.add_trace(go.Scatter(x=share["step"], y=share[group] * 100, mode="lines+markers", name=group,
                                 line={"color": OKABE_ITO[k], "width": 3, "dash": "solid" if k == 0 else "dash"},
                                 marker={"size": 5}))
    fig.add_hline(y=50, line={"color": "#777777", "width": 1, "dash": "dot"})
    fig.update_layout(title=title or "Share of the loss: easy vs difficult examples", font=FONT, template="plotly_white",
                      height=380, xaxis_title="iteration (optimizer steps)", yaxis_title="share of the probe loss (%)",
                      yaxis_range=[0, 100])
    return fig


def wtm_chart(frames: dict[str, pd.DataFrame], *, title: str = "") -> go.Figure:
    """Winner-take-most index per layer and epoch (SCIENCE.md 3.4 [P]): the median WTM index of the recorded
    units (log scale) and the fraction of them with WTM > 1, one line per layer.

    frames : layer -> frame with columns step, epoch, fraction, median (``api.mechanisms(...)["wtm_fraction"]``),
    in forward order. The last recording of each epoch stands for that epoch.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=["median WTM index of the recorded units", "units with WTM > 1 (%)"])
    colours = depth_colours(len(frames))
    for colour, (layer, frame) in zip(colours, frames.items(), strict=True):
        per_epoch = frame.sort_values("step").groupby("epoch", as_index=False).last()
        for col, (value, scale) in enumerate((("median", 1.0), ("fraction", 100.0)), start=1):
            fig.add_trace(go.Scatter(x=per_epoch["epoch"], y=per_epoch[value] * scale, mode="lines+markers", name=layer,
                                     line={"color": colour, "width": 3}, marker={"size": 5}, legendgroup=layer,
                                     showlegend=col == 1), row=1, col=col)
    fig.add_hline(y=1, line={"color": "#777777", "width": 1, "dash": "dot"}, row=1, col=1)
    fig.update_yaxes(type="log", title_text="WTM index (log)", row=1, col=1)
    fig.update_yaxes(range=[0, 101], title_text="% of units", row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title or "Winner-take-most index per layer and epoch", font=FONT, template="plotly_white",
                      height=420, legend={"title": {"text": "layer"}}, margin={"t": 100})
    fig.update_annotations(font_size=14)
    return fig


def _room_for_title(fig: go.Figure, shrink: float) -> None:
    """Lower every panel and its title so two-line panel titles clear the figure title whatever the margins."""
    for name in [k for k in fig.layout if k.startswith("yaxis")]:
        lo, hi = fig.layout[name].domain
        fig.layout[name].domain = [lo * shrink, hi * shrink]
    for ann in fig.layout.annotations:
        ann.y = ann.y * shrink


def rotation_small_multiples(rot: pd.DataFrame, *, title: str = "", cols: int = 4) -> go.Figure:
    """Layer-rotation curves as small multiples, one panel per run, titled with its test accuracy and
    the gap to the best run (SCIENCE.md 3.3, 6.8). y fixed to [0, 1] unless a layer rotates further.

    rot : columns run_id, test_accuracy (fraction or NaN), optimizer, lr, epoch, layer, depth, rotation
    (``api.rotation_runs``); panels follow the order of first appearance.
    """
    runs = list(dict.fromkeys(rot["run_id"]))
    cols = max(1, min(cols, len(runs)))
    nrows = max(1, math.ceil(len(runs) / cols))
    acc = rot.drop_duplicates("run_id").set_index("run_id")["test_accuracy"].astype(float)
    best = acc.max() if acc.notna().any() else np.nan
    titles = []
    for run in runs:
        a = acc.get(run, np.nan)
        text = f"{run}<br>test {a:.2%}" if np.isfinite(a) else f"{run}<br>test accuracy n/a"
        if np.isfinite(a) and np.isfinite(best) and len(runs) > 1:
            text += f" (Δ {100 * (a - best):+.2f} pts)"
        titles.append(text)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles or [""], shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.22 if nrows > 1 else 0.1)
    top = max(1.0, float(rot["rotation"].max()) if len(rot) else 1.0)
    for k, run in enumerate(runs):
        r = rot[rot["run_id"] == run]
        kernels = r.sort_values("depth").drop_duplicates("layer")["layer"].tolist()
        for kernel, colour in zip(kernels, depth_colours(len(kernels)), strict=True):
            rows = r[r["layer"] == kernel].sort_values("epoch")
            fig.add_trace(go.Scatter(x=rows["epoch"], y=rows["rotation"], mode="lines+markers", name=kernel,
                                     line={"color": colour, "width": 2.5}, marker={"size": 4}, showlegend=k == 0,
                                     legendgroup=kernel,
                                     hovertemplate=f"{run}<br>{kernel}<br>epoch %{{x}}<br>rotation %{{y:.3f}}<extra></extra>"),
                          row=k // cols + 1, col=k % cols + 1)
    _room_for_title(fig, 0.9 if nrows == 1 else 0.94)
    fig.update_yaxes(range=[0, 1.0 if top <= 1.0 else min(2.0, top * 1.05)])
    fig.update_yaxes(title_text="rotation (1 - cos)", col=1)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title={"text": title or "Layer rotation across runs", "y": 0.99, "yanchor": "top"}, font=FONT,
                      template="plotly_white", height=280 + 280 * nrows, margin={"t": 130},
                      legend={"title": {"text": "kernel (dark = first)"}})
    fig.update_annotations(font_size=13)
    return fig
