"""Mechanisms: neuron-level training dynamics (winner-take-most, derivative signs) and layer rotation across runs
(SCIENCE.md 3.3, 3.4; section 6 items 6 to 8)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import loaders, state, widgets
from app.charts import mechanisms as cm
from app.charts.base import classes_are_superclasses, legend_below
from backend.api import ClusterScopeError

HOW_TO_RECORD = (
    "Run **{run}** recorded no training dynamics. Record them by training with `[dynamics] enabled = true`, e.g. the "
    "thesis's SynthClust experiment:\n\n```\nclusterscope train configs/mechanisms/synthclust_wtm.toml\n```\n"
    "or any config with `--set dynamics.enabled=true` (options: `dynamics.every`, `dynamics.probe_size`, "
    "`dynamics.units`, `dynamics.select`, `dynamics.layers`; see docs/config.md)."
)


def class_names(info: dict) -> tuple[list[str], list[str]]:
    """(names of the training targets, names of the fine labels = the known clusters)."""
    d = info.get("dataset") or {}
    labels = list(d.get("label_names") or [])
    targets = list(d.get("superclass_names") or []) if classes_are_superclasses(d.get("target")) else labels
    return targets, labels


def unit_ui(units: pd.DataFrame, run: str, layer: str) -> int:
    """The unit shown (``unit`` in the URL); units listed by the thesis's order (largest outgoing weight first)."""
    ids = units["unit"].astype(int).tolist()
    rows = units.set_index("unit")

    def label(u: int) -> str:
        r = rows.loc[u]
        parts = [f"unit {u}", f"rank {int(r['rank'])}"]
        if pd.notna(r["out_norm"]):
            parts.append(f"|w out| {r['out_norm']:.2f}")
        if pd.notna(r["wtm_last"]):
            parts.append(f"WTM {r['wtm_last']:.2f}")
        return " · ".join(parts)

    current = state.choice("unit", ids, default=ids[0])
    unit = st.sidebar.selectbox("Unit", ids, format_func=label, key=f"w-mech-unit-{run}-{layer}",
                                index=ids.index(current),
                                help="Ordered as in the thesis: largest outgoing-weight norm first (final WTM index "
                                     "when no checkpoint tells the outgoing weights).")
    state.remember(unit=unit)
    return int(unit)


def unit_panel_ui(run: str, layer: str, m: dict[str, pd.DataFrame], targets: list[str], labels: list[str]) -> None:
    unit = unit_ui(m["units"], run, layer)
    row = m["units"].set_index("unit").loc[unit]
    left, right = st.columns(2)
    with left:
        # half the page each: the run's unit on a line of its own and the legend under the plot keep the plot wide
        widgets.show(legend_below(cm.unit_curves(m["curves"], unit, class_names=targets, cluster_names=labels,
                                                 title=f"{layer} unit {unit}:<br>cluster means over training")),
                     f"{run}-{layer}-u{unit}-curves", "fig-mech-curves", context=run, legend="class")
    with right:
        widgets.show(legend_below(cm.final_histograms(m["final"], unit, class_names=targets,
                                                      title=f"{layer} unit {unit}:<br>final pre-activations")),
                     f"{run}-{layer}-u{unit}-final", "fig-mech-final", context=run, legend="class")
    if pd.notna(row["wtm_last"]):
        st.caption(f"Winner-take-most index of this unit: {row['wtm_first']:.2f} at the first recording, "
                   f"{row['wtm_last']:.2f} at the last. Above 1 the unit separates clusters of one class more than it "
                   "separates the classes (SCIENCE.md 3.4, proposed). In the thesis (finding 7), clusters of the "
                   "unit's positive class that start higher are pushed up and the others down, so that class's "
                   "final histogram turns bimodal.")
    else:
        st.caption("The WTM index needs known clusters inside each class (train on superclasses, e.g. SynthClust).")


def layers_panel_ui(run: str, layers: list[str]) -> None:
    hists, fractions, share = {}, {}, None
    for layer in layers:
        try:
            m = loaders.mechanisms(run, layer)
        except ClusterScopeError as exc:
            widgets.error_panel(exc, what=f"Training dynamics of {layer}")
            continue
        hists[layer], fractions[layer] = m["sign_hist"], m["wtm_fraction"]
        if share is None and not m["loss_share"].empty:
            share = m["loss_share"]
    if hists:
        widgets.show(cm.sign_histograms(hists, title=f"Average derivative sign per layer ({run})"),
                     f"{run}-sign-histograms", "fig-mech-signs", legend="layer")
        st.caption("s̄ = mean over recordings of sign(dLoss/d activation) per (probe sample, unit), zeros ignored. "
                   "-1: raising the unit's activation always lowered that sample's loss ('high' category); +1: the "
                   "opposite. Near the output, the thesis finds s̄ piled up at ±1 (finding 10).")
    if share is not None:
        widgets.show(cm.loss_share_chart(share, title=f"Loss share of easy and difficult examples ({run})"),
                     f"{run}-loss-share", "fig-mech-share", legend="examples")
        st.caption("Difficult = closer to the other class's centroids than to its own (SCIENCE.md 3.4). "
                   "In the thesis, winner-take-most starts when the difficult share catches up with the easy one.")
    if fractions and any(f["fraction"].notna().any() for f in fractions.values()):
        widgets.show(cm.wtm_chart(fractions, title=f"Winner-take-most index per layer and epoch ({run})"),
                     f"{run}-wtm", "fig-mech-wtm", legend="layer")
        st.caption("WTM index = the largest spread of a class's cluster means / the gap between class means (SCIENCE.md "
                   "3.4, proposed). At initialisation the classes are not yet separated, so the gap is near 0 and the "
                   "index is large; during training it falls, and stays above 1 only for units that pull the clusters "
                   "of one class apart (winner-take-most).")


def dynamics_ui(run: str, info: dict) -> None:
    st.subheader("Winner-take-most: training dynamics of single units")
    try:
        layers = loaders.dynamics_layers(run)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Training dynamics")
        return
    if not layers:
        st.info(HOW_TO_RECORD.format(run=run), icon=":material/info:")
        return
    layer = widgets.layer_picker(layers, container=st.sidebar)
    targets, labels = class_names(info)
    try:
        m = loaders.mechanisms(run, layer)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what=f"Training dynamics of {layer}")
        return
    unit_panel_ui(run, layer, m, targets, labels)
    layers_panel_ui(run, layers)


def default_rotation_runs(run: str, runs: pd.DataFrame) -> list[str]:
    """The chosen run and up to five others trained on the same data set with the same model."""
    me = runs[runs["run_id"] == run]
    if me.empty:
        return [run]
    same = runs[(runs["dataset"] == me["dataset"].iloc[0]) & (runs["model"] == me["model"].iloc[0]) & (runs["run_id"] != run)]
    return [run] + same["run_id"].head(5).tolist()


def rotation_ui(run: str) -> None:
    st.subheader("Layer rotation across runs")
    runs = loaders.list_runs()
    ids = runs["run_id"].tolist()
    chosen = state.choices("rot", ids) or default_rotation_runs(run, runs)
    picked = st.multiselect("Runs", ids, default=chosen, key="w-rot",
                            help="One panel per run; compare e.g. the four Layca learning rates of the rotation toy.")
    state.remember(rot=picked or None)
    if not picked:
        st.caption("Choose runs to compare their layer-rotation curves.")
        return
    try:
        rot = loaders.rotation_runs(picked)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Layer rotation")
        return
    missing = [r for r in picked if r not in set(rot["run_id"])]
    if missing:
        st.info("No layer rotation yet for " + ", ".join(f"**{r}**" for r in missing) + ": it is computed from the "
                "checkpoints by `clusterscope analyze <run>`, measured from the epoch-0 checkpoint (the initial "
                "weights); a run without one (e.g. imported without it) has none.")
    if rot.empty:
        return
    widgets.show(cm.rotation_small_multiples(rot), "rotation-small-multiples", "fig-mech-rotation", legend="layer")
    st.caption("Rotation = 1 - cosine between a kernel's initial and current weights; colour: depth (dark = first "
               "layer). Thesis rule of thumb (finding 13): the larger the final rotation of every layer, the better "
               "the test accuracy; Δ is the gap to the best run shown.")


def page() -> None:
    st.title("Mechanisms")
    st.caption("How single units learn (thesis ch. 3) and how fast each layer's weights rotate (ch. 4). "
               "Training dynamics are recorded on a fixed probe batch every few iterations when `[dynamics]` is "
               "enabled.")
    chosen = widgets.chosen_run()
    if chosen is None:
        return
    run, info = chosen
    dynamics_ui(run, info)
    rotation_ui(run)


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
