"""Cached figure of the Embeddings page's second view coloured by HDBSCAN cluster, its colours matched to the first
view's clusters (app/charts/clusters.py), following app/loaders.py: keyed on the versions of the files read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go
import streamlit as st

from app import loaders
from app.charts import clusters as charts_clusters
from app.charts import embeddings as charts_embeddings

if TYPE_CHECKING:
    Token = tuple  # a version token of the facade, as in app/loaders.py


def matched_figure(run_id: str, layer: str, epoch: int, ref_layer: str, ref_epoch: int, max_points: int, *,
                   projection: str, title: str, present: bool) -> go.Figure:
    """The scatter of (``layer``, ``epoch``) coloured by its HDBSCAN clusters, each in the colour and shape of the
    cluster of (``ref_layer``, ``ref_epoch``) holding most of its samples (charts_clusters.matched_styles). Kept per
    view: callers must not modify it."""
    store = loaders._store()  # noqa: SLF001 - the loaders' own store, as every loader module opens it
    stamps = tuple(loaders._view_stamps(store, run_id, la, e, "cluster")  # noqa: SLF001 - the files the views are built from
                   for la, e in ((layer, epoch), (ref_layer, ref_epoch)))
    return _matched_figure(str(store.root), run_id, layer, int(epoch), ref_layer, int(ref_epoch), int(max_points),
                           projection, title, present, stamps)


@st.cache_resource(show_spinner=False, max_entries=8)
def _matched_figure(root: str, run_id: str, layer: str, epoch: int, ref_layer: str, ref_epoch: int, max_points: int,
                    projection: str, title: str, present: bool, stamps: Token) -> go.Figure:
    df = loaders.embedding_view(run_id, layer, epoch, "cluster", None, max_points)[0]
    ref = loaders.embedding_view(run_id, ref_layer, ref_epoch, "cluster", None, max_points)[0]
    colours, symbols = charts_clusters.matched_styles(ref, df, charts_embeddings.CLUSTER_PALETTE, charts_embeddings.SYMBOLS)
    return charts_embeddings.embedding_scatter(df, projection=projection, colour="colour_value", colours=colours,
                                               symbols=symbols, title=title, present=present,
                                               legend_title=charts_embeddings.LEGEND_TITLES["matched"])
