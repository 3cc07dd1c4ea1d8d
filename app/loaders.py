"""All reads of the store go through here, cached on (store, run, file modification time)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from backend import api


def store_root() -> Path:
    return api.default_store_root()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def list_runs() -> pd.DataFrame:
    root = store_root()
    return _list_runs(str(root), _mtime(root), tuple(_mtime(root / r / "run.json") for r in sorted(os.listdir(root)))
                      if root.is_dir() else ())


@st.cache_data(show_spinner=False, max_entries=16)
def _list_runs(root: str, _mtime_root: float, _mtimes: tuple[float, ...]) -> pd.DataFrame:
    return api.list_runs(api.open_store(root))


def read_run(run_id: str) -> dict[str, Any]:
    store = api.open_store(store_root())
    return _read_run(str(store.root), run_id, _mtime(store.run_json_path(run_id)))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_run(root: str, run_id: str, _mtime: float) -> dict[str, Any]:
    return api.read_run(api.open_store(root), run_id)


def read_metrics(run_id: str) -> pd.DataFrame:
    store = api.open_store(store_root())
    return _read_metrics(str(store.root), run_id, _mtime(store.metrics_path(run_id)))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_metrics(root: str, run_id: str, _mtime: float) -> pd.DataFrame:
    return api.read_metrics(api.open_store(root), run_id)


def demo_status() -> dict[str, Any]:
    return api.demo_status(api.open_store(store_root()))
