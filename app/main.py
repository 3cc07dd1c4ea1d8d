"""Dashboard entry point: declares the pages and the presentation switch, nothing else.

Run with `clusterscope app` (or `make demo`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app/main.py` puts app/ on sys.path, not the folder that holds `app` and `backend`;
# add it so the same imports work from a checkout and from an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import widgets  # noqa: E402
from app.safety import favicon, run_safely  # noqa: E402

st.set_page_config(page_title="ClusterScope", page_icon=favicon(), layout="wide")  # drawn here: nothing fetched

pages = [
    st.Page("views/runs.py", title="Runs", icon=":material/table_chart:", url_path="runs", default=True),
    st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:", url_path="embeddings"),
    st.Page("views/neurons.py", title="Neurons", icon=":material/neurology:", url_path="neurons"),
    st.Page("views/layers.py", title="Layers", icon=":material/stacked_line_chart:", url_path="layers"),
    st.Page("views/geometry.py", title="Geometry", icon=":material/hub:", url_path="geometry"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("views/mechanisms.py", title="Mechanisms", icon=":material/model_training:", url_path="mechanisms"),
    st.Page("views/upload.py", title="Upload", icon=":material/upload_file:", url_path="upload"),
]
page = st.navigation(pages)
widgets.presentation_toggle()
run_safely(page)
