"""Runs: every run of the store with status, final accuracies and learning curves; start a training run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from app import jobs, loaders, state, widgets
from app.charts import base as charts
from backend import api
from backend.api import ClusterScopeError

# The other pages, by their file next to this one (st.page_link navigates inside the app, keeping the
# session); an absolute path keeps the links right wherever main.py keeps its page folder.
HERE = Path(__file__).resolve().parent
PAGES = {
    "embeddings": (HERE / "embeddings.py", "Embeddings", ":material/scatter_plot:"),
    "neurons": (HERE / "neurons.py", "Neurons", ":material/neurology:"),
    "layers": (HERE / "layers.py", "Layers", ":material/stacked_line_chart:"),
}
COMPARE_PAGE = HERE / "compare.py"
LAUNCHED = "cs-launched"  # session key: {run_id: launch time} of runs started from this page
LAST_JOB = "cs-last-job"  # session key: the last job started here, shown in the form
WAIT_FOR_START_S = 120  # keep polling this long for a launched run's run.json to appear



def empty_state(demo: dict) -> None:
    st.info(
        f"The run store{widgets.store_name()} has no runs yet.\n\n"
        "Create the built-in demo (five small runs, about two minutes on two CPU cores) with\n\n"
        "```\nmake demo          # or: clusterscope demo\n```\n"
        "or train your own run with `clusterscope train configs/digits_vgg.toml`, or start one with the form above. "
        "Runs appear here while they train."
    )


# ---------------------------------------------------------------- starting a run


def training_overrides(values: dict) -> list[str]:
    """The form's values as ``key=value`` config overrides (strings quoted as TOML strings)."""
    text = {"data.name", "data.target", "model.name", "run_id"}
    out = []
    for key, value in values.items():
        if key == "run_id" and not value:
            continue
        if key in text:
            out.append(f"{key}={json.dumps(str(value))}")
        elif isinstance(value, bool):
            out.append(f"{key}={str(value).lower()}")
        else:
            out.append(f"{key}={value!r}")
    return out


def training_form() -> None:
    """A small form over the main training keys; the run starts in its own process (``clusterscope train``)."""
    last = st.session_state.get(LAST_JOB)
    with st.expander("Start a training run", icon=":material/play_arrow:", expanded=last is not None), \
            st.form("train-form", border=False):
        a, b, c, d = st.columns(4)
        values = {
            "data.name": a.selectbox("Data set", ["digits", "synthclust"],
                                     help="digits: 8x8 handwritten digits, superclasses group similar digits. "
                                          "synthclust: the thesis's synthetic clustered vectors."),
            "data.target": b.selectbox("Train on", ["superclass", "label"],
                                       help="superclass: the thesis's setting, so the fine labels are subclasses for "
                                            "c1 and c2. label: the fine classes."),
            "model.name": c.selectbox("Model", ["vgg", "mlp"], help="vgg needs image data (digits)."),
            "train.epochs": d.number_input("Epochs", min_value=1, max_value=1000, value=30, step=1),
            "train.lr": a.number_input("Learning rate", min_value=0.0, value=0.05, step=0.01, format="%.4f",
                                       help="Typical values are 0.01 to 0.1 for SGD."),
            "train.batch_size": b.number_input("Batch size", min_value=1, max_value=65536, value=64, step=1),
            "train.seed": c.number_input("Seed", min_value=0, value=0, step=1,
                                         help="Seeds the initialisation and the batch order."),
            "run_id": d.text_input("Run id (optional)", placeholder="generated from data, model and time",
                                   help="Lowercase letters, digits, '.', '_' or '-'; at most 64 characters."),
            "train.augment": a.checkbox("Augment", help="+-1 pixel shifts for digits; no effect on synthclust."),
        }
        st.caption("Every other setting is the demo's (`clusterscope demo`): its base VGG run on digits, its SynthClust "
                   "run on synthclust, so a run started here compares with the demo's runs.")
        if st.form_submit_button("Start training", type="primary", icon=":material/rocket_launch:"):
            last = launch(values)
        if last:
            st.success(f"Started run **{last['run_id']}** (process {last['pid']}). It appears in the table below within "
                       "a few seconds and updates while it trains; it is analysed when training ends. "
                       f"Log: `{widgets.visitor(last['log'])}`", icon=":material/rocket_launch:")


def launch(values: dict) -> dict | None:
    """Validate and start the run; its job ({run_id, pid, log}) is remembered for this session."""
    if values["model.name"] == "vgg" and values["data.name"] == "synthclust":
        # launch_training validates the config alone; this pairing would fail in the child process, unseen
        st.error("Nothing was started: model.name 'vgg' needs image inputs; synthclust gives vectors. Choose mlp.",
                 icon=":material/error:")
        return None
    try:
        # the demo's settings for the data set first (model size, optimizer, schedule), then the form's values
        overrides = [*api.demo_base_overrides(values["data.name"]), *training_overrides(values)]
        job = api.launch_training(api.open_store(loaders.store_root()), overrides)
    except ClusterScopeError as exc:
        st.error(f"Nothing was started: {widgets.visitor(exc)}", icon=":material/error:")
        return None
    st.session_state.setdefault(LAUNCHED, {})[job["run_id"]] = time.time()
    st.session_state[LAST_JOB] = job
    return job


def waiting_for_launch(present: set[str]) -> bool:
    """Whether a run started from this page has not written its run.json yet (for a while after launch)."""
    launched = st.session_state.get(LAUNCHED, {})
    return any(r not in present and time.time() - t < WAIT_FOR_START_S for r, t in launched.items())


# ---------------------------------------------------------------- the runs


def run_links(run_id: str, analysed: bool) -> None:
    """Links that open the other pages on this run (disabled until the run is analysed)."""
    cols = st.columns(len(PAGES) + 1)
    for col, (path, label, icon) in zip(cols, PAGES.values(), strict=False):
        col.page_link(path, label=label, icon=icon, query_params={"run": run_id}, disabled=not analysed,
                      help=None if analysed else "Available once the run is analysed (`clusterscope analyze`).")
    if not analysed:
        cols[-1].caption("not analysed yet")


def run_card(run_id: str) -> None:
    with st.container(border=True):
        st.subheader(run_id)
        try:
            info = loaders.read_run(run_id)
            metrics = loaders.read_metrics(run_id)
        except ClusterScopeError as exc:
            st.error(f"Cannot read this run: {widgets.visitor(exc)}")
            return
        cfg = info.get("config", {})
        origin = info.get("origin") or {}
        how = (f"imported from {len(origin.get('sources') or [])} {origin.get('format')} checkpoint(s)"
               if origin.get("kind") == "imported" else
               f"{cfg.get('train', {}).get('optimizer')} lr {cfg.get('train', {}).get('lr')} · seed {info.get('seed')}")
        st.caption(
            f"{info['status']} · data **{cfg.get('data', {}).get('name')}** "
            f"(trained on {cfg.get('data', {}).get('target')} labels) · model **{cfg.get('model', {}).get('name')}** · "
            f"{how} · snapshots at epochs {', '.join(map(str, info.get('recorded_epochs', []))) or 'none yet'}"
        )
        run_links(run_id, bool(loaders.analysis_status(run_id)))
        if info.get("error"):
            st.error(f"The run failed: {widgets.visitor(info['error'])}")
        if metrics.empty:
            st.write("No epoch finished yet.")
            return
        left, right = st.columns(2)
        for col, metric, title in ((left, "accuracy", "Accuracy"), (right, "loss", "Loss")):
            fig = charts.style(charts.learning_curves(metrics, metric=metric, title=title), present=state.presenting(),
                               height=340)
            widgets.plot(fig, key=f"{metric[:3]}-{run_id}", container=col)


def hyperparameters(run_id: str) -> dict:
    """A run's key training choices from its run.json, so runs are told apart without their names."""
    try:
        cfg = loaders.read_run(run_id).get("config") or {}
    except ClusterScopeError:
        return {}
    model, train = cfg.get("model") or {}, cfg.get("train") or {}
    width = model.get("width_factor") if model.get("name") in ("vgg", "resnet") else model.get("width")
    return {"width": None if width is None else f"{width:g}" + ("x" if model.get("name") in ("vgg", "resnet") else ""),
            "lr": train.get("lr"), "augment": train.get("augment"), "optimizer": train.get("optimizer")}


def progress(runs: pd.DataFrame) -> pd.Series:
    """Share of its epochs each run has done; 1 for a finished run (an early stop ends it before its last epoch)."""
    done = runs["epochs_completed"].astype("Float64") / runs["epochs"].astype("Float64").where(runs["epochs"] > 0)
    return done.where(runs["status"] != "complete", 1.0).clip(0, 1).fillna(0.0).astype(float)


def runs_table(runs: pd.DataFrame) -> None:
    hp = pd.DataFrame([hyperparameters(r) for r in runs["run_id"]], index=runs.index,
                      columns=["width", "lr", "augment", "optimizer"])
    table = pd.concat([runs[["run_id", "status", "dataset", "target", "model"]], hp,
                       runs[["epochs_completed", "epochs", "train_accuracy", "test_accuracy", "generalization_gap"]]],
                      axis=1).assign(progress=progress(runs))
    table = table[["run_id", "status", "progress", *table.columns[2:-1]]]
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "run_id": "run",
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent",
                                                        help="Epochs done of the run's epochs; full once it is complete."),
            "target": st.column_config.TextColumn("trained on"),
            "width": st.column_config.TextColumn("width", help="MLP: units per layer; VGG/ResNet: width factor."),
            "lr": st.column_config.NumberColumn("lr", format="%g"),
            "epochs_completed": st.column_config.NumberColumn("epochs done"),
            "train_accuracy": st.column_config.NumberColumn("train acc.", format="percent"),
            "test_accuracy": st.column_config.NumberColumn("test acc.", format="percent"),
            "generalization_gap": st.column_config.NumberColumn("gap (train - test)", format="percent"),
        },
    )
    st.page_link(COMPARE_PAGE, label="Compare the analysed runs", icon=":material/compare_arrows:")


def overview(run_ids: list[str]) -> None:
    """Every run's test accuracy over training in one figure, first, so it is on the screen at 1280 x 720."""
    parts = []
    for run in run_ids:
        try:
            parts.append(loaders.read_metrics(run).assign(run_id=run))
        except ClusterScopeError:
            continue  # its card says why
    metrics = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if metrics.empty or not (metrics["split"] == "test").any():
        return
    fig = charts.accuracy_overview(metrics, run_ids, present=state.presenting())
    widgets.plot(fig, key="runs-overview")


def runs_view() -> None:
    jobs.jobs_panel("runs")
    runs = loaders.list_runs()
    demo = loaders.demo_status()
    if demo["building"]:
        done = sum(1 for r in demo["present"])
        st.progress(done / len(demo["runs"]), text=f"Building the demo store: {done} of {len(demo['runs'])} runs started")
    if waiting_for_launch(set(runs["run_id"])):
        st.caption("Waiting for the new run to start...")
    if runs.empty:
        empty_state(demo)
    else:
        overview(runs["run_id"].tolist())
        runs_table(runs)
        for run_id in runs["run_id"]:
            run_card(run_id)
    # Polling started because something was active; once nothing is, one full rerun stops it.
    if st.session_state.get("cs-polling") and not is_active():
        st.session_state["cs-polling"] = False
        st.rerun(scope="app")


def is_active() -> bool:
    runs = loaders.list_runs()
    return bool(loaders.demo_status()["building"] or (runs["status"] == "running").any()
                or waiting_for_launch(set(runs["run_id"])))


def page() -> None:
    st.title("Runs")
    training_form()
    # While something trains, re-read the store every few seconds; otherwise draw once.
    st.session_state["cs-polling"] = is_active()
    st.fragment(runs_view, run_every=3 if st.session_state["cs-polling"] else None)()


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
