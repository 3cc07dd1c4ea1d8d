"""Runs: every run of the store with status, final accuracies and learning curves."""

from __future__ import annotations

import streamlit as st

from app import charts, loaders
from backend.api import ClusterScopeError

st.title("Runs")


def empty_state(demo: dict) -> None:
    st.info(
        f"The run store **{loaders.store_root()}** has no runs yet.\n\n"
        "Create the built-in demo (five small runs, about two minutes on two CPU cores) with\n\n"
        "```\nmake demo          # or: clusterscope demo\n```\n"
        "or train your own run with `clusterscope train configs/digits_vgg.toml`. "
        "Runs appear here while they train."
    )


def runs_view() -> None:
    runs = loaders.list_runs()
    demo = loaders.demo_status()
    if demo["building"]:
        done = sum(1 for r in demo["present"])
        st.progress(done / len(demo["runs"]), text=f"Building the demo store: {done} of {len(demo['runs'])} runs started")
    if runs.empty:
        empty_state(demo)
        return
    max_epochs = int(runs["epochs"].fillna(1).max())
    table = runs[["run_id", "status", "dataset", "model", "target", "epochs_completed", "epochs",
                  "train_accuracy", "test_accuracy", "generalization_gap"]]
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "run_id": "run",
            "epochs_completed": st.column_config.ProgressColumn("progress (epochs)", min_value=0,
                                                                max_value=max_epochs, format="%d"),
            "train_accuracy": st.column_config.NumberColumn("train acc.", format="percent"),
            "test_accuracy": st.column_config.NumberColumn("test acc.", format="percent"),
            "generalization_gap": st.column_config.NumberColumn("gap (train - test)", format="percent"),
        },
    )
    for row in runs.itertuples():
        with st.container(border=True):
            st.subheader(row.run_id)
            try:
                info = loaders.read_run(row.run_id)
                metrics = loaders.read_metrics(row.run_id)
            except ClusterScopeError as exc:
                st.error(f"Cannot read this run: {exc}")
                continue
            cfg = info.get("config", {})
            st.caption(
                f"{info['status']} · data **{cfg.get('data', {}).get('name')}** "
                f"(trained on {cfg.get('data', {}).get('target')} labels) · model **{cfg.get('model', {}).get('name')}** · "
                f"{cfg.get('train', {}).get('optimizer')} lr {cfg.get('train', {}).get('lr')} · "
                f"seed {info.get('seed')} · snapshots at epochs {', '.join(map(str, info.get('recorded_epochs', []))) or 'none yet'}"
            )
            if info.get("error"):
                st.error(f"The run failed: {info['error']}")
            if metrics.empty:
                st.write("No epoch finished yet.")
                continue
            left, right = st.columns(2)
            left.plotly_chart(charts.learning_curves(metrics, metric="accuracy", title="Accuracy"),
                              width="stretch", key=f"acc-{row.run_id}")
            right.plotly_chart(charts.learning_curves(metrics, metric="loss", title="Loss"),
                               width="stretch", key=f"loss-{row.run_id}")


def is_active() -> bool:
    runs = loaders.list_runs()
    return bool(loaders.demo_status()["building"] or (runs["status"] == "running").any())


# While something trains, re-read the store every few seconds; otherwise draw once.
st.fragment(runs_view, run_every=3 if is_active() else None)()
