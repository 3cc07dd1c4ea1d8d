"""Cached reads of the representation geometry (SCIENCE.md 7) for the Geometry page, as app/loaders.py does
them: keyed on (store, run, the version token of the files read). No path, no file-system call here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app.loaders import _store  # the store the dashboard serves, as every loader reads it
from backend import api

if TYPE_CHECKING:
    Token = tuple  # a version token of the facade (api.analysis_version)


def layer_geometry(run_id: str) -> pd.DataFrame:
    """api.layer_geometry: layer, epoch, depth and the geometry columns of every analysed snapshot."""
    store = _store()
    return _layer_geometry(str(store.root), run_id, api.analysis_version(store, run_id, "layers"))


@st.cache_data(show_spinner=False, max_entries=32)
def _layer_geometry(root: str, run_id: str, version: Token) -> pd.DataFrame:
    return api.layer_geometry(api.open_store(root), run_id)


def cka(run_id: str) -> pd.DataFrame:
    """api.read_cka: the run's CKA table (empty when the run has none)."""
    store = _store()
    return _cka(str(store.root), run_id, api.analysis_version(store, run_id, "cka"))


@st.cache_data(show_spinner=False, max_entries=32)
def _cka(root: str, run_id: str, version: Token) -> pd.DataFrame:
    return api.read_cka(api.open_store(root), run_id)


def cka_params(run_id: str) -> dict:
    """api.cka_params: the parameters of the run's CKA table (for "CKA on N of M samples"); {} without one."""
    store = _store()
    return _cka_params(str(store.root), run_id, api.analysis_version(store, run_id, "cka"))


@st.cache_data(show_spinner=False, max_entries=32)
def _cka_params(root: str, run_id: str, version: Token) -> dict:
    return api.cka_params(api.open_store(root), run_id)
