"""The Embeddings page's "what changed" section (issue 17, SCIENCE.md 7): at the chosen epoch, the samples whose
neighbourhood in the layer moved most since the previous recorded epoch, and the samples whose prediction flipped,
with thumbnails and a button to select them. Every count is over the recorded epochs only, and says so."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd
import streamlit as st

from app import loaders, loaders_changes, widgets
from app.views.geometry_genealogy import class_names
from backend.api import ClusterScopeError

Select = Callable[[str, Iterable[int]], None]
RECORDED = "counted over the recorded epochs only: a change undone between two snapshots is not seen"
# benchmarks/README.md, change_floor.py: the same synthetic 10,000 x 512 snapshot analysed with two seeds
FLOOR = ("From 4,096 embedded samples on, the neighbours come from an approximate graph (NN-descent, analysis.change_space "
         "\"pca\"): an unchanged neighbourhood scores a floor of about 0.003 on average (0 for most samples).")


def what_changed_ui(run: str, info: dict, layer: str, epoch: int, *, select: Select) -> None:
    st.subheader(f"What changed at epoch {epoch}")
    try:
        change = loaders_changes.neighbour_change(run, layer, epoch)
        flips = loaders_changes.prediction_flips(run, epoch)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Cannot list what changed")
        return
    labels = loaders.read_samples(run)[["sample_id", "label_name", "superclass_name"]].set_index("sample_id")
    movers_ui(run, layer, epoch, change, flips, labels, select)
    flips_ui(run, info, epoch, flips, labels, select)
    events_caption(run)


def movers_ui(run: str, layer: str, epoch: int, change: pd.DataFrame, flips: pd.DataFrame, labels: pd.DataFrame,
              select: Select) -> None:
    if change.empty:
        st.caption(f"No neighbourhood change for {layer} at epoch {epoch}: it is the layer's first recorded epoch, or "
                   f"the run was analysed before this measure existed (run `clusterscope analyze {run}`).")
        return
    n = int(st.number_input("Samples that moved most", 1, 200, 12, key="w-changed-n",
                            help="Ranked by neighbourhood change: the Jaccard distance between the sample's k nearest "
                                 "neighbours in the layer (not the 2-D picture) at the previous recorded epoch and at this "
                                 "one: by default those of the analysis's own neighbour graph on the layer's PCA "
                                 "components (analysis.change_space, docs/config.md)."))
    prev = int(change["previous_epoch"].iloc[0])
    top = change.nlargest(n, "neighbour_change").join(labels, on="sample_id")
    top["flipped"] = top["sample_id"].isin(flips["sample_id"])
    thumbs = loaders.read_samples(run, thumbnails=True).set_index("sample_id")["thumbnail"]
    st.image([thumbs[i] for i in top["sample_id"]], width=56,
             caption=[f"{i} · {c:.2f}" for i, c in zip(top["sample_id"], top["neighbour_change"], strict=True)])
    st.dataframe(top, hide_index=True, width="stretch", column_config={
        "neighbour_change": st.column_config.NumberColumn("neighbourhood change (0-1)", format="%.3f"),
        "previous_epoch": None, "label_name": "label", "superclass_name": "superclass",
        "flipped": st.column_config.CheckboxColumn(f"prediction flipped since epoch {prev}")})
    st.caption(f"Between epochs {prev} and {epoch} ({RECORDED}); median change over the {len(change):,} embedded samples: "
               f"{change['neighbour_change'].median():.2f}. " + FLOOR)
    st.button(f"Select these {len(top)} samples", on_click=select, args=(run, top["sample_id"].tolist()),
              key="w-changed-select", icon=":material/select:")


def flips_ui(run: str, info: dict, epoch: int, flips: pd.DataFrame, labels: pd.DataFrame, select: Select) -> None:
    if flips.empty:
        st.caption(f"No prediction flipped at epoch {epoch} ({RECORDED}).")
        return
    names = dict(enumerate(class_names(info)))
    table = flips.join(labels, on="sample_id").assign(
        previous=lambda f: f["previous"].map(names), prediction=lambda f: f["prediction"].map(names))
    st.markdown(f"**{len(flips):,} prediction flip(s)** since epoch {int(flips['previous_epoch'].iloc[0])} "
                f"({RECORDED}); {int((~flips['correct']).sum()):,} of them are now wrong.")
    st.dataframe(table.drop(columns="previous_epoch"), hide_index=True, width="stretch",
                 column_config={"previous": "predicted before", "prediction": "predicted now", "correct": "right now",
                                "label_name": "label", "superclass_name": "superclass"})
    st.button(f"Select the {len(flips)} flipped samples", on_click=select, args=(run, flips["sample_id"].tolist()),
              key="w-flips-select", icon=":material/swap_horiz:")


def events_caption(run: str) -> None:
    try:
        events = loaders_changes.training_events(run)
    except ClusterScopeError:
        return
    n = int(events["n_epochs"].iloc[0]) if len(events) else 0
    text = (f"Over the whole run ({n} recorded epochs after the initialisation; {RECORDED}): "
            f"{int((events['forgetting'] > 0).sum()):,} samples forgotten at least once, "
            f"{int((events['first_learned_epoch'] < 0).sum()):,} never predicted right.")
    if events["confidence"].isna().all():
        text += (" Cartography regions are unknown: this run's predictions were stored before the true-class probability "
                 "was (store version 2); train it again to see them.")
    st.caption(text)
