"""Cached reads for the Embeddings page's density view (app/charts/density.py, app/views/embeddings_density.py),
following app/loaders.py: keyed on the versions of the files read; no path, no file-system call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go
import streamlit as st

from app import loaders
from app.charts import density as charts_density
from app.charts import embeddings as charts_embeddings
from backend import api

if TYPE_CHECKING:
    Token = tuple  # a version token of the facade, as in app/loaders.py


def probe_size(run_id: str) -> int:
    """The run's probe samples (the samples table's rows), as loaders.embedding_view counts them: whether its views
    are density views (app/views/embeddings_density.py), known without building a view."""
    store = loaders._store()  # noqa: SLF001
    return _probe_size(str(store.root), run_id, api.run_version(store, run_id, "samples"))


@st.cache_resource(show_spinner=False, max_entries=64)
def _probe_size(root: str, run_id: str, version: Token) -> int:
    return len(loaders.read_samples(run_id))


def density(run_id: str, layer: str, epoch: int, projection: str) -> charts_density.Density:
    """Points per pixel of every point of one (layer, epoch) in ``projection`` (charts_density.density).
    Kept as one object: callers must not modify it."""
    store = loaders._store()  # noqa: SLF001 - the loaders' own store, as every loader module opens it
    return _density(str(store.root), run_id, layer, int(epoch), projection,
                    api.analysis_version(store, run_id, "points", layer, epoch))


@st.cache_resource(show_spinner=False, max_entries=16)
def _density(root: str, run_id: str, layer: str, epoch: int, projection: str, version: Token) -> charts_density.Density:
    points = loaders.analysis(run_id, "points", layer, epoch)
    x, y, _, _ = charts_embeddings.AXES[projection]
    return charts_density.density(points[x].to_numpy(), points[y].to_numpy())


def density_figure(run_id: str, layer: str, epoch: int, colour: str, unit: int | None, sample: int, *, projection: str,
                   title: str, note: str, present: bool) -> go.Figure:
    """The density of every point with a stratified ``sample`` of them drawn on top (loaders.embedding_figure,
    charts_density.with_density). Kept per view: callers must not modify it."""
    store = loaders._store()  # noqa: SLF001
    stamps = loaders._view_stamps(store, run_id, layer, epoch, colour)  # noqa: SLF001 - the files the view is built from
    return _density_figure(str(store.root), run_id, layer, int(epoch), colour, unit if colour == "neuron" else None,
                           int(sample), projection, title, note, present, stamps)


@st.cache_resource(show_spinner=False, max_entries=8)
def _density_figure(root: str, run_id: str, layer: str, epoch: int, colour: str, unit: int | None, sample: int,
                    projection: str, title: str, note: str, present: bool, stamps: Token) -> go.Figure:
    fig = loaders.embedding_figure(run_id, layer, epoch, colour, unit, sample, projection=projection, highlight=None,
                                   title=title, present=present)
    return charts_density.with_density(fig, density(run_id, layer, epoch, projection), present=present, note=note)
