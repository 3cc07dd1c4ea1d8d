"""The cluster genealogy as a Plotly Sankey (issue 17, SCIENCE.md 7): one column of nodes per stage (a recorded
epoch, or a layer), node colour = the cluster's main class (the app's class colours, colour-blind safe), link width
= shared samples. Splits and merges are marked in the node's label. Pure: DataFrames in, figure out."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from app.charts.base import INK, category_colours

META = "cs-genealogy"  # the figure's layout ``meta``: app/views/geometry_genealogy.py finds it by that for node clicks


SHORT_LABELS_ABOVE = 4  # stages (columns) above which a node's label leaves out its stage


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def node_label(row: pd.Series, stage_name: str, *, short: bool = False) -> str:
    """'epoch 3 · c5 (split)'; ``short``: 'c5 (split)', the stage named once above its column instead. Plain
    words, not symbols: the fonts of a projector's laptop may lack them (they drew as empty boxes)."""
    mark = " (split)" if row["split"] else ""
    mark += " (merged)" if row["merged"] else ""
    return f"c{row['cluster']}{mark}" if short else f"{stage_name} {row['stage']} · c{row['cluster']}{mark}"


def genealogy_sankey(nodes: pd.DataFrame, links: pd.DataFrame, *, class_names: list[str], stage_name: str = "epoch",
                     threshold: float = 0.2, title: str = "") -> go.Figure:
    """nodes, links : :func:`backend.analysis.genealogy.genealogy`'s tables. class_names : the run's class names in
    id order (colours as in every other figure). Node i of the trace is ``nodes.node == i``; its x position is its
    stage's order. Empty ``links`` give the nodes alone."""
    colours = category_colours(class_names)
    stages = list(dict.fromkeys(nodes["stage"]))
    x = nodes["stage"].map({s: (i / max(len(stages) - 1, 1)) * 0.98 + 0.01 for i, s in enumerate(stages)})
    name_of = {i: n for i, n in enumerate(class_names)}
    node_colour = [colours.get(name_of.get(int(c), ""), "#BBBBBB") for c in nodes["main_class"]]
    hover = [f"{stage_name} {r.stage}, cluster {r.cluster}: {r.size} samples<br>classes: {r.class_makeup}"
             + (f"<br>subclasses: {r.subclass_makeup}" if r.subclass_makeup else "")
             + (f"<br>split into {r.children} clusters" if r.split else "")
             + (f"<br>merged from {r.parents} clusters" if r.merged else "") for r in nodes.itertuples()]
    link_colour = [_rgba(node_colour[int(s)], 0.35) for s in links["source"]]
    short = len(stages) > SHORT_LABELS_ABOVE  # many columns: labels side by side would overlap
    sankey = go.Sankey(
        # nodes placed by Plotly and not draggable: with "snap" a mouse press starts a drag that covers the plot, so
        # a click on a node never reaches Plotly's plotly_click (which picks the cluster: geometry_genealogy.py)
        arrangement="fixed",
        node={"label": [node_label(r, stage_name, short=short) for _, r in nodes.iterrows()], "color": node_colour,
              "x": x.tolist(), "pad": 12, "thickness": 16, "line": {"color": INK, "width": 0.5},
              "customdata": hover, "hovertemplate": "%{customdata}<extra></extra>"},
        link={"source": links["source"].tolist(), "target": links["target"].tolist(), "value": links["shared"].tolist(),
              "color": link_colour, "customdata": [f"{s:.0%}" for s in links["share"]],
              "hovertemplate": "%{value} shared samples (%{customdata} of the source)<extra></extra>"},
    )
    fig = go.Figure(sankey)
    if short:  # each column's stage once, above it
        for stage, pos in dict(zip(nodes["stage"], x, strict=True)).items():
            fig.add_annotation(x=pos, y=1.0, xref="paper", yref="paper", yanchor="bottom", showarrow=False,
                               text=f"{stage_name} {stage}", font={"color": INK, "size": 12})
    per_stage = int(nodes["stage"].value_counts().max()) if len(nodes) else 1
    fig.update_layout(title=title or f"Cluster genealogy across {stage_name}s (links: ≥ {threshold:.0%} of a cluster's samples)",
                      font={"color": INK}, meta=META,
                      height=max(450, 150 + 26 * per_stage), margin={"t": 110})  # height: room for every node's label
    return fig
