"""Neurons: one layer's units at one epoch, and one unit's drill-down over training (SCIENCE.md 3.1, 3.4, 6.5)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import loaders, state, widgets
from app.charts import base as charts
from app.charts import neurons as cn
from backend import api
from backend.api import ClusterScopeError


def unit_ui(units: pd.DataFrame, run: str, layer: str) -> int:
    """The chosen unit: from the URL (``unit``), else the most selective unit. One widget per layer,
    so a unit id valid in one layer is never forced onto another."""
    ids = units["unit"].astype(int).tolist()
    key = f"w-unit-{run}-{layer}"
    if st.session_state.get(key) in ids:  # set by a click in the units table (or by the widget itself)
        unit = st.sidebar.selectbox("Unit", ids, key=key, help="Click a row of the units table to choose a unit.")
    else:
        st.session_state.pop(key, None)
        current = state.choice("unit", ids, default=cn.default_unit(units))
        unit = st.sidebar.selectbox("Unit", ids, index=ids.index(current), key=key,
                                    help="Click a row of the units table to choose a unit.")
    state.remember(unit=unit)
    return int(unit)


def units_table_ui(units: pd.DataFrame, labels: pd.DataFrame, unit: int, key: str, unit_key: str) -> None:
    table = cn.units_table(units, labels)

    def chosen() -> None:  # runs before the next rerun, so the Unit picker can still be set
        rows = st.session_state[key].selection.rows
        if rows:
            st.session_state[unit_key] = int(table["unit"].iloc[rows[0]])

    nc = st.column_config.NumberColumn
    current = table.index[table["unit"] == unit].tolist()
    st.dataframe(table, hide_index=True, width="stretch", height=300, on_select=chosen,
                 selection_mode="single-row", key=key, selection_default={"selection": {"rows": current}},
                 column_config={
                     "c1": nc("c1", format="%.2f", help="Best subclass selectivity (pre-activations; SCIENCE.md 3.1)."),
                     "c3": nc("c3", format="%.2f", help="Best within-class / whole-data std ratio (SCIENCE.md 3.1)."),
                     "hap": nc("purity", format="percent", help="Class purity of the unit's highest activations "
                               "(the samples where it fires at or above its quantile; empty for a unit that never "
                               "fires; SCIENCE.md 3.4, proposed)."),
                     "chance": nc("chance", format="percent", help="Purity by chance: share of the largest class."),
                     "wtm": nc("WTM", format="%.2f", help="Winner-take-most index; > 1 separates clusters of one "
                               "class more than it separates classes (SCIENCE.md 3.4, proposed)."),
                 })


def focus_ui(run: str, unit_row: pd.Series, labels: pd.DataFrame, intraclass: bool) -> tuple[int | None, str]:
    """What the distributions compare: (focus (sub)class id, or None for every class; its level).
    Subclasses only when the run was trained on superclasses (``intraclass``: c1 is defined)."""
    hier = intraclass and cn.has_subclasses(labels)
    level = "sub" if hier else "cls"
    label_names = cn.names(labels, level)
    best = int(unit_row["c1_subclass"]) if hier else int(unit_row["hap_class"])
    left, right = st.columns([2, 3])
    compare = left.segmented_control("Compare", ["focus vs rest", "every class"], default="focus vs rest",
                                     required=True, key="w-compare")
    auto = "the unit's best (c1)" if hier else "the unit's top class (purity)"
    focus = right.selectbox("Focus " + ("subclass" if hier else "class"), [-1, *label_names], key=f"w-focus-{run}",
                            format_func=lambda o: auto if o == -1 else label_names[o],
                            disabled=compare == "every class")
    if compare == "every class" or (focus == -1 and best < 0):  # a unit that never fires has no best (sub)class
        return None, level
    return (best if focus == -1 else int(focus)), level


def distributions_ui(run: str, layer: str, epoch: int, unit: int, epochs: list[int], units: pd.DataFrame,
                     labels: pd.DataFrame, intraclass: bool) -> None:
    focus, level = focus_ui(run, units[units["unit"] == unit].iloc[0], labels, intraclass)
    shown = cn.pick_epochs(epochs, keep=epoch)
    columns = {}
    try:
        for e in shown:
            ids, acts = loaders.activations(run, layer, e)
            columns[e] = (ids, acts[:, unit])
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Activations")
        return
    colours = charts.category_colours(list(cn.names(labels, "cls").values()))
    fig = cn.distributions_over_epochs(cn.unit_values(columns, labels), focus=focus, level=level,
                                       class_colours=colours, title=f"{layer} unit {unit}: pre-activations over training")
    widgets.show(fig, f"{run}-{layer}-u{unit}-distributions", "fig-dist", context=f"{run} · epoch {epoch}",
                 legend="samples")
    st.caption(f"Training probe samples; {len(shown)} of {len(epochs)} recorded epochs. "
               "Values below the dotted line are cut to 0 by the ReLU.")


def top_images_ui(run: str, layer: str, epoch: int, unit: int, labels: pd.DataFrame, samples: pd.DataFrame,
                  unit_row: pd.Series) -> None:
    st.subheader(f"Top-activating images at epoch {epoch}")
    try:
        ids, values = loaders.activations(run, layer, epoch)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Activations")
        return
    top = cn.top_samples(ids, values[:, unit], labels, k=16)
    thumbs = samples.set_index("sample_id")["thumbnail"] if "thumbnail" in samples else pd.Series(dtype=object)
    names = [(f"{r.sub_name} ({r.sup_name})" if r.sup >= 0 else r.cls_name) + f" · {r.value:.2f}"
             for r in top.itertuples()]
    images = [thumbs.get(s) for s in top["sample_id"]]
    if images and all(isinstance(b, bytes) and b for b in images):
        for start in range(0, len(images), 4):
            for col, image, name in zip(st.columns(4), images[start:start + 4], names[start:start + 4], strict=False):
                col.image(image, caption=name, width="stretch")
    else:
        st.caption("This dataset has no image thumbnails; the top samples are listed instead.")
        st.dataframe(top[["sample_id", "cls_name", "sub_name", "sup_name", "value"]], hide_index=True)
    st.caption("Highest pre-activations among the training probe samples; label (superclass) · value.")
    if cn.has_subclasses(labels):
        best_subclass_note(unit_row, top, cn.names(labels, "sub"))


def best_subclass_note(unit_row: pd.Series, top: pd.DataFrame, sub_names: dict[int, str]) -> None:
    """Say what the unit's best subclass is when its top images belong to other subclasses: two measures."""
    best = int(unit_row["c1_subclass"])
    if best < 0 or best in set(top["sub"].astype(int)):
        return
    others = ", ".join(map(str, top["sub_name"].value_counts().index[:3]))
    st.info(f"The unit's **best subclass** is **{sub_names.get(best, best)}**: the subclass it is most selective "
            f"for (highest c1, SCIENCE.md 3.1), i.e. whose *mean* pre-activation stands highest above the rest of "
            f"its superclass, in units of their spreads. The top images are the few *single* highest activations, "
            f"here from {others}: a unit can respond most to a few samples of other classes while singling out "
            "one subclass within its own.",
            icon=":material/info:")


def history_ui(run: str, layer: str, epoch: int, unit: int, epochs: list[int]) -> None:
    rows, failed = [], []
    for e in epochs:
        try:
            units = loaders.analysis(run, "units", layer, e)
        except ClusterScopeError as exc:
            failed.append(exc)
            continue
        rows.append(units[units["unit"] == unit])
    if failed:
        widgets.error_panel(failed[0], what=f"Unit scores ({len(failed)} epoch(s) unreadable)")
    if rows:
        fig = cn.unit_score_lines(pd.concat(rows, ignore_index=True), epoch=epoch,
                                  title=f"{layer} unit {unit}: scores over training")
        widgets.show(fig, f"{run}-{layer}-u{unit}-scores", "fig-scores", context=run, legend="score")


def best_neurons_ui(run: str, epoch: int, layers: list[str], labels: pd.DataFrame) -> None:
    st.subheader(f"Best neuron per subclass at epoch {epoch}")
    try:
        units = pd.concat([loaders.analysis(run, "units", layer, epoch) for layer in layers], ignore_index=True)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Units tables")
        return
    best = cn.best_neuron_per_subclass(units, cn.names(labels, "sub"))
    left, right = st.columns([3, 2])
    with left:
        widgets.show(cn.best_neuron_histogram(best, title="Best-neuron c1 per subclass"),
                     f"{run}-e{epoch}-best-neurons", "fig-best", context=f"{run} · epoch {epoch}")
    best["open"] = [state.link("neurons", run=run, layer=r.layer, epoch=epoch, unit=r.unit) for r in best.itertuples()]
    right.dataframe(best[["subclass_name", "c1", "layer", "unit", "open"]], hide_index=True, height=300,
                    column_config={"subclass_name": "subclass", "c1": st.column_config.NumberColumn(format="%.2f"),
                                   "open": st.column_config.LinkColumn("neuron", display_text="open")})
    st.caption("Per subclass, the largest c1 among the units (all analysed layers) whose best subclass it is, an "
               "approximation of max over all units of sel(n, i); a subclass that is no unit's best is missing. "
               "The 'open' link shows that neuron in a new tab.")


def page() -> None:
    st.title("Neurons")
    present = state.presenting()
    chosen = widgets.chosen_run(prefer=loaders.has_analysis)
    if chosen is None:
        return
    run, info = chosen
    try:
        snaps = loaders.snapshots(run)
        samples = loaders.read_samples(run, thumbnails=True)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what=f"Run {run}")
        return
    try:
        analysed = loaders.analysis(run, "layers")[["layer", "epoch"]]
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Analysis index (layers table)")
        analysed = snaps[["layer", "epoch"]]  # fall back to the snapshots: each panel reports what is missing
    if not widgets.analysis_state_ui(run, info, snaps, analysed):
        return
    order = [layer["name"] for layer in info.get("layers", [])]
    layers = sorted(set(analysed["layer"]), key=lambda n: order.index(n) if n in order else len(order))
    layer = widgets.layer_picker(layers, container=st.sidebar)
    epochs = sorted(int(e) for e in analysed.loc[analysed["layer"] == layer, "epoch"])
    epoch = widgets.epoch_picker(epochs, container=st.sidebar)
    labels = cn.sample_labels(samples, info.get("dataset") or {})
    try:
        units = loaders.analysis(run, "units", layer, epoch)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what=f"Units of {layer} at epoch {epoch}")
        return
    unit = unit_ui(units, run, layer)
    if not present:  # the table is the unit picker: a control, so presentation mode leaves the room to the figures
        st.caption(f"Run **{run}** · layer **{layer}** ({len(units)} units) · epoch **{epoch}**. "
                   "Click a row to choose a unit; click a column header to sort.")
        units_table_ui(units, labels, unit, key=f"units-{run}-{layer}-{epoch}", unit_key=f"w-unit-{run}-{layer}")
    reason = api.intraclass_reason(info)
    if reason and not present:
        st.caption("The c1, subclass and WTM columns are empty. " + reason)
    if not present:  # the figures' titles name the unit
        st.header(f"Unit {unit}")
    distributions_ui(run, layer, epoch, unit, epochs, units, labels, reason is None)
    left, right = st.columns(2)
    with left:
        top_images_ui(run, layer, epoch, unit, labels, samples, units[units["unit"] == unit].iloc[0])
    with right:
        history_ui(run, layer, epoch, unit, epochs)
    if reason is None and cn.has_subclasses(labels):
        best_neurons_ui(run, epoch, [n for n in layers if epoch in set(analysed.loc[analysed["layer"] == n, "epoch"])],
                        labels)


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
