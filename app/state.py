"""Shareable view state: every choice lives in the URL's query parameters, validated on read.

A copied URL reopens the same view: pages read their defaults from ``st.query_params`` through
:func:`choice` and write the user's choice back with :func:`remember`. Invalid or stale values
(a deleted run, an epoch that does not exist) fall back to the default instead of failing.

Streamlit drops the query parameters when the user moves to another page in the sidebar, so the
session also keeps the last value of each choice: a page opened without one in its URL starts from
it (the run chosen on Embeddings is the run shown on Neurons), then writes it to its own URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import streamlit as st

T = TypeVar("T")
MEMORY = "cs-choices"  # session key: {choice: its last value as text} across pages


def choice(key: str, options: Sequence[T], default: T | None = None) -> T | None:
    """:func:`chosen`, else ``default`` (else the first option)."""
    found = chosen(key, options)
    if found is not None:
        return found
    if default is not None and default in options:
        return default
    return options[0] if options else None


def chosen(key: str, options: Sequence[T]) -> T | None:
    """The query parameter ``key`` if it names one of ``options``, else this session's last value of it
    (:func:`remembered`) if that does; None when the user has chosen none of them."""
    for raw in (st.query_params.get(key), remembered(key)):
        if raw is None:
            continue
        for option in options:
            if str(option) == raw:
                return option
    return None


def unknown(key: str, options: Sequence[object]) -> str | None:
    """The query parameter ``key`` when a link names a value that is not among ``options`` (a run, layer or epoch
    that does not exist), so the page can say so instead of silently showing another; else None. A value this
    session chose itself (e.g. a layer of the run shown before) is not the link's doing and is not reported."""
    raw = st.query_params.get(key)
    if raw is None or raw == remembered(key) or any(str(o) == raw for o in options):
        return None
    return raw


def int_param(key: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi] (else this session's last value of it, else ``default``)."""
    for raw in (st.query_params.get(key), remembered(key)):
        try:
            value = int(raw)
        except (TypeError, ValueError):
            continue
        if lo <= value <= hi:
            return value
    return default


def remembered(key: str) -> str | None:
    """The last value this session gave the choice ``key`` (as text), on any page; None if none."""
    return st.session_state.get(MEMORY, {}).get(key)


def choices(key: str, options: Sequence[str]) -> list[str]:
    """A comma-separated list parameter, keeping only valid entries."""
    raw = st.query_params.get(key) or ""
    return [v for v in raw.split(",") if v in options]


def remember(**values: object) -> None:
    """Write choices back to the URL (None removes the parameter). Only changes are written: each write
    sends the browser a message, and a page remembers ~10 choices on every rerun. The session keeps them
    too (:func:`remembered`), for the next page."""
    memory = st.session_state.setdefault(MEMORY, {})
    for key, value in values.items():
        if value is None:
            memory.pop(key, None)
            if key in st.query_params:
                del st.query_params[key]
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        memory[key] = text
        if st.query_params.get(key) != text:
            st.query_params[key] = text


def presenting() -> bool:
    return st.query_params.get("present") == "1"


def link(page: str, **params: object) -> str:
    """A relative URL to ``page`` (its url path) with query parameters, for markdown links."""
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"/{page}?{query}" if query else f"/{page}"
