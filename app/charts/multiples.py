"""Small multiples for the Compare page: the same layer and epoch of several runs side by side.

Pure: DataFrames in, choices or a Plotly figure out (no Streamlit). The page (app/views/compare_multiples.py) offers the
layers and epochs every chosen run has analysed; where the runs share no layer name (other architectures), a
layer is named by its depth position counted from the output ("last hidden layer").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.base import category_colours, style
from app.charts.embeddings import AXES, HOVER, marker_symbols, point_customdata

MAX_PANELS = 9  # 3 x 3: more panels than that are too small to read at 1280 x 720
COLUMNS = 3
DEPTH_PREFIX = "depth:"  # a layer choice by position from the output: "depth:1" is the last hidden layer


@dataclass(frozen=True)
class Panel:
    """One run's view: its title and its points (charts_embeddings.view_points: x/y columns, colour_value,
    sample_id, cluster)."""

    title: str
    points: pd.DataFrame


def shared_layers(layers: Mapping[str, pd.DataFrame]) -> list[str]:
    """The layer names every run has analysed, in the first run's depth order.

    layers : run_id -> that run's ``layers`` analysis table (columns layer, epoch, depth at least).
    """
    tables = list(layers.values())
    if not tables:
        return []
    common = set.intersection(*(set(t["layer"].astype(str)) for t in tables))
    return [n for n in _depth_order(tables[0]) if n in common]


def depth_positions(layers: Mapping[str, pd.DataFrame]) -> list[str]:
    """Layer choices by position from the output ("depth:1" = last hidden layer, "depth:2" the one before ...),
    as many as the shallowest run has analysed layers."""
    if not layers:
        return []
    deepest_common = min(len(_depth_order(t)) for t in layers.values())
    return [f"{DEPTH_PREFIX}{k}" for k in range(1, deepest_common + 1)]


def layer_label(choice: str) -> str:
    """A layer choice as the page shows it: the layer's name, or its position ("last hidden layer")."""
    if not choice.startswith(DEPTH_PREFIX):
        return choice
    k = int(choice[len(DEPTH_PREFIX):])
    if k == 1:
        return "last hidden layer"
    ordinal = {2: "2nd", 3: "3rd"}.get(k, f"{k}th")
    return f"{ordinal}-to-last hidden layer"


def resolve_layers(layers: Mapping[str, pd.DataFrame], choice: str) -> dict[str, str]:
    """run_id -> the layer name a choice (a name or a depth position) means in that run."""
    if not choice.startswith(DEPTH_PREFIX):
        return {run: choice for run in layers}
    k = int(choice[len(DEPTH_PREFIX):])
    return {run: _depth_order(t)[-k] for run, t in layers.items()}


def shared_epochs(layers: Mapping[str, pd.DataFrame], resolved: Mapping[str, str]) -> list[int]:
    """The epochs at which every run has analysed its layer of ``resolved`` (run_id -> layer), ascending."""
    sets = [set(t.loc[t["layer"].astype(str) == resolved[run], "epoch"].astype(int)) for run, t in layers.items()]
    return sorted(set.intersection(*sets)) if sets else []


def last_epochs(layers: Mapping[str, pd.DataFrame], resolved: Mapping[str, str]) -> dict[str, int]:
    """run_id -> the last epoch at which the run analysed its layer of ``resolved``."""
    return {run: int(t.loc[t["layer"].astype(str) == resolved[run], "epoch"].max()) for run, t in layers.items()}


def _depth_order(table: pd.DataFrame) -> list[str]:
    return table.sort_values(["depth", "layer"]).drop_duplicates("layer")["layer"].astype(str).tolist()


def differing(hparams: pd.DataFrame, run_id: str, *, limit: int = 3) -> str:
    """The run's values of the hyperparameters that set it apart ("lr=0.01 · augment=True"), keys without their
    section. Two axes or fewer: both values; more (runs that each change one setting of a base run): the values
    where the run differs from the most common one.

    hparams : one row per run, indexed by run_id, one column per hyperparameter axis (config keys that differ).
    """
    if run_id not in hparams.index:
        return ""
    keys = [c for c in hparams.columns if hparams[c].astype(str).nunique() > 1]
    if len(keys) > 2:
        keys = [k for k in keys if str(hparams.at[run_id, k]) not in set(hparams[k].astype(str).mode())]
    return " · ".join(f"{k.rsplit('.', 1)[-1]}={hparams.at[run_id, k]}" for k in keys[:limit])


def panel_title(run_id: str, test_accuracy: float | None, detail: str = "") -> str:
    """A panel's title: the run and its test accuracy, then the differing hyperparameters on a second line."""
    acc = "test accuracy n/a" if test_accuracy is None or pd.isna(test_accuracy) else f"test {100 * test_accuracy:.1f} %"
    return f"<b>{run_id}</b> · {acc}" + (f"<br>{detail}" if detail else "")


def shared_colours(colour_maps: Sequence[dict[str, str]]) -> dict[str, str]:
    """One colour per category over every panel: the first run's map when it names every category of the
    others (runs of one data set), else fresh colours for the union in order of appearance."""
    if not colour_maps:
        return {}
    first = colour_maps[0]
    names = list(dict.fromkeys(n for m in colour_maps for n in m))
    return dict(first) if set(names) <= set(first) else category_colours(names)


def embedding_grid(panels: Sequence[Panel], *, projection: str, colours: dict[str, str], legend_title: str = "",
                   title: str = "", columns: int = COLUMNS, present: bool = False) -> go.Figure:
    """One 2-D embedding per panel in a grid (``columns`` per row), one trace per category and panel; a
    category has the same colour and marker in every panel, and a single legend entry (toggling it hides the
    category in every panel).

    panels : each with a title and points with the projection's x/y columns, ``colour_value``, sample_id, cluster.
    colours : category -> colour (:func:`shared_colours`).
    """
    x, y, xt, yt = AXES[projection]
    cols = max(1, min(columns, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p.title for p in panels],
                        horizontal_spacing=0.06, vertical_spacing=min(0.3 / rows + 0.06, 0.2))
    symbols = marker_symbols(colours)
    shown: set[str] = set()
    for i, panel in enumerate(panels):
        r, c = divmod(i, cols)
        values = panel.points["colour_value"].astype(str).to_numpy()
        for name, colour in colours.items():
            part = panel.points[values == name]
            if part.empty:
                continue
            fig.add_trace(go.Scattergl(
                x=part[x].to_numpy(np.float32), y=part[y].to_numpy(np.float32), mode="markers", name=name,
                legendgroup=name, showlegend=name not in shown, hovertemplate=HOVER,
                customdata=point_customdata(part["sample_id"].to_numpy(), part["cluster"].to_numpy()),
                marker={"size": 6 if present else 4, "color": colour, "symbol": symbols[name], "opacity": 0.8},
            ), row=r + 1, col=c + 1)
            shown.add(name)
        fig.update_xaxes(title_text=xt if r == rows - 1 or i + cols >= len(panels) else None, row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=yt if c == 0 else None, row=r + 1, col=c + 1)
    panel_height = 330 if present else 290
    fig.update_layout(title=title, legend={"title": {"text": legend_title}, "itemsizing": "constant"})
    fig.update_annotations(font_size=17 if present else 13)  # the panel titles, two lines each
    style(fig, present=present, height=panel_height * rows + 140)
    fig.update_layout(margin={"t": 110})  # room for the figure's title above the two-line panel titles
    return fig
