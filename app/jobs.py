"""The jobs started from the page (training, import): what runs now, and a Cancel button for each.

Shown on the Runs and Upload pages. The page's jobs are capped (``CLUSTERSCOPE_MAX_JOBS``, backend.jobs.launch);
cancelling sends SIGTERM to the job's process group and marks the run or import ``cancelled``.
"""

from __future__ import annotations

import streamlit as st

from app import loaders, widgets
from backend import api
from backend.api import ClusterScopeError

KIND = {"train": "training run", "import": "import"}
DONE = "cs-cancelled"  # session key: the message about the last job cancelled here


def jobs_panel(key: str) -> None:
    """The page's running jobs with their Cancel buttons (``key`` keeps the widgets of two pages apart)."""
    store = api.open_store(loaders.store_root())
    try:
        jobs, cap = api.running_jobs(store), api.max_jobs()
    except ClusterScopeError as exc:
        st.error(widgets.visitor(exc), icon=":material/error:")
        return
    if message := st.session_state.pop(DONE, None):
        st.success(message, icon=":material/stop_circle:")
    if not jobs:
        return
    with st.container(border=True):
        st.markdown(f"**Running jobs started from the page**: {len(jobs)} (this server runs at most {cap} at once)")
        for job in jobs:
            left, right = st.columns([5, 1], vertical_alignment="center")
            left.write(f"{KIND[job['kind']]} **{job['id']}**, started {str(job.get('started', ''))[:19].replace('T', ' ')} UTC")
            right.button("Cancel", key=f"{key}-cancel-{job['kind']}-{job['id']}", icon=":material/stop_circle:",
                         on_click=cancel, args=(job["kind"], job["id"]))


def cancel(kind: str, ident: str) -> None:
    """Cancel one job (waits until it has stopped) and leave a message for the next run of the page."""
    try:
        stopped = api.cancel_job(api.open_store(loaders.store_root()), kind, ident)
    except ClusterScopeError as exc:
        st.session_state[DONE] = f"Could not cancel {KIND[kind]} {ident}: {widgets.visitor(exc)}"
        return
    if not stopped:
        st.session_state[DONE] = f"The {KIND[kind]} {ident} had already stopped."
    elif kind == "train":
        st.session_state[DONE] = (f"Cancelled training run {ident}: it is marked 'cancelled' and keeps its finished "
                                  f"epochs; continue it with `clusterscope train --resume {ident}`.")
    else:
        status = api.import_job_status(api.open_store(loaders.store_root()), ident)
        st.session_state[DONE] = import_cancelled_text(ident, status)


def import_cancelled_text(job_id: str, status: dict) -> str:
    """What a cancelled import left: nothing, or a run whose analysis was stopped."""
    if status.get("run_id"):
        return (f"Cancelled import {job_id} while analysing: run {status['run_id']} was imported; analyse it with "
                f"`clusterscope analyze {status['run_id']}`.")
    return f"Cancelled import {job_id}: nothing was imported and its uploaded files were removed."
