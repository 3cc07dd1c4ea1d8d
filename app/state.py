"""Shareable view state: every choice lives in the URL's query parameters, validated on read.

A copied URL reopens the same view: pages read their defaults from ``st.query_params`` through
:func:`choice` and write the user's choice back with :func:`remember`. Invalid or stale values
(a deleted run, an epoch that does not exist) fall back to the default instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def choice(key: str, options: Sequence[T], default: T | None = None) -> T | None:
    """The query parameter ``key`` if it names one of ``options``, else ``default`` (else the first option)."""
    raw = st.query_params.get(key)
    for option in options:
        if raw is not None and str(option) == raw:
            return option
    if default is not None and default in options:
        return default
    return options[0] if options else None


def choices(key: str, options: Sequence[str]) -> list[str]:
    """A comma-separated list parameter, keeping only valid entries."""
    raw = st.query_params.get(key) or ""
    return [v for v in raw.split(",") if v in options]


def remember(**values: object) -> None:
    """Write choices back to the URL (None removes the parameter)."""
    for key, value in values.items():
        if value is None:
            st.query_params.pop(key, None)
        elif isinstance(value, (list, tuple)):
            st.query_params[key] = ",".join(map(str, value))
        else:
            st.query_params[key] = str(value)


def presenting() -> bool:
    return st.query_params.get("present") == "1"


def link(page: str, **params: object) -> str:
    """A relative URL to ``page`` (its url path) with query parameters, for markdown links."""
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"/{page}?{query}" if query else f"/{page}"
