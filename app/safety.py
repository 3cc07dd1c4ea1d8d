"""What a visitor's browser gets: never a traceback or a server path, nothing from outside the server
(docs/security.md).

Streamlit's ``client.showErrorDetails`` is "none" under ``clusterscope app`` (backend.cli); on top of
that every page runs inside :func:`run_safely`, which shows one friendly line with a reference and logs
the traceback on the server under that reference. The page icon is drawn here (:func:`favicon`): a
``:material/...:`` icon would make every browser fetch it from fonts.gstatic.com, which fails offline.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import streamlit as st
from PIL import Image, ImageDraw

from app.charts.base import OKABE_ITO

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


@st.cache_resource(show_spinner=False)
def favicon() -> Image.Image:
    """A 64-pixel scatter plot in the Okabe-Ito colours, served by the server itself."""
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for (x, y), colour in zip([(16, 44), (24, 20), (40, 36), (48, 14), (30, 50)],
                              [OKABE_ITO[i] for i in (0, 1, 2, 3, 5)], strict=True):
        draw.ellipse((x - 8, y - 8, x + 8, y + 8), fill=colour)
    return img
