"""All reads of the store go through here, cached on (store, run, layer, epoch, file modification time).

The cache key includes the file's modification time (as a parameter without a leading underscore:
st.cache_data leaves ``_``-prefixed parameters out of the key), so a run that is still training or being
analysed shows new results on the next rerun without a manual refresh.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import api


def store_root() -> Path:
    return api.default_store_root()


def _store() -> api.RunStore:
    return api.open_store(store_root())


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _folder_mtime(path: Path) -> float:
    """Latest modification time below ``path`` (one level of subfolders): changes when files are added."""
    if not path.is_dir():
        return 0.0
    times = [_mtime(path)] + [_mtime(p) for p in path.iterdir()]
    return max(times)


# ------------------------------------------------------------------ runs


def _run_json_stamps(root: Path) -> tuple[float, ...]:
    """The modification time of every run's run.json: changes when a run is added, trains or finishes."""
    return tuple(_mtime(root / r / "run.json") for r in sorted(os.listdir(root))) if root.is_dir() else ()


def list_runs() -> pd.DataFrame:
    root = store_root()
    return _list_runs(str(root), _mtime(root), _run_json_stamps(root))


@st.cache_data(show_spinner=False, max_entries=16)
def _list_runs(root: str, mtime_root: float, mtimes: tuple[float, ...]) -> pd.DataFrame:
    return api.list_runs(api.open_store(root))


def read_run(run_id: str) -> dict[str, Any]:
    store = _store()
    return _read_run(str(store.root), run_id, _mtime(store.run_json_path(run_id)))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_run(root: str, run_id: str, mtime: float) -> dict[str, Any]:
    return api.read_run(api.open_store(root), run_id)


def read_metrics(run_id: str) -> pd.DataFrame:
    store = _store()
    return _read_metrics(str(store.root), run_id, _mtime(store.metrics_path(run_id)))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_metrics(root: str, run_id: str, mtime: float) -> pd.DataFrame:
    return api.read_metrics(api.open_store(root), run_id)


def read_samples(run_id: str, thumbnails: bool = False) -> pd.DataFrame:
    store = _store()
    return _read_samples(str(store.root), run_id, thumbnails, _mtime(store.samples_path(run_id)))


@st.cache_data(show_spinner=False, max_entries=16)
def _read_samples(root: str, run_id: str, thumbnails: bool, mtime: float) -> pd.DataFrame:
    return api.read_samples(api.open_store(root), run_id, thumbnails=thumbnails)


def demo_status() -> dict[str, Any]:
    return api.demo_status(_store())


# ------------------------------------------------------------------ snapshots and analysis


def snapshots(run_id: str) -> pd.DataFrame:
    store = _store()
    return _snapshots(str(store.root), run_id, _folder_mtime(store.run_dir(run_id) / "activations"),
                      _mtime(store.run_json_path(run_id)))


@st.cache_data(show_spinner=False, max_entries=64)
def _snapshots(root: str, run_id: str, m1: float, m2: float) -> pd.DataFrame:
    return api.snapshots(api.open_store(root), run_id)


def analysis(run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> pd.DataFrame:
    """An analysis table (raises ClusterScopeError when missing or corrupt; pages show it in the panel)."""
    store = _store()
    return _analysis(str(store.root), run_id, table, layer, epoch, _table_stamp(store, run_id, table, layer, epoch))


def _table_stamp(store: api.RunStore, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> float:
    """The latest modification time of an analysis table's file(s)."""
    if layer is not None:
        return _mtime(store.analysis.path(run_id, table, layer, epoch))
    if table in ("network", "rotation"):
        return _mtime(store.analysis.path(run_id, table))
    folder = store.analysis.root(run_id) / table
    return max([_folder_mtime(folder)] + ([_folder_mtime(p) for p in folder.iterdir()] if folder.is_dir() else []))


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
    return _layer_scores(str(store.root), run_id, _table_stamp(store, run_id, "layers"))


@st.cache_resource(show_spinner=False, max_entries=32)
def _layer_scores(root: str, run_id: str, mtime: float) -> LayerScores:
    table, corrupt = api.read_analysis_parts(api.open_store(root), run_id, "layers")
    rows = {(str(r["layer"]), int(r["epoch"])): r for _, r in table.iterrows()}
    epochs: dict[str, list[int]] = {}
    for layer, epoch in sorted(rows, key=lambda k: k[1]):
        epochs.setdefault(layer, []).append(epoch)
    return LayerScores(table, epochs, rows, corrupt)


@st.cache_data(show_spinner=False, max_entries=256)
def _analysis(root: str, run_id: str, table: str, layer: str | None, epoch: int | None, mtime: float) -> pd.DataFrame:
    return api.read_analysis(api.open_store(root), run_id, table, layer, epoch)


def has_analysis(run_id: str) -> bool:
    """Whether any snapshot of the run is analysed (a file in its ``layers`` analysis table). Uncached: a
    directory walk of one run, used to choose a page's first run."""
    folder = _store().analysis.root(run_id) / "layers"
    try:
        return any(True for _ in folder.rglob("*.parquet"))
    except OSError:
        return False


def analysis_params(run_id: str) -> dict[str, Any]:
    """The run's analysis parameters ({} before analysis). Uncached: one Parquet footer."""
    return api.analysis_params(_store(), run_id)


def analysis_status(run_id: str) -> dict[str, Any]:
    return api.analysis_status(_store(), run_id)


def activations(run_id: str, layer: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    store = _store()
    return _activations(str(store.root), run_id, layer, epoch, _mtime(store.activation_path(run_id, layer, epoch)))


@st.cache_data(show_spinner=False, max_entries=32)
def _activations(root: str, run_id: str, layer: str, epoch: int, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    return api.read_activations(api.open_store(root), run_id, layer, epoch)


def predictions(run_id: str, epoch: int) -> pd.DataFrame:
    store = _store()
    return _predictions(str(store.root), run_id, epoch, _mtime(store.predictions_path(run_id, epoch)))


@st.cache_data(show_spinner=False, max_entries=64)
def _predictions(root: str, run_id: str, epoch: int, mtime: float) -> pd.DataFrame:
    return api.read_predictions(api.open_store(root), run_id, epoch)


def compare(run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """api.compare, cached on each run's run.json, network table and layers tables."""
    store = _store()
    return _compare(str(store.root), tuple(run_ids), _compare_stamps(store, run_ids))


def _compare_stamps(store: api.RunStore, run_ids: list[str]) -> tuple:
    return tuple((_mtime(store.run_json_path(r)), _table_stamp(store, r, "network"), _table_stamp(store, r, "layers"))
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
    ``titles`` per epoch), switched in the browser by app/scrub.py. Callers must not modify it."""
    store = _store()
    stamps = tuple(_view_stamps(store, run_id, layer, e, colour) for e in epochs)
    return _scrub_figure(str(store.root), run_id, layer, int(epoch), tuple(map(int, epochs)), colour, int(max_points),
                         stamps, projection, highlight or None, titles, present)


@st.cache_resource(show_spinner=False, max_entries=8)
def _scrub_figure(root: str, run_id: str, layer: str, epoch: int, epochs: tuple[int, ...], colour: str, max_points: int,
                  stamps: tuple[tuple[float, ...], ...], projection: str, highlight: frozenset[int] | None,
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


def _view_stamps(store: api.RunStore, run_id: str, layer: str, epoch: int, colour: str) -> tuple[float, ...]:
    """The modification times of the files one Embeddings view is built from."""
    stamps = [_mtime(store.analysis.path(run_id, "points", layer, epoch)), _mtime(store.samples_path(run_id)),
              _mtime(store.run_json_path(run_id))]
    if colour == "correct":
        stamps.append(_mtime(store.predictions_path(run_id, epoch)))
    elif colour == "neuron":
        stamps.append(_mtime(store.activation_path(run_id, layer, epoch)))
    return tuple(stamps)


@st.cache_resource(show_spinner=False, max_entries=16)
def _embedding_figure(root: str, run_id: str, layer: str, epoch: int, colour: str, unit: int | None, max_points: int,
                      stamps: tuple[float, ...], projection: str, highlight: frozenset[int] | None, title: str,
                      present: bool) -> go.Figure:
    from app.charts import embeddings as charts_embeddings

    df = _embedding_view(root, run_id, layer, epoch, colour, unit, max_points, stamps)[0]
    dataset = read_run(run_id)["dataset"]  # through the loaders, as _embedding_view reads it
    return charts_embeddings.embedding_scatter(
        df, projection=projection, colour="colour_value", colours=charts_embeddings.colour_map(df, dataset, colour),
        highlight=set(highlight) if highlight else None, title=title, present=present,
        colour_label=f"unit {unit} pre-activation (a.u.)" if colour == "neuron" else "",
        legend_title=charts_embeddings.LEGEND_TITLES.get(colour, ""))


@st.cache_resource(show_spinner=False, max_entries=48)
def _embedding_view(root: str, run_id: str, layer: str, epoch: int, colour: str, unit: int | None, max_points: int,
                    stamps: tuple[float, ...]) -> tuple[pd.DataFrame, int]:
    from app.charts import embeddings as charts_embeddings

    # through the other loaders, so the tables are read from disk once for every view that uses them
    samples = read_samples(run_id)
    labels = _labels(run_id, samples)
    values = None
    if colour == "correct":
        values = predictions(run_id, epoch)[["sample_id", "correct"]]
    elif colour == "neuron":
        ids, acts = activations(run_id, layer, epoch)
        values = pd.DataFrame({"sample_id": ids, "colour_value": acts[:, unit]})
    points = analysis(run_id, "points", layer, epoch)
    df = charts_embeddings.view_points(points, labels, colour=colour, values=values, max_points=max_points)
    return df, len(samples)


def _labels(run_id: str, samples: pd.DataFrame) -> pd.DataFrame:
    """charts_embeddings.label_samples with the run's training target."""
    from app.charts import embeddings as charts_embeddings

    return charts_embeddings.label_samples(samples, target=read_run(run_id)["dataset"].get("target", "label"))


def hover_script(run_id: str, ids: np.ndarray) -> tuple[Any, int]:
    """(the hover-card script for the points ``ids`` of a run, for ``st.html``; how many of them have a
    thumbnail); see app/hover.py."""
    store = _store()
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # a view's ids are sorted already: skip the sort
        ids = np.unique(ids)
    return _hover_script(str(store.root), run_id, ids,
                         _mtime(store.samples_path(run_id)), _mtime(store.run_json_path(run_id)))


@st.cache_resource(show_spinner=False, max_entries=16)
def _hover_script(root: str, run_id: str, ids: np.ndarray, m1: float, m2: float) -> tuple[Any, int]:
    from app import hover

    samples = read_samples(run_id, thumbnails=True)
    labels = _labels(run_id, samples)
    data, with_images = hover.table(labels, samples.set_index("sample_id")["thumbnail"], ids)
    return hover.Html(hover.script(data)), with_images


# ------------------------------------------------------------------ training dynamics and rotation (Mechanisms page)


def dynamics_layers(run_id: str) -> list[str]:
    store = _store()
    return _dynamics_layers(str(store.root), run_id, _folder_mtime(store.run_dir(run_id) / "dynamics" / "units"))


@st.cache_data(show_spinner=False, max_entries=64)
def _dynamics_layers(root: str, run_id: str, mtime: float) -> list[str]:
    return api.dynamics_layers(api.open_store(root), run_id)


def mechanisms(run_id: str, layer: str) -> dict[str, pd.DataFrame]:
    """api.mechanisms, cached on the layer's dynamics files, the probe losses and the checkpoints."""
    store = _store()
    run = store.run_dir(run_id)
    stamps = (_folder_mtime(run / "dynamics" / "units" / layer), _folder_mtime(run / "dynamics" / "loss"),
              _folder_mtime(run / "checkpoints"))
    return _mechanisms(str(store.root), run_id, layer, stamps)


@st.cache_data(show_spinner="Reading the training dynamics...", max_entries=16)
def _mechanisms(root: str, run_id: str, layer: str, stamps: tuple) -> dict[str, pd.DataFrame]:
    return api.mechanisms(api.open_store(root), run_id, layer)


def rotation_runs(run_ids: list[str]) -> pd.DataFrame:
    store = _store()
    stamps = tuple((_mtime(store.run_json_path(r)), _mtime(store.analysis.path(r, "rotation"))) for r in run_ids)
    return _rotation_runs(str(store.root), tuple(run_ids), stamps)


@st.cache_data(show_spinner=False, max_entries=32)
def _rotation_runs(root: str, run_ids: tuple[str, ...], stamps: tuple) -> pd.DataFrame:
    return api.rotation_runs(api.open_store(root), list(run_ids))


# ------------------------------------------------------------------ sweeps


def data_sets() -> dict[str, str]:
    """api.data_sets (run_id -> "name/target"), cached on every run.json."""
    root = store_root()
    return _data_sets(str(root), _run_json_stamps(root))


@st.cache_data(show_spinner=False, max_entries=16)
def _data_sets(root: str, mtimes: tuple[float, ...]) -> dict[str, str]:
    return api.data_sets(api.open_store(root))


def list_sweeps() -> pd.DataFrame:
    root = store_root()
    return _list_sweeps(str(root), _run_json_stamps(root))


@st.cache_data(show_spinner=False, max_entries=16)
def _list_sweeps(root: str, mtimes: tuple[float, ...]) -> pd.DataFrame:
    return api.list_sweeps(api.open_store(root))


def sweep_runs(name: str) -> pd.DataFrame:
    root = store_root()
    return _sweep_runs(str(root), name, _run_json_stamps(root))


@st.cache_data(show_spinner=False, max_entries=16)
def _sweep_runs(root: str, name: str, mtimes: tuple[float, ...]) -> pd.DataFrame:
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
