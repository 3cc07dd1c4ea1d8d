"""Cached reads for "what changed, and when" (issue 17): training events, neighbourhood change, prediction flips
and the cluster genealogy, keyed like app/loaders.py on the version tokens of the files they read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app import loaders
from app.loaders import _store
from backend import api

if TYPE_CHECKING:
    Token = tuple

COLOUR_LABELS = {"neighbour_change": "neighbourhood change since the previous recorded epoch (Jaccard, 0-1)",
                 "forgetting": "forgetting events (over the recorded epochs)"}


def colour_values(run_id: str, layer: str, epoch: int, colour: str, unit: int | None) -> pd.DataFrame | None:
    """The per-sample values an Embeddings colouring needs beyond the points and labels: ``sample_id`` with ``correct``
    ("correct") or ``colour_value`` ("neuron", "neighbour_change", "forgetting", "region"); None for the others."""
    if colour == "correct":
        return loaders.predictions(run_id, epoch)[["sample_id", "correct"]]
    if colour == "neuron":
        ids, acts = loaders.activations(run_id, layer, epoch)
        return pd.DataFrame({"sample_id": ids, "colour_value": acts[:, unit]})
    if colour == "neighbour_change":
        change = neighbour_change(run_id, layer, epoch)
        return pd.DataFrame({"sample_id": change["sample_id"], "colour_value": change["neighbour_change"].astype(float)})
    if colour in ("forgetting", "region"):
        events = training_events(run_id)
        column = events["forgetting"].astype(float) if colour == "forgetting" else events["region"].astype(str)
        return pd.DataFrame({"sample_id": events["sample_id"], "colour_value": column})
    return None


def colour_stamps(store: api.RunStore, run_id: str, layer: str, epoch: int, colour: str) -> list[Token]:
    """The versions of the files :func:`colour_values` reads for ``colour`` (the view's other files aside;
    run.json, which changes with every recorded epoch, is among those and covers the training events)."""
    if colour == "correct":
        return [api.run_version(store, run_id, "predictions", epoch=epoch)]
    if colour == "neuron":
        return [api.run_version(store, run_id, "activations", layer=layer, epoch=epoch)]
    if colour == "neighbour_change":
        return [api.analysis_version(store, run_id, "changes", layer, epoch)]
    return []


def colour_label(colour: str, unit: int | None) -> str:
    """The colour bar's title of a numeric colouring."""
    return f"unit {unit} pre-activation (a.u.)" if colour == "neuron" else COLOUR_LABELS.get(colour, "")


def training_events(run_id: str) -> pd.DataFrame:
    """api.training_events: one row per probe sample (raises ClusterScopeError when the run has no predictions)."""
    store = _store()
    return _training_events(str(store.root), run_id, api.run_version(store, run_id))


@st.cache_data(show_spinner=False, max_entries=16)
def _training_events(root: str, run_id: str, version: Token) -> pd.DataFrame:
    return api.training_events(api.open_store(root), run_id)


def prediction_flips(run_id: str, epoch: int) -> pd.DataFrame:
    store = _store()
    return _prediction_flips(str(store.root), run_id, epoch, api.run_version(store, run_id))


@st.cache_data(show_spinner=False, max_entries=32)
def _prediction_flips(root: str, run_id: str, epoch: int, version: Token) -> pd.DataFrame:
    return api.prediction_flips(api.open_store(root), run_id, epoch)


def neighbour_change(run_id: str, layer: str, epoch: int) -> pd.DataFrame:
    store = _store()
    return _neighbour_change(str(store.root), run_id, layer, epoch,
                             api.analysis_version(store, run_id, "changes", layer, epoch))


@st.cache_data(show_spinner=False, max_entries=32)
def _neighbour_change(root: str, run_id: str, layer: str, epoch: int, version: Token) -> pd.DataFrame:
    return api.neighbour_change(api.open_store(root), run_id, layer, epoch)


def genealogy(run_id: str, *, layer: str, epoch: int, across: str, threshold: float
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """api.cluster_genealogy across the layer's epochs or across the layers at ``epoch``."""
    store = _store()
    return _genealogy(str(store.root), run_id, layer, epoch, across, threshold, api.analysis_version(store, run_id, "points"))


@st.cache_data(show_spinner=False, max_entries=16)
def _genealogy(root: str, run_id: str, layer: str, epoch: int, across: str, threshold: float, version: Token
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    store = api.open_store(root)
    if across == "epochs":
        return api.cluster_genealogy(store, run_id, layer=layer, across="epochs", threshold=threshold)
    return api.cluster_genealogy(store, run_id, epoch=epoch, across="layers", threshold=threshold)
