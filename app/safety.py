"""The page never shows a visitor a traceback or a server path (docs/security.md).

Streamlit's ``client.showErrorDetails`` is "none" under ``clusterscope app`` (backend.cli); on top of
that every page runs inside :func:`run_safely`, which shows one friendly line with a reference and logs
the traceback on the server under that reference.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import streamlit as st

log = logging.getLogger("clusterscope.app")


def run_safely(page: Any) -> None:
    """Run a page (``st.navigation``'s result); an unexpected error becomes one line and a reference id.

    Streamlit's own control flow (rerun, stop, switch_page) derives from BaseException and passes through.
    """
    try:
        page.run()
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("page %r failed; reference %s", getattr(page, "title", "?"), ref)
        st.error(f"Something went wrong on this page. The server's log has the details under reference **{ref}**: "
                 "give it to whoever runs this server.", icon=":material/error:")
