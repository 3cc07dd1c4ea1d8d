"""Pure figure builders for the Embeddings page: DataFrame in, Plotly figure out.

Scatter plots use WebGL (``Scattergl``): one trace per category, so legends toggle classes and a
class keeps its colour (``charts.category_colours``) in every figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.charts import NOISE_COLOUR, SEQUENTIAL, style

AXES = {"umap": ("umap_x", "umap_y", "UMAP 1 (a.u.)", "UMAP 2 (a.u.)"),
        "pca": ("pca_x", "pca_y", "PC 1 (a.u.)", "PC 2 (a.u.)")}
HOVER = ("sample %{customdata[0]} · %{customdata[1]}<br>class %{customdata[2]} · subclass %{customdata[3]}"
         "<br>cluster %{customdata[4]}<extra></extra>")


def stratified_sample(df: pd.DataFrame, *, max_points: int, by: str, seed: int = 0) -> pd.DataFrame:
    """At most ``max_points`` rows, the same fraction from each ``by`` group (all rows if fewer)."""
    if len(df) <= max_points:
        return df
    frac = max_points / len(df)
    parts = [g.sample(n=max(1, int(round(len(g) * frac))), random_state=seed) for _, g in df.groupby(by, sort=False)]
    return pd.concat(parts).sort_index()


def _custom(df: pd.DataFrame) -> np.ndarray:
    return np.column_stack([df["sample_id"], df["split"], df["class_name"], df["subclass_name"], df["cluster_name"]])


def embedding_scatter(df: pd.DataFrame, *, projection: str, colour: str, colours: dict[str, str] | None = None,
                      highlight: set[int] | None = None, title: str = "", present: bool = False,
                      colour_label: str = "") -> go.Figure:
    """2-D embedding coloured by a categorical column (``colours`` maps its values) or a numeric one.

    df : one row per point with sample_id, split, class_name, subclass_name, cluster_name, the
    projection's x/y columns and ``colour``. ``highlight``: sample ids drawn opaque, others faded.
    """
    x, y, xt, yt = AXES[projection]
    fig = go.Figure()
    size = 9 if present else 6
    faded = (lambda d: np.where(d["sample_id"].isin(highlight), 0.95, 0.12)) if highlight else (lambda d: 0.8)
    if colours is None:  # numeric colouring, e.g. a neuron's activation
        fig.add_trace(go.Scattergl(
            x=df[x], y=df[y], mode="markers", customdata=_custom(df), hovertemplate=HOVER, showlegend=False,
            marker={"size": size, "color": df[colour], "colorscale": SEQUENTIAL, "opacity": faded(df),
                    "colorbar": {"title": {"text": colour_label or colour}}},
        ))
    else:
        for name, colour_hex in colours.items():
            part = df[df[colour] == name]
            if part.empty:
                continue
            fig.add_trace(go.Scattergl(
                x=part[x], y=part[y], mode="markers", name=str(name), customdata=_custom(part), hovertemplate=HOVER,
                marker={"size": size, "color": colour_hex, "opacity": faded(part), "line": {"width": 0}},
            ))
    fig.update_layout(title=title, xaxis_title=xt, yaxis_title=yt, legend={"itemsizing": "constant"},
                      dragmode="lasso", uirevision=f"{projection}-{colour}")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return style(fig, present=present, height=640 if present else 560)


def cluster_colours(names: list[str], palette: list[str]) -> dict[str, str]:
    """Cluster names ("noise" first, grey) to colours."""
    out = {"noise": NOISE_COLOUR} if "noise" in names else {}
    real = [n for n in names if n != "noise"]
    out |= {n: palette[i % len(palette)] for i, n in enumerate(real)}
    return out


def embedding_animation(frames: pd.DataFrame, *, projection: str, colour: str, colours: dict[str, str],
                        title: str = "", present: bool = False) -> go.Figure:
    """The aligned layouts of one layer across epochs, with a play button and an epoch slider.

    frames : the rows of every epoch (column ``epoch``), same columns as for :func:`embedding_scatter`.
    One trace per category; each frame updates their x/y, so points move rather than blink.
    """
    x, y, xt, yt = AXES[projection]
    epochs = sorted(frames["epoch"].unique())

    def traces(epoch: int) -> list[go.Scattergl]:
        part = frames[frames["epoch"] == epoch]
        return [go.Scattergl(x=part.loc[part[colour] == n, x], y=part.loc[part[colour] == n, y], mode="markers",
                             name=str(n), marker={"size": 6, "color": c, "opacity": 0.8},
                             customdata=_custom(part[part[colour] == n]), hovertemplate=HOVER)
                for n, c in colours.items()]

    fig = go.Figure(data=traces(epochs[0]), frames=[go.Frame(data=traces(e), name=str(e)) for e in epochs])
    steps = [{"label": str(e), "method": "animate",
              "args": [[str(e)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]} for e in epochs]
    fig.update_layout(
        title=title, xaxis_title=xt, yaxis_title=yt,
        xaxis={"range": _range(frames[x])}, yaxis={"range": _range(frames[y])},
        updatemenus=[{"type": "buttons", "x": 0, "y": -0.12, "xanchor": "left", "showactive": False, "buttons": [
            {"label": "▶ play", "method": "animate",
             "args": [None, {"frame": {"duration": 700, "redraw": True}, "fromcurrent": True,
                             "transition": {"duration": 300}}]},
            {"label": "❚❚ pause", "method": "animate",
             "args": [[None], {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}]},
        ]}],
        sliders=[{"active": 0, "steps": steps, "x": 0.15, "len": 0.85, "y": -0.05,
                  "currentvalue": {"prefix": "epoch "}}],
    )
    return style(fig, present=present, height=680)


def _range(values: pd.Series) -> list[float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def composition(selected: pd.DataFrame) -> pd.DataFrame:
    """Class / subclass / cluster counts of a selection, largest first."""
    rows = []
    for level, col in (("class", "class_name"), ("subclass", "subclass_name"), ("cluster", "cluster_name")):
        counts = selected[col].value_counts()
        rows += [{"level": level, "value": str(k), "count": int(v), "share": v / len(selected)} for k, v in counts.items()]
    return pd.DataFrame(rows, columns=["level", "value", "count", "share"])
