"""Embeddings page: a selection followed over epochs and layers, and its trajectories drawn.

The page keeps the selected sample ids (app/views/embeddings_select.py, ``current_selection``) while the epoch,
the layer or the second view change; this module says how many of them a view draws, and draws, for
up to ``charts_embeddings.TRAJECTORY_CAP`` of them, their paths through the aligned 2-D UMAP layouts of the
current layer over every analysed epoch (docs/store.md, "Aligned layouts").
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import loaders
from app.charts import embeddings as charts_embeddings
from app.views.embeddings_view import View

TOGGLE = "w-trajectories"
KEPT = "cs-trajectories-on"  # the toggle's last value, kept while presentation mode hides the toggle
LABEL = "Draw the selection's trajectories"
# colourings whose view frames need no per-epoch predictions or activations; the others read the classes only
CHEAP_COLOURS = ("class", "fine", "superclass", "cluster")


def drawn_caption(df: pd.DataFrame, selected: set[int]) -> None:
    """Says so when a view draws only some of the selected samples (its stratified sample, *Max points drawn*)."""
    if not selected:
        return
    drawn = int(df["sample_id"].isin(selected).sum())
    if drawn < len(selected):
        st.caption(f"{drawn:,} of the {len(selected):,} selected samples are drawn here "
                   "(raise *Max points drawn* to see all of them).")


def kept_on(v: View, selected: set[int]) -> bool:
    """In presentation mode (no controls on the page): draw the trajectories if the toggle was on before."""
    return bool(selected) and v.proj == "umap" and bool(st.session_state.get(KEPT))


def toggle_ui(run: str, v: View, selected: set[int]) -> bool:
    """The trajectories toggle (off by default, disabled without a selection or in PCA); whether to draw them."""
    why = ("Select points to draw their trajectories." if not selected else
           "Trajectories follow the aligned UMAP layouts: choose Projection UMAP (PCA axes are fitted per epoch)."
           if v.proj != "umap" else "")
    on = st.toggle(LABEL, key=TOGGLE, disabled=bool(why),
                   help="Each selected sample's path through this layer's aligned layouts over all analysed epochs; "
                        "a ring marks the current epoch.")
    # one element whether or not there is a selection: the elements after it (the plots) keep their places in the
    # page, so a selection does not make the browser build the plots anew (seconds at 100,000 points)
    note = st.empty()
    if why:
        note.caption(why)
        return False
    st.session_state[KEPT] = on
    if on and loaders.analysis_params(run).get("aligned") is False:
        note.caption("This run was analysed without aligned layouts (`analysis.aligned = false`): each epoch's layout "
                     "is fitted afresh, so a path's steps also show the layouts' differences.")
    return on


def paths(run: str, v: View, ids: list[int]) -> pd.DataFrame:
    """The rows of samples ``ids`` in every analysed epoch of the view's layer (column ``epoch``)."""
    colour = v.colour if v.colour in CHEAP_COLOURS else "class"  # none of them needs a unit
    parts = []
    for epoch in v.scores.epochs[v.layer]:
        df = loaders.embedding_view(run, v.layer, epoch, colour, None, v.max_points)[0]
        parts.append(df.loc[df["sample_id"].isin(ids), ["sample_id", "cluster", "class_name", "umap_x", "umap_y"]]
                     .assign(epoch=epoch))
    return pd.concat(parts, ignore_index=True)


def figure(run: str, info: dict, v: View, selected: set[int], fig: go.Figure) -> go.Figure:
    """``fig`` (view A) with the trajectories of the selected samples (at most the cap, said so when capped)."""
    ids = charts_embeddings.trajectory_ids(selected)
    if len(ids) < len(selected):
        st.caption(f"Trajectories of {len(ids)} of the {len(selected):,} selected samples (a fixed random sample; "
                   "select fewer to see them all).")
    rows = paths(run, v, ids)
    colours = charts_embeddings.colour_map(rows, info["dataset"], "class") or {}
    traces = charts_embeddings.trajectory_traces(rows, projection="umap", colours=colours, epoch=v.epoch)
    return charts_embeddings.with_traces(fig, traces)
