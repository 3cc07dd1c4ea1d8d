"""Dashboard entry point: declares the pages, nothing else. Run with `clusterscope app`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app/main.py` puts app/ on sys.path, not the repository root that holds `app` and
# `backend`; add it so the same imports work from a checkout and from an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

st.set_page_config(page_title="ClusterScope", page_icon=":material/scatter_plot:", layout="wide")

pages = [st.Page("pages/runs.py", title="Runs", icon=":material/table_chart:", default=True)]
st.navigation(pages).run()
