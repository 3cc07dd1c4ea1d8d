"""All reads of the store go through here, cached on (store, run, layer, epoch, version of the files read).

The version tokens come from the facade (``api.store_version``, ``api.run_version``, ``api.analysis_version``:
file-system metadata read inside the store) and are passed without a leading underscore (st.cache_data keys on
those only), so a run that is still training or being analysed shows new results on the next rerun. The samples
and points tables (10^6 rows) are cached as one object each, never copied: callers must not modify them. This
module holds no path of the store and makes no file-system call (tests/test_architecture.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import api

if TYPE_CHECKING:  # types only: nothing here joins or reads a path
    from pathlib import Path

    Token = tuple  # a version token of the facade (api.run_version, ...): hashable, compared for equality only


def store_root() -> Path:
    return api.default_store_root()


def _store() -> api.RunStore:
    return api.open_store(store_root())


# ------------------------------------------------------------------ runs


def list_runs() -> pd.DataFrame:
    store = _store()
    return _list_runs(str(store.root), api.store_version(store))


@st.cache_data(show_spinner=False, max_entries=16)
def _list_runs(root: str, version: Token) -> pd.DataFrame:
    return api.list_runs(api.open_store(root))


def read_run(run_id: str) -> dict[str, Any]:
    store = _store()
    return _read_run(str(store.root), run_id, api.run_version(store, run_id))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_run(root: str, run_id: str, version: Token) -> dict[str, Any]:
    return api.read_run(api.open_store(root), run_id)


def read_metrics(run_id: str) -> pd.DataFrame:
    store = _store()
    return _read_metrics(str(store.root), run_id, api.run_version(store, run_id, "metrics"))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_metrics(root: str, run_id: str, version: Token) -> pd.DataFrame:
    return api.read_metrics(api.open_store(root), run_id)


def read_samples(run_id: str, thumbnails: bool = False) -> pd.DataFrame:
    store = _store()
    return _read_samples(str(store.root), run_id, thumbnails, api.run_version(store, run_id, "samples"))


@st.cache_resource(show_spinner=False, max_entries=16)
def _read_samples(root: str, run_id: str, thumbnails: bool, version: Token) -> pd.DataFrame:
    return api.read_samples(api.open_store(root), run_id, thumbnails=thumbnails)


def demo_status() -> dict[str, Any]:
    return api.demo_status(_store())


# ------------------------------------------------------------------ snapshots and analysis


def snapshots(run_id: str) -> pd.DataFrame:
    store = _store()
    return _snapshots(str(store.root), run_id, api.run_version(store, run_id, "snapshots"))


@st.cache_data(show_spinner=False, max_entries=64)
def _snapshots(root: str, run_id: str, version: Token) -> pd.DataFrame:
    return api.snapshots(api.open_store(root), run_id)


def analysis(run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> pd.DataFrame:
    """An analysis table (raises ClusterScopeError when missing or corrupt; pages show it in the panel)."""
    store = _store()
    read = _points if table == "points" else _analysis
    return read(str(store.root), run_id, table, layer, epoch, api.analysis_version(store, run_id, table, layer, epoch))


class LayerScores(NamedTuple):
    """A run's ``layers`` analysis table with the lookups a page needs on every rerun, built once."""

    table: pd.DataFrame  # one row per analysed (layer, epoch); read-only
    epochs: dict[str, list[int]]  # layer -> its analysed epochs, ascending
    rows: dict[tuple[str, int], pd.Series]  # (layer, epoch) -> its row
    corrupt: list[str]  # a message per unreadable file, left out of the above


def layer_scores(run_id: str) -> LayerScores:
    """The ``layers`` table and its per-(layer, epoch) lookups (raises ClusterScopeError like
    :func:`analysis`). Kept as one object (``st.cache_resource``, no copy per rerun): do not modify it."""
    store = _store()
    return _layer_scores(str(store.root), run_id, api.analysis_version(store, run_id, "layers"))


@st.cache_resource(show_spinner=False, max_entries=32)
def _layer_scores(root: str, run_id: str, version: Token) -> LayerScores:
    table, corrupt = api.read_analysis_parts(api.open_store(root), run_id, "layers")
    rows = {(str(r["layer"]), int(r["epoch"])): r for _, r in table.iterrows()}
    epochs: dict[str, list[int]] = {}
    for layer, epoch in sorted(rows, key=lambda k: k[1]):
        epochs.setdefault(layer, []).append(epoch)
    return LayerScores(table, epochs, rows, corrupt)


@st.cache_data(show_spinner=False, max_entries=256)
def _analysis(root: str, run_id: str, table: str, layer: str | None, epoch: int | None, version: Token) -> pd.DataFrame:
    return api.read_analysis(api.open_store(root), run_id, table, layer, epoch)


@st.cache_resource(show_spinner=False, max_entries=32)
def _points(root: str, run_id: str, table: str, layer: str | None, epoch: int | None, version: Token) -> pd.DataFrame:
    return api.read_analysis(api.open_store(root), run_id, table, layer, epoch)


def has_analysis(run_id: str) -> bool:
    """Whether any snapshot of the run is analysed (a file in its ``layers`` analysis table). Uncached: a
    directory walk of one run, used to choose a page's first run."""
    return api.has_analysis(_store(), run_id)


def analysis_params(run_id: str) -> dict[str, Any]:
    """The run's analysis parameters ({} before analysis). Uncached: one Parquet footer."""
    return api.analysis_params(_store(), run_id)


def analysis_status(run_id: str) -> dict[str, Any]:
    return api.analysis_status(_store(), run_id)


def activations(run_id: str, layer: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    store = _store()
    return _activations(str(store.root), run_id, layer, epoch,
                        api.run_version(store, run_id, "activations", layer=layer, epoch=epoch))


@st.cache_data(show_spinner=False, max_entries=32)
def _activations(root: str, run_id: str, layer: str, epoch: int, version: Token) -> tuple[np.ndarray, np.ndarray]:
    return api.read_activations(api.open_store(root), run_id, layer, epoch)


def predictions(run_id: str, epoch: int) -> pd.DataFrame:
    store = _store()
    return _predictions(str(store.root), run_id, epoch, api.run_version(store, run_id, "predictions", epoch=epoch))


@st.cache_data(show_spinner=False, max_entries=64)
def _predictions(root: str, run_id: str, epoch: int, version: Token) -> pd.DataFrame:
    return api.read_predictions(api.open_store(root), run_id, epoch)


def compare(run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """api.compare, cached on each run's run.json, network table and layers tables."""
    store = _store()
    return _compare(str(store.root), tuple(run_ids), _compare_stamps(store, run_ids))


def _compare_stamps(store: api.RunStore, run_ids: list[str]) -> tuple:
    return tuple((api.run_version(store, r), api.analysis_version(store, r, "network"), api.analysis_version(store, r, "layers"))
                 for r in run_ids)


@st.cache_data(show_spinner="Comparing runs...", max_entries=32)
def _compare(root: str, run_ids: tuple[str, ...], stamps: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    return api.compare(api.open_store(root), list(run_ids))


# ------------------------------------------------------------------ the Embeddings page's view


def embedding_view(run_id: str, layer: str, epoch: int, colour: str, unit: int | None,
                   max_points: int) -> tuple[pd.DataFrame, int]:
    """(points of one (layer, epoch) with labels and ``colour_value``, stratified to ``max_points``; the
    probe set's size). See charts_embeddings.view_points.

    Kept as one object per key (``st.cache_resource``: no copy on each rerun, which for 100,000 rows costs
    more than drawing them); callers must not modify the frame. Keyed on the files it is built from.
    """
    store = _store()
    return _embedding_view(str(store.root), run_id, layer, int(epoch), colour, unit if colour == "neuron" else None,
                           int(max_points), _view_stamps(store, run_id, layer, epoch, colour))


def embedding_figure(run_id: str, layer: str, epoch: int, colour: str, unit: int | None, max_points: int, *,
                     projection: str, highlight: frozenset[int] | None, title: str, present: bool) -> go.Figure:
    """The Embeddings scatter of one view (charts_embeddings.embedding_scatter of :func:`embedding_view`,
    coloured by charts_embeddings.colour_map), kept per view and figure setting, so moving back to an epoch
    already seen only re-sends the figure. Callers must not modify it."""
    store = _store()
    return _embedding_figure(str(store.root), run_id, layer, int(epoch), colour, unit if colour == "neuron" else None,
                             int(max_points), _view_stamps(store, run_id, layer, epoch, colour), projection,
                             highlight or None, title, present)


def scrub_figure(run_id: str, layer: str, epoch: int, epochs: tuple[int, ...], colour: str, max_points: int, *,
                 projection: str, highlight: frozenset[int] | None, titles: tuple[str, ...], present: bool) -> go.Figure:
    """:func:`embedding_figure` with every epoch of ``epochs`` as a frame (charts_embeddings.with_epoch_frames;
    ``titles`` per epoch), switched in the browser by app/views/embeddings_scrub.py. Callers must not modify it."""
    store = _store()
    stamps = tuple(_view_stamps(store, run_id, layer, e, colour) for e in epochs)
    return _scrub_figure(str(store.root), run_id, layer, int(epoch), tuple(map(int, epochs)), colour, int(max_points),
                         stamps, projection, highlight or None, titles, present)


@st.cache_resource(show_spinner=False, max_entries=8)
def _scrub_figure(root: str, run_id: str, layer: str, epoch: int, epochs: tuple[int, ...], colour: str, max_points: int,
                  stamps: tuple[Token, ...], projection: str, highlight: frozenset[int] | None,
                  titles: tuple[str, ...], present: bool) -> go.Figure:
    from app.charts import embeddings as charts_embeddings

    views = {e: _embedding_view(root, run_id, layer, e, colour, None, max_points, s)[0] for e, s in zip(epochs, stamps, strict=True)}
    fig = _embedding_figure(root, run_id, layer, epoch, colour, None, max_points, stamps[epochs.index(epoch)], projection,
                            highlight, titles[epochs.index(epoch)], present)
    df = views[epoch]
    return charts_embeddings.with_epoch_frames(
        fig, df, views, epoch=epoch, projection=projection, colour="colour_value",
        colours=charts_embeddings.colour_map(df, read_run(run_id)["dataset"], colour) or {},
        titles=dict(zip(epochs, titles, strict=True)))


def _view_stamps(store: api.RunStore, run_id: str, layer: str, epoch: int, colour: str) -> Token:
    """The versions of the files one Embeddings view is built from."""
    stamps = [api.analysis_version(store, run_id, "points", layer, epoch), api.run_version(store, run_id, "samples"),
              api.run_version(store, run_id)]
    from app.loaders_changes import colour_stamps  # imported here: that module reads through this one

    return tuple(stamps + colour_stamps(store, run_id, layer, epoch, colour))


@st.cache_resource(show_spinner=False, max_entries=16)
def _embedding_figure(root: str, run_id: str, layer: str, epoch: int, colour: str, unit: int | None, max_points: int,
                      stamps: Token, projection: str, highlight: frozenset[int] | None, title: str,
                      present: bool) -> go.Figure:
    from app.charts import embeddings as charts_embeddings
    from app.loaders_changes import colour_label

    df = _embedding_view(root, run_id, layer, epoch, colour, unit, max_points, stamps)[0]
    dataset = read_run(run_id)["dataset"]  # through the loaders, as _embedding_view reads it
    return charts_embeddings.embedding_scatter(
        df, projection=projection, colour="colour_value", colours=charts_embeddings.colour_map(df, dataset, colour),
        highlight=set(highlight) if highlight else None, title=title, present=present,
        colour_label=colour_label(colour, unit),
        legend_title=charts_embeddings.LEGEND_TITLES.get(colour, ""))


@st.cache_resource(show_spinner=False, max_entries=48)
def _embedding_view(root: str, run_id: str, layer: str, epoch: int, colour: str, unit: int | None, max_points: int,
                    stamps: Token) -> tuple[pd.DataFrame, int]:
    from app.charts import embeddings as charts_embeddings

    # through the other loaders, so the tables are read from disk once for every view that uses them
    samples = read_samples(run_id)
    labels = _labels(run_id, samples)
    from app.loaders_changes import colour_values  # imported here: that module reads through this one

    values = colour_values(run_id, layer, epoch, colour, unit)
    points = analysis(run_id, "points", layer, epoch)
    df = charts_embeddings.view_points(points, labels, colour=colour, values=values, max_points=max_points)
    return df, len(samples)


def _labels(run_id: str, samples: pd.DataFrame) -> pd.DataFrame:
    """charts_embeddings.label_samples with the run's training target."""
    from app.charts import embeddings as charts_embeddings

    return charts_embeddings.label_samples(samples, target=read_run(run_id)["dataset"].get("target", "label"))


def hover_script(run_id: str, ids: np.ndarray) -> tuple[Any, int]:
    """(the hover-card script of a run's points ``ids``, for ``st.html``; how many have a thumbnail): app/hover.py."""
    store = _store()
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # a view's ids are sorted already: skip the sort
        ids = np.unique(ids)
    return _hover_script(str(store.root), run_id, ids,
                         api.run_version(store, run_id, "samples"), api.run_version(store, run_id))


@st.cache_resource(show_spinner=False, max_entries=16)
def _hover_script(root: str, run_id: str, ids: np.ndarray, v1: Token, v2: Token) -> tuple[Any, int]:
    from app import hover

    samples = read_samples(run_id, thumbnails=True)
    labels = _labels(run_id, samples)
    data, with_images = hover.table(labels, samples.set_index("sample_id")["thumbnail"], ids)
    return hover.Html(hover.script(data)), with_images


# ------------------------------------------------------------------ training dynamics and rotation (Mechanisms page)


def dynamics_layers(run_id: str) -> list[str]:
    store = _store()
    return _dynamics_layers(str(store.root), run_id, api.run_version(store, run_id, "dynamics"))


@st.cache_data(show_spinner=False, max_entries=64)
def _dynamics_layers(root: str, run_id: str, version: Token) -> list[str]:
    return api.dynamics_layers(api.open_store(root), run_id)


def mechanisms(run_id: str, layer: str) -> dict[str, pd.DataFrame]:
    """api.mechanisms, cached on the layer's dynamics files, the probe losses and the checkpoints."""
    store = _store()
    stamps = (api.run_version(store, run_id, "dynamics", layer=layer), api.run_version(store, run_id, "checkpoints"))
    return _mechanisms(str(store.root), run_id, layer, stamps)


@st.cache_data(show_spinner="Reading the training dynamics...", max_entries=16)
def _mechanisms(root: str, run_id: str, layer: str, stamps: tuple) -> dict[str, pd.DataFrame]:
    return api.mechanisms(api.open_store(root), run_id, layer)


def rotation_runs(run_ids: list[str]) -> pd.DataFrame:
    store = _store()
    stamps = tuple((api.run_version(store, r), api.analysis_version(store, r, "rotation")) for r in run_ids)
    return _rotation_runs(str(store.root), tuple(run_ids), stamps)


@st.cache_data(show_spinner=False, max_entries=32)
def _rotation_runs(root: str, run_ids: tuple[str, ...], stamps: tuple) -> pd.DataFrame:
    return api.rotation_runs(api.open_store(root), list(run_ids))


# ------------------------------------------------------------------ sweeps


def data_sets() -> dict[str, str]:
    """api.data_sets (run_id -> "name/target"), cached on every run.json."""
    store = _store()
    return _data_sets(str(store.root), api.store_version(store))


@st.cache_data(show_spinner=False, max_entries=16)
def _data_sets(root: str, version: Token) -> dict[str, str]:
    return api.data_sets(api.open_store(root))


def list_sweeps() -> pd.DataFrame:
    store = _store()
    return _list_sweeps(str(store.root), api.store_version(store))


@st.cache_data(show_spinner=False, max_entries=16)
def _list_sweeps(root: str, version: Token) -> pd.DataFrame:
    return api.list_sweeps(api.open_store(root))


def sweep_runs(name: str) -> pd.DataFrame:
    store = _store()
    return _sweep_runs(str(store.root), name, api.store_version(store))


@st.cache_data(show_spinner=False, max_entries=16)
def _sweep_runs(root: str, name: str, version: Token) -> pd.DataFrame:
    return api.sweep_runs(api.open_store(root), name)


def compare_sweep(name: str, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """api.compare_sweep over ``run_ids``, cached like :func:`compare`."""
    store = _store()
    return _compare_sweep(str(store.root), name, tuple(run_ids), _compare_stamps(store, run_ids))


@st.cache_data(show_spinner="Comparing runs...", max_entries=32)
def _compare_sweep(root: str, name: str, run_ids: tuple[str, ...], stamps: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    return api.compare_sweep(api.open_store(root), name, list(run_ids))


def k_sensitivity(run_ids: list[str]) -> pd.DataFrame:
    """api.k_sensitivity (c1 and c3 at several k, from the last analysed activations), cached like :func:`compare`."""
    store = _store()
    return _k_sensitivity(str(store.root), tuple(run_ids), _compare_stamps(store, run_ids))


@st.cache_data(show_spinner="Computing c1 and c3 for every k...", max_entries=32)
def _k_sensitivity(root: str, run_ids: tuple[str, ...], stamps: tuple) -> pd.DataFrame:
    return api.k_sensitivity(api.open_store(root), list(run_ids))
