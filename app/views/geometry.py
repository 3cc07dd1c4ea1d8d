"""Geometry: how each layer's representation is shaped and how it changes (SCIENCE.md 7): linear CKA between
layers and between epochs, neural collapse (NC1, NC2, NC4) for classes and subclasses, NC3 for the layer that
feeds the classifier, k-NN and linear-probe
accuracy, and TwoNN intrinsic dimension, per layer over training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import app.loaders_geometry as lg
from app import loaders, state, widgets
from app.charts import geometry as cg
from app.views import geometry_genealogy
from backend import api
from backend.api import ClusterScopeError

EMBEDDINGS = Path(__file__).with_name("embeddings.py")
DEFAULT_PANELS = ["nc1", "knn", "probe", "twonn"]
NOT_COMPUTED = ("The geometry of **{run}** is not computed: it was analysed before ClusterScope measured it (store "
                "version 2) or with `analysis.geometry = false`. Compute it with\n\n```\nclusterscope analyze {run}\n```")


def layer_order(geo: pd.DataFrame) -> list[str]:
    return geo.sort_values(["depth", "layer"]).drop_duplicates("layer")["layer"].tolist()


def pick_ui(geo: pd.DataFrame, layers: list[str]) -> tuple[int, str]:
    """The epoch of the layer x layer CKA (``epoch`` in the URL) and the layer of the epoch x epoch CKA (``layer``)."""
    epochs = sorted(int(e) for e in geo["epoch"].unique())
    left, right = st.columns(2)
    epoch = left.selectbox("Epoch (layer x layer)", epochs, key="w-geo-epoch",
                           index=epochs.index(state.choice("epoch", epochs, epochs[-1])),
                           help="The epoch whose layers are compared with each other.")
    layer = right.selectbox("Layer (epoch x epoch)", layers, key="w-geo-layer",
                            index=layers.index(state.choice("layer", layers, layers[-1])),
                            help="The layer whose epochs are compared with each other.")
    state.remember(epoch=epoch, layer=layer)
    return int(epoch), str(layer)


def cka_ui(run: str, cka: pd.DataFrame, layers: list[str], epoch: int, layer: str, *, complete: bool = True) -> None:
    """``complete``: every recorded snapshot is analysed (CKA compares them with each other: it comes last)."""
    st.subheader("Linear CKA")
    if cka.empty and not complete:
        st.info(f"Linear CKA of **{run}** is computed once its analysis has covered every snapshot (it compares "
                "the layers and epochs with each other); the measures below are shown as they come.",
                icon=":material/hourglass_top:")
        return
    if cka.empty:
        st.info(NOT_COMPUTED.format(run=run), icon=":material/info:")
        return
    left, right = st.columns(2)
    with left:
        fig = cg.cka_heatmap(api.cka_layers(cka, epoch, layers), x_title="layer", y_title="layer",
                             title=f"Layers at epoch {epoch}<br>{run}")
        widgets.show(fig, f"{run}-cka-layers-{epoch}", "fig-cka-layers")
    with right:
        fig = cg.cka_heatmap(api.cka_epochs(cka, layer), x_title="epoch", y_title="epoch",
                             title=f"Epochs of {layer}<br>{run}")
        widgets.show(fig, f"{run}-cka-epochs-{layer}", "fig-cka-epochs")
    widgets.show(cg.cka_to_last_curves(api.cka_to_last(cka), layers, title=f"Which layers have settled ({run})"),
                 f"{run}-cka-to-last", "fig-cka-last", legend="layer")
    st.caption("Linear CKA (Kornblith et al. 2019; SCIENCE.md 7) between the layer's post-ReLU values on the same "
               f"probe samples: {cka_samples_text(lg.cka_params(run))} 1 = the same representation up to rotation "
               "and scale. A layer has settled when its CKA with its last epoch stays near 1. A long run compares "
               "every two of at most `analysis.cka_max_epochs` evenly spaced epochs, the others with the last only.")


def cka_samples_text(params: dict) -> str:
    """"CKA on N of M samples" and its estimator, from the CKA table's stored parameters (api.cka_params)."""
    n, m = params.get("cka_samples"), params.get("cka_of")
    size = (f"CKA on {n:,} of {m:,} embedded samples (`analysis.cka_max_samples`)." if n is not None and m is not None
            else "CKA on at most `analysis.cka_max_samples` of the embedded samples.")
    if params.get("cka_batch"):
        how = f" Unbiased HSIC over minibatches of {params['cka_batch']:,} (`analysis.cka_batch`)."
    elif params.get("cka_debiased"):
        how = " Debiased HSIC (Song et al. 2012; about 0 for unrelated representations; `analysis.cka_debiased`)."
    else:  # absent (a file written before it was stored) or false: the biased closed form
        how = (" Biased closed form: unrelated representations of d units on n samples score about d/(n + d), "
               "so fewer samples raise every value (`analysis.cka_debiased = true` removes it).")
    return size + how


def curves_ui(run: str, geo: pd.DataFrame, layers: list[str], reason: str | None) -> None:
    st.subheader("Collapse, separability and dimension over training")
    options = list(cg.PANELS)
    wanted = state.choices("panels", options) if "panels" in st.query_params else DEFAULT_PANELS
    panels = st.multiselect("Measures", options, default=wanted, key="w-geo-panels",
                            format_func=lambda p: cg.PANELS[p][0],
                            help="NC1 = Tr(Σ_W Σ_B⁺)/C; NC2 angles = mean |cos + 1/(C−1)| of the centred means, norms = "
                                 "std/mean of their lengths; NC3 = ‖W/‖W‖ − Mᵀ/‖M‖‖² of the classifier's weights W and "
                                 "the centred class means M, 0 when the rows of W are proportional to them (self-duality; the "
                                 "layer that feeds the classifier only); NC4 = share "
                                 "whose nearest mean is the prediction (neural "
                                 "collapse, Papyan et al. 2020); k-NN and linear-probe accuracy; TwoNN intrinsic "
                                 "dimension (Facco et al. 2017); SCIENCE.md 7.")
    state.remember(panels=",".join(panels) or None)
    if not panels:
        st.info("Choose at least one measure.")
        return
    widgets.show(cg.geometry_curves(geo, layers, panels, title=f"Representation geometry per layer ({run})"),
                 f"{run}-geometry", "fig-geo-curves", legend="layer")
    st.caption("Per layer (colour: depth, dark = first) and epoch, in the layer's full space, never the 2-D picture. "
               "Solid: classes; dashed: hidden subclasses (subclass NC1 within each class). NC on the training "
               "probe samples; k-NN (leave-one-out, the analysis's cosine neighbour graph) and TwoNN on every "
               "embedded sample; the probe fits the training samples and scores the test ones.")
    if reason:
        st.caption("No subclass curves: " + reason)
    if "nc3" in panels:
        st.caption(nc3_note(geo))


def nc3_note(geo: pd.DataFrame) -> str:
    """Where NC3 is measured and, where the layer that would have it has none, why (the analysis's reason)."""
    text = ("NC3 compares the classifier's weights with the centred class means of the layer that feeds it, on the "
            "training probe samples (0: the weights' rows are proportional to those means, self-duality), where the "
            "analysed values are what the classifier receives; the other layers have none.")
    missing = geo[geo["nc3_class"].isna() & ~geo["nc3_reason"].str.startswith("NC3 is defined for")]
    if missing.empty:
        return text
    first = missing.sort_values(["depth", "epoch"]).iloc[-1]
    epochs = ", ".join(str(e) for e in sorted(missing.loc[missing["layer"] == first["layer"], "epoch"]))
    return f"{text} No NC3 for {first['layer']} at epoch(s) {epochs}: {first['nc3_reason']}."


def open_ui(run: str, layer: str, epoch: int) -> None:
    params = {"run": run, "layer": layer, "epoch": str(epoch)} | ({"present": "1"} if state.presenting() else {})
    st.page_link(EMBEDDINGS, label=f"Open {layer} at epoch {epoch} in Embeddings", icon=":material/scatter_plot:",
                 query_params=params, help=f"Opens {state.link('embeddings', **params)}")


def page() -> None:
    st.title("Geometry")
    chosen = widgets.chosen_run(prefer=loaders.has_analysis)
    if chosen is None:
        return
    run, info = chosen
    try:
        geo, cka = lg.layer_geometry(run), lg.cka(run)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Representation geometry")
        return
    if not widgets.analysis_state_ui(run, info, loaders.snapshots(run), geo):
        return
    if geo[list(api.GEOMETRY_MEASURES)].isna().all().all():
        st.info(NOT_COMPUTED.format(run=run), icon=":material/info:")
        return
    layers = layer_order(geo)
    epoch, layer = pick_ui(geo, layers)
    complete = len(geo[["layer", "epoch"]].drop_duplicates()) >= len(loaders.snapshots(run))
    cka_ui(run, cka, layers, epoch, layer, complete=complete)
    curves_ui(run, geo, layers, api.intraclass_reason(info))
    open_ui(run, layer, epoch)
    geometry_genealogy.genealogy_section(run, info, layer, epoch)  # SCIENCE.md 7: clusters split and merge


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
