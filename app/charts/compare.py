"""Pure figure builders for the Compare page: DataFrame in, Plotly figure out (SCIENCE.md 6.1 and 6.4).

Every figure gives one colour per run (or per value of the chosen hyperparameter), the same in
every panel, with a single legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.base import category_colours, style
from backend.api import MEASURE_CONTEXT

# Short names for axis titles; the Kendall table keeps the raw column names.
MEASURE_LABELS = {
    "c0": "c0 · interpolation drop ratio",
    "c1": "c1 · subclass selectivity",
    "c2": "c2 · subclass silhouette",
    "c3": "c3 · variance ratio",
    "c4": "c4 · distance-spread ratio",
    "1/σ′": "1/σ′ · random-noise sharpness",
    "1/σ″": "1/σ″ · random-noise sharpness (kernels, batch stats)",
    "1/α′": "1/α′ · worst-case sharpness",
    "1/α″": "1/α″ · worst-case sharpness (kernels, batch stats)",
    "class_purity": "class purity",
    "subclass_purity": "subclass purity",
    "fragmentation": "fragmentation",
    "ari_subclass": "ARI (subclass)",
    "nmi_subclass": "NMI (subclass)",
    "wtm_fraction": "winner-take-most fraction",
}
NETWORK_MEASURES = ("c1", "c2", "c3", "c4")
PANEL_TITLE = {False: 15, True: 22}  # subplot title font size (normal, presentation)
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "cross", "x", "star", "hexagon")
# Columns of api.compare's runs table that are neither measures nor hyperparameters.
NOT_AXES = {"run_id", "test_accuracy", "epoch", *MEASURE_LABELS, *MEASURE_CONTEXT}


def label(measure: str) -> str:
    return MEASURE_LABELS.get(measure, measure)


def hyperparameter_columns(runs: pd.DataFrame) -> list[str]:
    """The columns of api.compare's runs table that are hyperparameter axes (config keys that differ)."""
    return [c for c in runs.columns if c not in NOT_AXES]


def _sorted_values(values: pd.Series) -> list[str]:
    """Distinct values as strings, in numeric order where they are numbers."""
    distinct = list(dict.fromkeys(values.tolist()))
    try:
        distinct.sort(key=float)
    except (TypeError, ValueError):
        distinct.sort(key=str)
    return [str(v) for v in distinct]


def _grid(n: int, columns: int) -> tuple[int, int]:
    cols = max(1, min(columns, n))
    return math.ceil(n / cols), cols


def measure_scatter(runs: pd.DataFrame, measures: Sequence[str], *, colour_by: str = "run_id", symbol_by: str | None = None,
                    columns: int = 2, present: bool = False) -> go.Figure:
    """One panel per measure: the measure at the run's last analysed epoch (x) against test accuracy in % (y).

    runs : api.compare's first table, one row per run with ``run_id``, ``test_accuracy`` (fraction),
    ``epoch``, one column per measure and one per hyperparameter axis.
    colour_by : the column whose values colour the points (``run_id``: one colour per run).
    symbol_by : a column whose values set the marker shape (e.g. ``data.name`` when runs mix data sets).
    """
    rows, cols = _grid(len(measures), columns)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[label(m) for m in measures], shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.16 if rows > 1 else 0.1)
    key = runs[colour_by].astype(str)
    colours = category_colours(_sorted_values(runs[colour_by]) if colour_by != "run_id" else runs["run_id"].tolist())
    name = "run" if colour_by == "run_id" else colour_by
    hover = ("<b>%{customdata[0]}</b><br>%{meta} = %{x:.3f} (epoch %{customdata[1]})"
             "<br>test accuracy = %{y:.1f} %<br>" + name + " = %{customdata[2]}"
             + (f"<br>{symbol_by} = %{{customdata[3]}}" if symbol_by else "") + "<extra></extra>")
    shapes = runs[symbol_by].astype(str) if symbol_by else pd.Series("", index=runs.index)
    symbols = symbol_legend(shapes)
    for i, m in enumerate(measures):
        r, c = divmod(i, cols)
        for value, colour in colours.items():
            part = runs[key == value]
            if part.empty:
                continue
            fig.add_trace(go.Scatter(
                x=part[m], y=part["test_accuracy"] * 100.0, mode="markers", name=value, legendgroup=value,
                showlegend=i == 0, meta=m, hovertemplate=hover,
                customdata=np.column_stack([part["run_id"], part["epoch"].astype("Int64").astype(str), key[part.index],
                                            shapes[part.index]]),
                marker={"size": 14 if present else 12, "color": colour, "line": {"width": 1, "color": "white"},
                        "symbol": [symbols[v] for v in shapes[part.index]]},
            ), row=r + 1, col=c + 1)
        fig.update_xaxes(title_text=f"{m} (last analysed epoch)", row=r + 1, col=c + 1)
    for r in range(rows):
        fig.update_yaxes(title_text="test accuracy (%)", row=r + 1, col=1)
    fig.update_layout(legend={"title": {"text": name}}, title="Measure vs test accuracy, one point per run")
    fig.update_annotations(font_size=PANEL_TITLE[present])  # the panel titles; style() sizes only the layout font
    # 340 a row in presentation mode: the first row with its x-axis title stays on a 720-pixel screen under the
    # page title and caption (420 pushed it past the fold).
    return style(fig, present=present, height=max(380, (340 if present else 330) * rows + 60))


def lr_drops(metrics: pd.DataFrame) -> list[int]:
    """Epochs whose learning rate is lower than the previous epoch's (metrics: epoch, split, lr)."""
    train = metrics[metrics["split"] == "train"].sort_values("epoch")
    lr = train["lr"].to_numpy(float)
    epochs = train["epoch"].to_numpy()
    return [int(e) for e, prev, now in zip(epochs[1:], lr[:-1], lr[1:], strict=True) if now < prev]


def measures_over_epochs(network: pd.DataFrame, metrics: pd.DataFrame, run_ids: Sequence[str], *,
                         measures: Sequence[str] = NETWORK_MEASURES, columns: int = 3,
                         present: bool = False) -> go.Figure:
    """Small multiples: each measure per snapshot epoch, then train and test accuracy per epoch; one line per run.

    network : the runs' network tables stacked, columns run_id, epoch, c1..c4.
    metrics : the runs' metrics stacked, columns run_id, epoch, split, accuracy, lr.
    Learning-rate drops are marked by dotted vertical lines in the run's colour.
    """
    panels = [*measures, "train accuracy (%)", "test accuracy (%)"]
    rows, cols = _grid(len(panels), columns)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[label(p) for p in panels], shared_xaxes="all",
                        horizontal_spacing=0.07, vertical_spacing=0.14)
    colours = category_colours(list(run_ids))
    for run in run_ids:
        colour = colours[run]
        net = network[network["run_id"] == run].sort_values("epoch")
        met = metrics[metrics["run_id"] == run].sort_values("epoch")
        for i, panel in enumerate(panels):
            r, c = divmod(i, cols)
            if panel in measures:
                x, y, fmt = net["epoch"], net[panel], ".3f"
            else:
                split = met[met["split"] == panel.split()[0]]
                x, y, fmt = split["epoch"], split["accuracy"] * 100.0, ".1f"
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers" if panel in measures else "lines", name=run, legendgroup=run,
                showlegend=i == 0, line={"color": colour, "width": 2.5}, marker={"size": 6},
                hovertemplate=f"<b>{run}</b><br>epoch %{{x}}<br>{panel} = %{{y:{fmt}}}<extra></extra>",
            ), row=r + 1, col=c + 1)
        for epoch in lr_drops(met) if not met.empty else []:
            fig.add_vline(x=epoch, line={"color": colour, "dash": "dot", "width": 1.5}, row="all", col="all")
    for c in range(cols):
        fig.update_xaxes(title_text="epoch", row=rows, col=c + 1)
    fig.update_layout(legend={"title": {"text": "run"}, "orientation": "h", "y": -0.12 if rows > 1 else -0.25},
                      title="Measures and accuracy over training")
    fig.update_annotations(font_size=PANEL_TITLE[present])
    return style(fig, present=present, height=(380 if present else 300) * rows + 120)


def kendall_columns(table: pd.DataFrame) -> list[str]:
    """Column order for api.compare's Kendall table: measure, runs, τ, τ-b, ψ per axis, total, its axis count."""
    psi = sorted(c for c in table.columns if c.startswith("psi["))
    head = [c for c in ("measure", "runs", "tau", "tau_b") if c in table.columns]
    return head + psi + [c for c in ("granulated_total", "total_axes") if c in table.columns]


def symbol_legend(values: pd.Series) -> dict[str, str]:
    """The marker shape :func:`measure_scatter` gives each value of its ``symbol_by`` column."""
    return {v: SYMBOLS[i % len(SYMBOLS)] for i, v in enumerate(_sorted_values(values.astype(str)))}


K_COEFFICIENTS = {"granulated_total": "granulated τ (total)", "tau": "τ (all pairs)", "tau_b": "τ-b (tie-aware)"}


def tau_vs_k(table: pd.DataFrame, *, coefficient: str = "granulated_total", c1_scale: float = 1.0,
             max_k: int | None = None, present: bool = False) -> go.Figure:
    """Kendall coefficient of c1 and c3 against k (SCIENCE.md 3.2 and 6.2; thesis Fig. 2.5).

    table : api.tau_over_k's output: measure ("c1" | "c3"), k, and the coefficient columns.
    c1_scale : c1's k is drawn at k x c1_scale (subclasses per class: the thesis's x5 on CIFAR-100
      superclasses), so both lines count the neurons involved. max_k : drop larger k (beyond the
      largest network's units every k gives the same mean).
    """
    fig = go.Figure()
    colours = category_colours(list(NETWORK_MEASURES))
    for measure in ("c1", "c3"):
        part = table[table["measure"] == measure].sort_values("k")
        if max_k is not None:
            part = part[part["k"] <= max_k]
        if part.empty or coefficient not in part or part[coefficient].isna().all():
            continue
        scale = c1_scale if measure == "c1" else 1.0
        fig.add_trace(go.Scatter(
            x=part["k"] * scale, y=part[coefficient], mode="lines+markers", name=label(measure),
            line={"color": colours[measure], "width": 3}, marker={"size": 9}, customdata=part["k"],
            hovertemplate=f"<b>{measure}</b><br>k = %{{customdata}}<br>{K_COEFFICIENTS.get(coefficient, coefficient)}"
                          " = %{y:.2f}<extra></extra>",
        ))
    fig.add_hline(y=0, line={"color": "#999999", "dash": "dot", "width": 1})
    x_title = "k, neurons in the top-k mean (log)" + (f"; c1 drawn at k × {c1_scale:g}" if c1_scale != 1 else "")
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= max(1.0, (max_k or 1000) * c1_scale)]
    fig.update_xaxes(type="log", title_text=x_title, tickvals=ticks, ticktext=[str(t) for t in ticks], minor={"showgrid": False})
    fig.update_yaxes(range=[-1.05, 1.05], title_text=K_COEFFICIENTS.get(coefficient, coefficient))
    fig.update_layout(title="Predictiveness against k", legend={"title": {"text": "measure"}})
    return style(fig, present=present, height=460 if present else 380)
