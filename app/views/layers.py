"""Layers: every score of every (layer, epoch), layer rotation and network-level measures (SCIENCE.md 3.3, 6.4, 6.8)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import loaders, state, widgets
from app.charts import layers as cl
from backend import api
from backend.api import ClusterScopeError

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
    params = {"run": run, "layer": cell[0], "epoch": str(cell[1])} | ({"present": "1"} if state.presenting() else {})
    st.page_link(EMBEDDINGS, label=label, icon=":material/scatter_plot:", query_params=params,
                 help=f"Opens {state.link('embeddings', **params)}")


def layer_k_ui(run: str, layers: pd.DataFrame) -> None:
    """The k of the layer-wise c1 / c3 (``analysis.layer_top_k``) against each layer's units, flagged above 10 %."""
    k = loaders.analysis_params(run).get("layer_top_k")
    if k is None:
        return
    units = {str(r.layer): int(r.n_units) for r in layers.drop_duplicates("layer").itertuples() if pd.notna(r.n_units)}
    sizes = sorted(set(units.values()))
    span = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    st.caption(f"k = {int(k)}: the mean of each layer's top {int(k)} units (analysis.layer_top_k); layers hold {span} units.")
    warning = api.layer_k_warning(int(k), units)
    if warning:
        st.warning(warning, icon=":material/warning:")


def heatmap_ui(run: str, layers: pd.DataFrame, reason: str | None) -> None:
    score = score_ui(layers)
    if reason:
        st.caption("Not offered: c1, c2, subclass purity, ARI/NMI vs subclass and the WTM fraction. " + reason)
    if score in ("c1", "c3"):
        layer_k_ui(run, layers)
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


NOISE_FLOOR_HELP = "c1 or c2 with subclasses shuffled within superclasses: the value at chance (SCIENCE.md 3.1)."


def network_ui(run: str, lr_steps: list[int], reason: str | None) -> None:
    st.subheader("Network-level measures")
    if reason:
        st.info("c1 and c2 are empty for this run. " + reason, icon=":material/info:")
    try:
        network = loaders.analysis(run, "network")
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Network measures")
        return
    widgets.show(cl.network_measures(network, lr_steps=lr_steps, title=f"c1-c4 over training ({run})"),
                 f"{run}-network-measures", "fig-network", legend="measure")
    last = network.sort_values("epoch").iloc[-1] if not network.empty else None
    if last is not None:
        network_table_ui(last)
        st.caption(k_text(last) + (" Dashed vertical lines: learning-rate drops." if lr_steps else ""))
        warning = api.k_warning(last)
        if warning:
            st.warning(warning, icon=":material/warning:")


def units_k(k: float, units: float) -> str:
    """'30 units of 96 (31 %)': a top-k mean's k over units, with its share of the network when known."""
    share = f" of {int(units)} ({min(float(k), float(units)) / float(units):.0%})" if pd.notna(units) and units > 0 else ""
    return f"{int(k)} units{share}"


def k_text(row: pd.Series) -> str:
    """Which k each top-k mean used, with the share of the network's units for c1 and c3 (SCIENCE.md 3.1)."""
    units = row.get("n_units")
    return (f"Top-k means with k = {units_k(row['k_c1'], units)} (c1), {int(row['k_c2'])} layer(s) (c2), "
            f"{units_k(row['k_c3'], units)} (c3), {int(row['k_c4'])} layer(s) (c4); SCIENCE.md 3.1.")


def network_table_ui(row: pd.Series) -> None:
    """The last analysed epoch's c1..c4, with c1's and c2's noise floor and c1's and c3's k beside them."""
    def value(name: str) -> float | None:
        return float(row[name]) if name in row and pd.notna(row[name]) else None

    table = pd.DataFrame([
        {"measure": "c1", "value": value("c1"), "noise floor": value("c1_shuffled"), "k": units_k(row["k_c1"], row.get("n_units"))},
        {"measure": "c2", "value": value("c2"), "noise floor": value("c2_shuffled"), "k": f"{int(row['k_c2'])} layer(s)"},
        {"measure": "c3", "value": value("c3"), "noise floor": None, "k": units_k(row["k_c3"], row.get("n_units"))},
        {"measure": "c4", "value": value("c4"), "noise floor": None, "k": f"{int(row['k_c4'])} layer(s)"},
    ])
    st.dataframe(table, hide_index=True, column_config={
        "value": st.column_config.NumberColumn(f"epoch {int(row['epoch'])}", format="%.3f"),
        "noise floor": st.column_config.NumberColumn(format="%.3f", help=NOISE_FLOOR_HELP)})
    st.caption("Noise floor: the same measure on the same activations with the subclass labels shuffled within "
               "each superclass (fixed seed, analysis.seed), i.e. what c1 and c2 give when subclasses mean nothing "
               "(SCIENCE.md 3.1, \"Invariances\"; c2's is about 0). A value near its floor is chance level.")


def page() -> None:
    st.title("Layers")
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
    reason = api.intraclass_reason(info)
    if layers is not None:
        heatmap_ui(run, layers, reason)
    rotation_ui(run, info, lr_steps)
    network_ui(run, lr_steps, reason)


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
