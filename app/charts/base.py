"""Pure figure builders: DataFrame in, Plotly figure out. No Streamlit here.

Colours come from the Okabe-Ito palette (colour-blind safe); fonts are sized for projectors. And the one rule
behind the app's sample labels (:func:`classes_are_superclasses`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# Paul Tol's "muted" scheme (9 colour-blind-safe colours) plus black, for up to 10 categories.
TOL_MUTED = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
             "#000000"]
# Beyond 10 categories no palette stays colour-blind safe; Glasbey-like distinct colours are the fallback.
MANY = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
        "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"]
NOISE_COLOUR = "#BBBBBB"
SPLIT_COLOURS = {"train": OKABE_ITO[0], "test": OKABE_ITO[1]}
SPLIT_DASH = {"train": "solid", "test": "dash"}
INK = "#1a1a1a"  # dark text: tick, legend and axis labels read from the back of a room
FONT = {"size": 16, "color": INK}  # at least 14 px on screen (tests/test_e2e_presentation.py reads the SVG text)
PRESENT_FONT = {"size": 22, "color": INK}  # at least 18 px in presentation mode
SEQUENTIAL = "Viridis"  # perceptually uniform, colour-blind safe, prints in grey
# The house template, looked up once: ``template="plotly_white"`` makes Plotly build and validate the
# template's ~150 properties again for every figure (~30 ms, the largest part of an epoch switch on the
# Embeddings page; benchmarks/dashboard.py).
HOUSE_TEMPLATE = pio.templates["plotly_white"]


def category_colours(names: list[str]) -> dict[str, str]:
    """One colour per category, fixed by the category's position in the run's label list, so a class
    keeps its colour in every figure. Okabe-Ito up to 8, Tol muted up to 10, then a wide palette."""
    palette = OKABE_ITO if len(names) <= 8 else TOL_MUTED if len(names) <= 10 else MANY
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def house_layout(*, present: bool = False, height: int | None = None, title: str = "") -> dict:
    """The layout properties :func:`style` sets (without the template), in Plotly's canonical form. A ``title`` of
    several lines (``<br>``) gets their room above the plot."""
    size = 26 if present else 18
    top = 60 + round(str(title).count("<br>") * size * 1.3)
    return {"font": PRESENT_FONT if present else FONT, "margin": {"l": 60, "r": 20, "t": top, "b": 50},
            "title": {"font": {"size": size}}, **({"height": height} if height else {})}


def style(fig: go.Figure, *, present: bool = False, height: int | None = None) -> go.Figure:
    """House layout: white template, readable fonts (larger in presentation mode), room for titles."""
    set_template(fig)
    fig.update_layout(house_layout(present=present, height=height, title=fig.layout.title.text or ""))
    return fig


def legend_below(fig: go.Figure) -> go.Figure:
    """``fig`` with its legend in rows under the plot instead of beside it: two views side by side keep their
    width for the points (a legend beside each took about a third of it, and the equal-aspect axes then shrank
    the plot in height too). At most a quarter of the figure's height; a longer legend scrolls. A new figure:
    ``fig`` may be a cached one."""
    spec = fig.to_dict()
    layout = spec["layout"]
    legend = layout.get("legend", {})
    layout["legend"] = legend | {"orientation": "h", "x": 0.0, "xanchor": "left", "yref": "container",
                                 "y": 0.0, "yanchor": "bottom", "maxheight": 0.25,
                                 # the title above the entries: beside them it took their width, and rows ran off the plot
                                 "title": legend.get("title", {}) | {"side": "top"}}
    frames = {"frames": spec["frames"]} if spec.get("frames") else {}
    return go.Figure({"data": spec["data"], "layout": layout, **frames}, _validate=False)  # the spec is valid already


def set_template(fig: go.Figure) -> go.Figure:
    """Give ``fig`` the house template without validating it again.

    The registered template is valid already; Plotly itself skips the validation the same way when it
    applies its default template (``BaseFigure._initialize_layout_template``). Where a Plotly version lacks
    the switch, the assignment simply validates as usual.
    """
    layout = fig.layout
    layout._validate = False
    try:
        layout.template = HOUSE_TEMPLATE
    finally:
        layout._validate = getattr(fig, "_validate", True)
    return fig


def learning_curves(metrics: pd.DataFrame, *, metric: str, title: str = "") -> go.Figure:
    """Train and test ``metric`` ('accuracy' or 'loss') against epoch.

    metrics : DataFrame with columns epoch, split, loss, accuracy (one row per epoch and split).
    """
    fig = go.Figure()
    for split in ("train", "test"):
        rows = metrics[metrics["split"] == split].sort_values("epoch")
        values = rows[metric] * (100.0 if metric == "accuracy" else 1.0)
        fig.add_trace(go.Scatter(
            x=rows["epoch"], y=values, mode="lines+markers", name=split,
            line={"color": SPLIT_COLOURS[split], "dash": SPLIT_DASH[split], "width": 3}, marker={"size": 6},
        ))
    label = "accuracy (%)" if metric == "accuracy" else "cross-entropy loss (nats)"
    fig.update_layout(
        title=title or label, font=FONT, height=340, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        xaxis_title="epoch", yaxis_title=label, legend={"orientation": "h", "y": -0.25},
    )
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 101])
    return set_template(fig)


def accuracy_overview(metrics: pd.DataFrame, run_ids: list[str], *, present: bool = False) -> go.Figure:
    """Test accuracy against epoch, one line per run: the Runs page's first figure, so every run's learning
    curve is on the screen at once (each run's card below has its train and test curves).

    metrics : the runs' metrics stacked, columns run_id, epoch, split, accuracy (fraction).
    """
    fig = go.Figure()
    colours = category_colours(list(run_ids))
    test = metrics[metrics["split"] == "test"]
    for run in run_ids:
        rows = test[test["run_id"] == run].sort_values("epoch")
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(
            x=rows["epoch"], y=rows["accuracy"] * 100.0, mode="lines+markers", name=run,
            line={"color": colours[run], "width": 3}, marker={"size": 5},
            hovertemplate=f"<b>{run}</b><br>epoch %{{x}}<br>test accuracy %{{y:.1f}} %<extra></extra>",
        ))
    fig.update_layout(title="Test accuracy of every run over training", xaxis_title="epoch",
                      yaxis_title="test accuracy (%)", legend={"title": {"text": "run"}})
    return style(fig, present=present, height=380 if present else 300)  # 380: five runs' legend entries at 22 px


def classes_are_superclasses(target: object, *, has_superclasses: bool = True) -> bool:
    """Whether a run's classes are the samples' superclasses, its fine labels then being hidden subclasses
    (SCIENCE.md 2, "Hierarchical labels"); otherwise its classes are the fine labels.

    target : what the run was trained on, run.json ``dataset.target`` ("label" or "superclass").
    has_superclasses : the data give every sample a superclass (a run trained on superclasses has them).
    The one rule behind the app's label tables (charts.embeddings.label_samples, charts.neurons.sample_labels,
    the Mechanisms page's class names); backend.analysis.labels.probe_labels applies it to the analysis.
    """
    return target == "superclass" and has_superclasses


def stratified_sample(df: pd.DataFrame, *, max_points: int, by: str, seed: int = 0) -> pd.DataFrame:
    """At most ``max_points`` rows, the same fraction from each ``by`` group (all rows if fewer)."""
    if len(df) <= max_points:
        return df
    # on row positions (a pandas sample per group took 0.4 s at 10^6 rows of the page's view, every column taken
    # group by group); seeded and positional, so the same rows are drawn at every epoch of a layer
    codes = pd.factorize(df[by], use_na_sentinel=False)[0]
    sizes = np.bincount(codes)
    want = np.maximum(1, np.rint(sizes * (max_points / len(df)))).astype(np.int64)
    order = np.argsort(codes.astype(np.int16) if len(sizes) < 2**15 else codes, kind="stable")  # radix sort
    rng, ends = np.random.default_rng(seed), np.cumsum(sizes)
    rows = [rng.choice(order[e - n:e], w, replace=False) for n, e, w in zip(sizes, ends, want, strict=True)]
    return df.iloc[np.sort(np.concatenate(rows))]
