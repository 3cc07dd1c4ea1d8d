"""The Compare page's small multiples: one layer at one epoch, one embedding per run, side by side.

The controls sit above the grid (presentation mode hides them with the page's other widgets); every choice
lives in the URL (``mlayer``, ``mepoch``, ``mproj``, ``mcolour``). Figures: app/charts/multiples.py.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import loaders, state, widgets
from app.charts import compare as charts_compare
from app.charts import multiples as charts_multiples
from app.charts.embeddings import LEGEND_TITLES, PROJECTIONS, colour_map
from backend.api import ClusterScopeError

POINTS_PER_PANEL = 2000  # a stratified sample per run: nine panels of 2,000 points draw at once
COLOURINGS = {"class": "class (trained on)", "fine": "subclass (fine label)"}
LAST = "last"  # the epoch choice "each run's last analysed epoch", when the runs share none


def analysed_layers(run_ids: list[str]) -> dict[str, pd.DataFrame]:
    """run_id -> its ``layers`` table (layer, epoch, depth), for the runs whose table can be read."""
    out = {}
    for run in run_ids:
        try:
            table = loaders.layer_scores(run).table
        except ClusterScopeError:
            continue
        if not table.empty:
            out[run] = table
    return out


def layer_ui(layers: dict[str, pd.DataFrame]) -> str | None:
    """The layer choice: a name every run has analysed, else (other architectures) a depth position."""
    options = charts_multiples.shared_layers(layers)
    if not options:
        options = charts_multiples.depth_positions(layers)
        if not options:
            st.info("These runs have no analysed layer in common.")
            return None
        st.caption("These runs share no layer name (different architectures): layers are matched by their "
                   "depth position, counted from the output.")
    default = options[-1] if not options[0].startswith(charts_multiples.DEPTH_PREFIX) else options[0]
    current = state.choice("mlayer", options, default=default)
    chosen = st.selectbox("Layer", options, index=options.index(current), key="w-cmp-mlayer",
                          format_func=charts_multiples.layer_label,
                          help="Layers every chosen run has analysed (ReLU layers, forward order).")
    state.remember(mlayer=chosen)
    return chosen


def epoch_ui(epochs: list[int]) -> int | str:
    """A shared epoch, or LAST (each run's last analysed epoch) when the runs share none."""
    options: list[int | str] = [*epochs] if epochs else [LAST]
    current = state.choice("mepoch", options, default=options[-1])
    chosen = st.selectbox("Epoch", options, index=options.index(current), key="w-cmp-mepoch",
                          format_func=lambda e: "each run's last" if e == LAST else str(e),
                          help="Epochs at which every chosen run has analysed this layer.")
    state.remember(mepoch=chosen)
    return chosen


def view_ui() -> tuple[str, str]:
    """(projection, colouring), as on the Embeddings page."""
    proj = state.choice("mproj", list(PROJECTIONS), default="umap")
    projection = st.radio("Projection", list(PROJECTIONS), index=list(PROJECTIONS).index(proj), horizontal=True,
                          key="w-cmp-mproj", format_func=PROJECTIONS.get)
    col = state.choice("mcolour", list(COLOURINGS), default="class")
    colour = st.radio("Colour by", list(COLOURINGS), index=list(COLOURINGS).index(col), horizontal=True,
                      key="w-cmp-mcolour", format_func=COLOURINGS.get)
    state.remember(mproj=projection, mcolour=colour)
    return projection, colour


def panels(table: pd.DataFrame, resolved: dict[str, str], epochs: dict[str, int], colour: str
           ) -> tuple[list[charts_multiples.Panel], list[dict[str, str]]]:
    """Each run's panel and colour map (runs whose points cannot be read are left out, with a warning)."""
    hparams = table.set_index("run_id")[charts_compare.hyperparameter_columns(table)]
    accuracy = table.set_index("run_id")["test_accuracy"]
    out, maps = [], []
    for run, layer in resolved.items():
        try:
            df = loaders.embedding_view(run, layer, epochs[run], colour, None, POINTS_PER_PANEL)[0]
        except ClusterScopeError as exc:
            st.warning(f"{run} is left out: {widgets.visitor(exc)}", icon=":material/warning:")
            continue
        named = f"{layer} · epoch {epochs[run]}" if len(set(resolved.values())) > 1 or len(set(epochs.values())) > 1 else ""
        detail = " · ".join(d for d in (named, charts_multiples.differing(hparams, run)) if d)
        out.append(charts_multiples.Panel(charts_multiples.panel_title(run, accuracy.get(run), detail), df))
        maps.append(colour_map(df, loaders.read_run(run)["dataset"], colour) or {})
    return out, maps


def section(table: pd.DataFrame, run_ids: list[str], present: bool) -> None:
    """The section: controls, then one embedding per run (at most charts_multiples.MAX_PANELS)."""
    st.subheader("Side by side: one layer, one epoch, every run")
    shown = run_ids[:charts_multiples.MAX_PANELS]
    if len(run_ids) > len(shown):
        st.caption(f"Showing the first {len(shown)} of {len(run_ids)} runs (at most {charts_multiples.MAX_PANELS} "
                   f"panels stay readable); left out: {', '.join(run_ids[len(shown):])}. Choose fewer runs to pick which.")
    layers = analysed_layers(shown)
    if len(layers) < 2:
        st.info("Side-by-side embeddings need at least two runs with analysed layers.")
        return
    left, mid, right = st.columns([2, 1, 3])
    with left:
        choice = layer_ui(layers)
    if choice is None:
        return
    resolved = charts_multiples.resolve_layers(layers, choice)
    with mid:
        epoch = epoch_ui(charts_multiples.shared_epochs(layers, resolved))
    with right:
        projection, colour = view_ui()
    epochs = charts_multiples.last_epochs(layers, resolved) if epoch == LAST else dict.fromkeys(resolved, int(epoch))
    if epoch == LAST:
        st.caption("These runs share no analysed epoch of this layer: each panel shows its run's last analysed epoch.")
    parts, maps = panels(table, resolved, epochs, colour)
    if not parts:
        return
    label = charts_multiples.layer_label(choice)
    title = f"{label}{'' if epoch == LAST else f' · epoch {epoch}'} · {PROJECTIONS[projection]}"
    fig = charts_multiples.embedding_grid(parts, projection=projection, colours=charts_multiples.shared_colours(maps),
                                          legend_title=LEGEND_TITLES[colour], title=title, present=present)
    widgets.plot(fig, key="compare-multiples")
    widgets.figure_downloads(fig, "side-by-side", key="compare-multiples", legend=LEGEND_TITLES[colour])
    st.caption(f"Each panel: up to {POINTS_PER_PANEL:,} probe samples of one run (stratified by class), in that run's "
               "own projection (axes are not comparable between panels). One colour per category in every panel; "
               "a click on a legend entry hides it everywhere.")
