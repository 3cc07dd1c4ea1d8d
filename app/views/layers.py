"""Layers: every score of every (layer, epoch), layer rotation and network-level measures (SCIENCE.md 3.3, 6.4, 6.8)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import charts_layers as cl
from app import loaders, state, widgets
from backend.api import ClusterScopeError

st.title("Layers")
PRESENT = state.presenting()
# The Embeddings page sits in the same folder as this one (st.page_link resolves the path to its registered page).
EMBEDDINGS = Path(__file__).with_name("embeddings.py")


def score_ui(layers: pd.DataFrame) -> str:
    """The score shown in the heatmap (``score`` in the URL); scores undefined for this run are left out."""
    options = [s for s in cl.SCORES if s in layers and layers[s].notna().any()] or list(cl.SCORES)
    current = state.choice("score", options)
    score = st.selectbox("Score", options, index=options.index(current), key="w-score",
                         format_func=lambda s: f"{cl.SCORES[s].label} ({cl.SCORES[s].unit})",
                         help="Cluster scores (UMAP + HDBSCAN, SCIENCE.md 3.5) and layer-wise c1-c4 (3.1).")
    state.remember(score=score)
    st.caption(cl.SCORES[score].help)
    return score


def clicked_cell(event: object) -> tuple[str, int] | None:
    """The (layer, epoch) of a clicked heatmap cell, from the transparent marker's customdata."""
    points = (getattr(event, "selection", None) or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if data:
            return str(data[0]), int(float(data[1]))
        if "x" in point and "y" in point:
            return str(point["y"]), int(float(point["x"]))
    return None


def open_in_embeddings(run: str, cell: tuple[str, int], label: str) -> None:
    params = {"run": run, "layer": cell[0], "epoch": str(cell[1])} | ({"present": "1"} if PRESENT else {})
    st.page_link(EMBEDDINGS, label=label, icon=":material/scatter_plot:", query_params=params,
                 help=f"Opens {state.link('embeddings', **params)}")


def heatmap_ui(run: str, layers: pd.DataFrame) -> None:
    score = score_ui(layers)
    best = cl.best_cell(layers, score)
    fig = cl.score_heatmap(layers, score, title=f"{cl.SCORES[score].label} per layer and epoch ({run})")
    event = widgets.show(fig, f"{run}-{score}-heatmap", f"heat-{run}-{score}", on_select="rerun", selection_mode="points")
    cell = clicked_cell(event)
    if cell:
        open_in_embeddings(run, cell, f"Open {cell[0]} at epoch {cell[1]} in Embeddings")
    else:
        st.caption("Click a cell to open that layer and epoch in Embeddings.")
    if best:
        word = "highest" if cl.SCORES[score].higher_is_better else "lowest"
        open_in_embeddings(run, best, f"Open {best[0]} at epoch {best[1]} ({word} {cl.SCORES[score].label}) in Embeddings")


def rotation_ui(run: str, info: dict, lr_steps: list[int]) -> None:
    st.subheader("Layer rotation and accuracy")
    try:
        rotation = loaders.analysis(run, "rotation")
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Layer rotation")
        return
    try:
        metrics = loaders.read_metrics(run)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Accuracy curves")
        metrics = pd.DataFrame(columns=["epoch", "split", "accuracy"])
    acc = (info.get("final") or {}).get("test_accuracy")
    title = f"Layer rotation and accuracy ({run}" + (f", test accuracy {acc:.1%})" if acc is not None else ")")
    widgets.show(cl.rotation_and_accuracy(rotation, metrics, lr_steps=lr_steps, title=title), f"{run}-rotation", "fig-rotation",
                 legend="layer")
    st.caption("Rotation = 1 - cosine between a kernel's initial and current weights (biases and batch-norm "
               "parameters excluded); 1 means orthogonal to the initialisation. Colour: depth, dark = first layer.")


def network_ui(run: str, lr_steps: list[int]) -> None:
    st.subheader("Network-level measures")
    try:
        network = loaders.analysis(run, "network")
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Network measures")
        return
    widgets.show(cl.network_measures(network, lr_steps=lr_steps, title=f"c1-c4 over training ({run})"),
                 f"{run}-network-measures", "fig-network", legend="measure")
    ks = network.iloc[-1] if not network.empty else None
    if ks is not None and {"k_c1", "k_c2", "k_c3", "k_c4"} <= set(network):
        st.caption(f"Top-k means with k = {int(ks['k_c1'])} units (c1), {int(ks['k_c2'])} layer(s) (c2), "
                   f"{int(ks['k_c3'])} units (c3), {int(ks['k_c4'])} layer(s) (c4); SCIENCE.md 3.1."
                   + (" Dashed lines: learning-rate drops." if lr_steps else ""))


def page() -> None:
    chosen = widgets.chosen_run(prefer=loaders.has_analysis)
    if chosen is None:
        return
    run, info = chosen
    lr_steps = [int(s) for s in ((info.get("config") or {}).get("train") or {}).get("lr_steps") or []]
    try:
        layers = loaders.analysis(run, "layers")
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Layer scores")
        layers = None
    if layers is not None and not widgets.analysis_state_ui(run, info, loaders.snapshots(run), layers):
        return
    if layers is not None:
        heatmap_ui(run, layers)
    rotation_ui(run, info, lr_steps)
    network_ui(run, lr_steps)


page()
