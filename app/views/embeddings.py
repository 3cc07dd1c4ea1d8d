"""Embeddings: how one layer lays out the probe samples at one epoch (UMAP or PCA), and how that changes.

Everything shown was precomputed by `clusterscope analyze`; this page only reads and draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import hover, loaders, loaders_clusters, loaders_density, state, widgets
from app.charts import base as charts_base
from app.charts import embeddings as charts_embeddings
from app.charts import highlight as charts_highlight
from app.views import (
    embeddings_animation,
    embeddings_changes,
    embeddings_colour,
    embeddings_density,
    embeddings_highlight,
    embeddings_scrub,
    embeddings_search,
    embeddings_select,
    embeddings_trajectories,
)
from app.views.embeddings_view import View
from backend import api
from backend.api import ClusterScopeError

COLOURINGS = {
    "class": "Class (trained on)",
    "fine": "Fine label (subclass)",
    "superclass": "Superclass",
    "cluster": "HDBSCAN cluster",
    "correct": "Correct at this epoch",
    "neuron": "A neuron's activation",
    "neighbour_change": "Neighbourhood change (since the previous epoch)",
    "forgetting": "Forgetting events (recorded epochs)",
    "region": "Cartography region (recorded epochs)",
}
PROJECTIONS = charts_embeddings.PROJECTIONS
SAME_AS_CLASS = {"superclass": "class", "fine": "class"}  # a colouring left out where it equals the class
DEFAULT_MAX_POINTS = embeddings_density.DRAW_LIMIT  # every point, up to the density view's limit
HOVER_SENT = "cs-hover-sent"  # session key: the hover table this browser tab holds (loaders.hover_script)
HOVER_KEPT = "<script>/* the hover table sent before is kept */</script>"
SELECTION = embeddings_select.SELECTION  # session key of the selection memo
set_selection = embeddings_select.set_selection
WHOLE_PAGE = "cs-whole-page"  # session key: set by the whole page's run, read by the plots' fragment (plots_ui)
PANEL_QUERY = "cs-panel-query"  # session key: the sample the neighbours panel lists (None: none)


def colourings(dataset: dict) -> list[str]:
    """The colourings worth offering for a run: "superclass" only when the data have superclasses and the run
    was not trained on them (then they are its classes), "fine" only when the run was trained on superclasses
    (trained on the fine labels, they are its classes)."""
    target = dataset.get("target", "label")
    hidden = {"superclass"} if target == "superclass" or not dataset.get("superclass_names") else set()
    hidden |= {"fine"} if target != "superclass" else set()
    return [k for k in COLOURINGS if k not in hidden]


def controls_ui(run: str, info: dict) -> View | None:
    """Sidebar: layer, epoch, projection, colouring, sample cap, second view. None if nothing to show."""
    sb = st.sidebar
    try:
        scores = loaders.layer_scores(run)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Cannot read this run's analysis")
        return None
    for message in scores.corrupt:  # only those snapshots are missing from the pickers
        st.error(f"Left out, corrupt: {widgets.visitor(message)} Re-analyse it with `clusterscope analyze {run}`.",
                 icon=":material/broken_image:")
    if not scores.rows and scores.corrupt:
        return None
    if not scores.rows:
        status = info["status"]
        st.info(f"Run **{run}** has no analysis yet ({status}). Embeddings appear here as soon as "
                f"`clusterscope analyze {run}` has processed a snapshot; the demo builder runs it by itself.")
        st.fragment(wait_for_analysis, run_every=3)(run)  # the page follows by itself, as the message says
        return None
    order = [layer["name"] for layer in info.get("layers", [])]
    layers = sorted(scores.epochs, key=lambda n: order.index(n) if n in order else len(order))
    layer = widgets.layer_picker(layers, container=sb)
    epochs = scores.epochs[layer]
    epoch = widgets.epoch_picker(epochs, container=sb)
    proj = sb.radio("Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True, key="w-proj",
                    index=list(PROJECTIONS).index(state.choice("proj", list(PROJECTIONS))),
                    help="UMAP keeps neighbourhoods (check its trustworthiness); PCA keeps global linear structure.")
    options = colourings(info["dataset"])
    asked = SAME_AS_CLASS.get(st.query_params.get("colour"), "") if state.chosen("colour", options) is None else ""
    colour = sb.selectbox("Colour by", options, format_func=COLOURINGS.get, key="w-colour",
                          index=options.index(asked if asked in options else state.choice("colour", options)))
    unit = None
    if colour == "neuron":
        layer_units = next((la["units"] for la in info.get("layers", []) if la["name"] == layer), 1)
        unit = int(sb.number_input("Unit", 0, max(layer_units - 1, 0), key="w-unit",
                                   value=min(int(state.choice("unit", list(range(layer_units)), 0) or 0), layer_units - 1)))
    top = max(DEFAULT_MAX_POINTS, embeddings_density.draw_limit())
    max_points = int(sb.number_input("Max points drawn", 500, top, state.int_param("maxpts", DEFAULT_MAX_POINTS, 500, top), step=500,
                                     key="w-maxpts", help="Above this many samples a stratified sample is drawn (by class)."))
    second = sb.selectbox("Second view", ["none", "epoch", "layer"], key="w-second",
                          index=["none", "epoch", "layer"].index(state.choice("second", ["none", "epoch", "layer"])),
                          format_func={"none": "None", "epoch": "Another epoch", "layer": "Another layer"}.get)
    other = None
    if second == "epoch":  # by default another epoch than view A's: the first (or the last)
        other = ("epoch", widgets.epoch_picker(epochs, key="epoch_b", label="Epoch B", container=sb,
                                               default=next((e for e in (min(epochs), max(epochs)) if e != epoch), epoch)))
    elif second == "layer":  # by default another layer than view A's: the one before it (or after it)
        k = layers.index(layer)
        other = ("layer", widgets.layer_picker(layers, key="layer_b", label="Layer B", container=sb,
                                               default=layers[k - 1] if k > 0 else layers[min(k + 1, len(layers) - 1)]))
    state.remember(proj=proj, colour=colour, unit=unit, second=second if second != "none" else None,
                   maxpts=max_points if max_points != DEFAULT_MAX_POINTS else None)
    return View(layer=layer, epoch=epoch, proj=proj, colour=colour, unit=unit, max_points=max_points, other=other,
                scores=scores, reason=api.intraclass_reason(info))


def view_frame(run: str, layer: str, epoch: int, v: View) -> pd.DataFrame:
    """Points of one (layer, epoch) with labels and ``colour_value`` (cached; do not modify)."""
    return loaders.embedding_view(run, layer, epoch, v.colour, v.unit, v.max_points)[0]


def draw(run: str, layer: str, epoch: int, v: View, *, title: str, key: str, highlight: set[int] | None,
         extend: Iterable[Callable[[go.Figure], go.Figure] | None] = ()) -> None:
    """One scatter with downloads; what the user selects in it is read by ``embeddings_select.current_selection``. ``highlight``:
    the selection, which the browser highlights (app/views/embeddings_highlight.py), and the downloads show.
    ``extend``: each adds traces to the (cached, so unmodified) figure, e.g. the selection's trajectories, the
    neighbours' query (app/views/embeddings_search.py, with its positions in every epoch frame); the
    epoch frames (app/views/embeddings_scrub.py) move the scatter's own traces only, and the rerun that follows redraws the rest."""
    fig = figure(run, layer, epoch, v, title=title, key=key, highlight=None)  # highlighted in the browser: embeddings_highlight
    for step in extend:
        fig = step(fig) if step else fig
    if v.other is not None:  # two views side by side: each legend under its plot
        fig = charts_base.legend_below(fig)
    widgets.plot(fig, key=key, on_select="rerun", selection_mode=("points", "box", "lasso"))
    export = charts_highlight.with_highlight(charts_embeddings.without_frames(fig), highlight or set())
    widgets.figure_downloads(export, f"{title}_{v.colour}".replace("<br>", " ").replace(" ", "_").replace("·", ""), key=key,
                             legend=COLOURINGS[v.colour] if v.colour != "neuron" else "")


def figure(run: str, layer: str, epoch: int, v: View, *, title: str, key: str, highlight: frozenset[int] | None) -> object:
    """View A alone, where app/views/embeddings_scrub.py can switch its epochs in the browser: with every epoch of the layer as
    a frame and the script that switches them; any other view: the figure of its epoch."""
    epochs = tuple(v.scores.epochs[layer])
    total = loaders_density.probe_size(run)
    if embeddings_density.is_density(total):  # every point as a density image, a sample on top
        drawn = embeddings_density.sample_size(v.max_points)
        return loaders_density.density_figure(run, layer, epoch, v.colour, v.unit, drawn, projection=v.proj, title=title,
                                              note=embeddings_density.note(drawn, total), present=state.presenting())
    if key == "view-b" and v.colour == "cluster":  # its clusters in the colours of view A's they share most samples with
        return loaders_clusters.matched_figure(run, layer, epoch, v.layer, v.epoch, v.max_points, projection=v.proj,
                                               title=title, present=state.presenting())
    if key != "view-a" or not scrubbing(run, v):
        return loaders.embedding_figure(run, layer, epoch, v.colour, v.unit, v.max_points, projection=v.proj,
                                        highlight=highlight, title=title, present=state.presenting())
    return loaders.scrub_figure(run, layer, epoch, epochs, v.colour, v.max_points, projection=v.proj,
                                highlight=highlight, titles=tuple(view_title(run, layer, e, v) for e in epochs),
                                present=state.presenting())


def scrubbing(run: str, v: View) -> bool:
    """Whether view A is drawn with every epoch of its layer as frames, switched in the browser (its script:
    app/views/embeddings_scrub.py, sent by :func:`page`)."""
    if v.other is not None or v.colour not in embeddings_scrub.COLOURINGS:
        return False
    if embeddings_density.is_density(loaders_density.probe_size(run)):
        return False
    frame = view_frame(run, v.layer, v.epoch, v)
    return embeddings_scrub.scrubbable(v.colour, len(frame), len(v.scores.epochs[v.layer]))


def half_title(title: str) -> str:
    """A view's title for half the page's width (two views side by side): the run's name on a line of its own,
    where one line was cut off at the plot's edge."""
    return title.replace(" · ", "<br>", 1)


def view_title(run: str, layer: str, epoch: int, v: View) -> str:
    return f"{run} · {layer} · epoch {epoch} · {PROJECTIONS[v.proj]}"


def selection_plots(run: str, v: View, drawn: pd.DataFrame, total: int, dense: bool) -> dict[str, embeddings_select.Plot]:
    """Per plot, its layout (app/views/embeddings_select.py) and how its selection event becomes sample ids: the
    points in its boxes and lassos among those it draws (``drawn``: view A's), or, for a density view, among all
    of its points."""
    shown = (v.proj, v.colour, v.unit, v.max_points)
    out = {"view-a": ((v.layer, v.epoch, *shown), embeddings_select.region_resolver(lambda: drawn, v.proj))}
    if v.other is not None:
        kind, value = v.other
        layer_b, epoch_b = (v.layer, int(value)) if kind == "epoch" else (str(value), v.epoch)
        other = ((lambda: loaders.embedding_view(run, layer_b, epoch_b, v.colour, v.unit, total)[0]) if dense
                 else (lambda: view_frame(run, layer_b, epoch_b, v)))
        out["view-b"] = ((layer_b, epoch_b, *shown), embeddings_select.region_resolver(other, v.proj))
    return out


def clear_selection() -> None:
    """*Clear selection*: no selection, and no neighbours query (its marks would stay on the plots otherwise)."""
    embeddings_select.clear_selection()
    embeddings_search.clear_query()


def scores_ui(scores: loaders.LayerScores, layer: str, epoch: int, reason: str | None = None) -> None:
    """The cluster scores of one (layer, epoch); ``reason``: why subclass scores are absent (api.intraclass_reason)."""
    r = scores.rows.get((layer, epoch))
    if r is None:
        return
    st.markdown(f"**{layer} · epoch {epoch}**")
    st.metric("Class purity", f"{r.class_purity:.0%}", help="Share of clustered training samples in their cluster's majority class.")
    st.metric("Subclass purity", f"{r.subclass_purity:.0%}" if pd.notna(r.subclass_purity) else "n/a",
              delta=f"chance {r.subclass_chance:.0%}" if pd.notna(r.subclass_chance) else None, delta_color="off",
              help="Within each cluster's majority class, the share of its majority subclass (SCIENCE.md 3.5)."
                   + (f" n/a: {reason}" if reason else ""))
    if reason and pd.isna(r.subclass_purity):
        st.caption("Subclass purity n/a: " + reason)
    st.metric("Clusters", int(r.n_clusters), help=f"HDBSCAN, min_cluster_size {int(r.min_cluster_size)}")
    st.metric("Noise", f"{r.noise_fraction:.0%}")
    st.metric("Fragmentation", f"{r.fragmentation:.2f}", help="Clusters >= 60 % pure per class; > 1 means classes split.")
    st.caption(f"ARI/NMI vs class {r.ari_class:.2f}/{r.nmi_class:.2f}"
               + (f" · vs subclass {r.ari_subclass:.2f}/{r.nmi_subclass:.2f}" if pd.notna(r.ari_subclass) else ""))
    st.caption(f"Trustworthiness (k=10): UMAP {r.trust_umap:.3f} · PCA {r.trust_pca:.3f}. "
               "1 = every neighbour in the picture is a neighbour in the layer.")


def selection_ui(run: str, df: pd.DataFrame, ids: set[int]) -> None:
    if not ids:
        st.caption("Select points (click, box or lasso) to see their images and composition; the other view highlights them.")
        return
    chosen = df[df["sample_id"].isin(ids)]
    st.subheader(f"Selection: {len(chosen)} samples")
    left, right = st.columns([2, 1])
    thumbs = loaders.read_samples(run, thumbnails=True).set_index("sample_id")["thumbnail"]
    shown = chosen.head(48)
    left.image([thumbs[i] for i in shown["sample_id"]], width=56,
               caption=[f"{a}/{b}" for a, b in zip(shown["class_name"], shown["subclass_name"], strict=True)])
    right.dataframe(charts_embeddings.composition(chosen), hide_index=True, width="stretch",
                    column_config={"share": st.column_config.NumberColumn(format="percent")})
    columns = ["sample_id", "split", "class_name", "subclass_name", "superclass_name", "cluster"]
    right.download_button("Download selection (CSV)", lambda: chosen[columns].to_csv(index=False),  # written when clicked
                          file_name=f"{run}-selection.csv", mime="text/csv", on_click="ignore", icon=":material/download:")
    right.button("Clear selection", on_click=clear_selection, icon=":material/deselect:", key="w-clear-selection")


def hover_cards_ui(run: str, ids: np.ndarray) -> None:
    """Hovering a point shows its thumbnail and labels (a card drawn in the browser, app/hover.py)."""
    script, with_images = loaders.hover_script(run, ids)
    # once per browser tab and table: the script keeps the table, and re-sending it (MBs at 100,000 points) on
    # every rerun cost a selection ~0.3 s; the same small element stands in its place while the table is unchanged
    sent = st.session_state.get(HOVER_SENT) is script
    st.html(hover.Html(HOVER_KEPT) if sent else script, unsafe_allow_javascript=True)
    st.session_state[HOVER_SENT] = script
    if 0 < with_images < len(ids):
        st.caption(hover_caption(with_images, len(ids)))


def hover_caption(with_images: int, points: int) -> str:
    """What the hover cards hold when the page's image budget (app/hover.py) does not cover every point."""
    return (f"Hovering a point shows its labels (all {points:,} points drawn) and, for the first {with_images:,} of "
            f"them by sample id, its image: a page carries at most about {hover.THUMBNAIL_BUDGET * 3 // 4 / 1e6:.1f} MB "
            "of images. Fewer points drawn (*Max points drawn*) give more of them an image.")


def wait_for_analysis(run: str) -> None:
    """Rerun the page once the run's first analysed snapshot is there (polled by a fragment every 3 s)."""
    if loaders.layer_scores(run).rows:
        st.rerun(scope="app")


def page() -> None:
    st.title("Embeddings")
    run = widgets.run_picker(container=st.sidebar, prefer=loaders.has_analysis)
    if run is None:
        return
    try:
        info = loaders.read_run(run)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what=f"Cannot read run {run}")
        return
    widgets.diverged_warning(run, info)
    v = controls_ui(run, info)
    if v is None:
        return
    errors = loaders.analysis_status(run).get("errors", {})
    if f"{v.layer}@{v.epoch}" in errors:
        st.warning(widgets.visitor(errors[f"{v.layer}@{v.epoch}"]))
    animate = st.toggle("Animate epochs", key="w-animate", help="Plays the aligned layouts of this layer over training.")
    if animate:
        embeddings_animation.animation_ui(run, info, v, hover_cards=hover_cards_ui)
        return
    try:
        total = loaders_density.probe_size(run)
        dense = embeddings_density.is_density(total)  # then ``df``: the sample drawn; ``full``: every point
        df = view_frame(run, v.layer, v.epoch, replace(v, max_points=embeddings_density.sample_size(v.max_points)) if dense else v)
        full = loaders.embedding_view(run, v.layer, v.epoch, v.colour, v.unit, total)[0] if dense else df
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what=f"Cannot draw {v.layer} at epoch {v.epoch}")
        return
    if dense:
        st.caption(embeddings_density.caption(len(df), total))
    elif len(df) < total:
        st.caption(f"Showing a stratified sample of {len(df):,} of {total:,} samples (raise *Max points drawn* to see all).")
    hover_cards_ui(run, df["sample_id"].to_numpy())
    presenting = state.presenting()  # the plot above the fold: no search box, toggle or neighbours panel
    if not presenting:
        embeddings_search.search_ui(run, info, df, select=set_selection)
    if not dense:  # a colouring the browser knows is drawn there at once (app/views/embeddings_colour.py)
        options = {k: COLOURINGS[k] for k in colourings(info["dataset"])}
        st.sidebar.html(hover.Html(embeddings_colour.script(label="Colour by", options=options, dataset=info["dataset"])),
                        unsafe_allow_javascript=True)  # in the sidebar: no gap above the plot
    if scrubbing(run, v):
        st.sidebar.html(embeddings_scrub.SCRIPT, unsafe_allow_javascript=True)
    st.session_state[WHOLE_PAGE] = True  # this run is the whole page's (plots_ui reads it)
    query = st.fragment(plots_ui)(run, info, v, df, full, total, dense)
    if not presenting:  # below the fragment: a selection does not redraw them (their widgets rerun the page)
        embeddings_search.neighbours_ui(run, info, v, df, query, select=set_selection)
        st.session_state[PANEL_QUERY] = query.sample
        embeddings_changes.what_changed_ui(run, info, v.layer, v.epoch, select=set_selection)


def plots_ui(run: str, info: dict, v: View, df: pd.DataFrame, full: pd.DataFrame, total: int,
             dense: bool) -> embeddings_search.Query | None:
    """The plots and what follows the selection made in them: the highlight, the trajectories, the neighbours'
    marks, the selection's images and composition; returns the neighbours' query (None when presenting).

    Run as a fragment (:func:`page`): a selection, *Clear selection* or the trajectories toggle reruns this part
    only, not the sidebar, the hover table, the search box above or the neighbours and "what changed" panels
    below (in Chromium those panels' widgets cost a box selection of 10,000 points more than a quarter of its time,
    benchmarks/README.md). When a selection changes the neighbours' query (one point selected, or the selection
    cleared), the whole page reruns once, so that the panel lists the new sample's neighbours.
    ``df``: the points view A draws; ``full``: every point of it (a density view)."""
    whole_page = st.session_state.pop(WHOLE_PAGE, False)
    presenting = state.presenting()
    selected = embeddings_select.current_selection(run, selection_plots(run, v, full, total, dense))
    query = None if presenting else embeddings_search.neighbour_query(run, v, selected)
    if query is not None and not whole_page and query.sample != st.session_state.get(PANEL_QUERY):
        st.rerun(scope="app")  # the panel below shows the old query: the page follows
    title = view_title(run, v.layer, v.epoch, v)
    paths = embeddings_trajectories.kept_on(v, selected) if presenting else embeddings_trajectories.toggle_ui(run, v, selected)
    trajectories = (lambda fig: embeddings_trajectories.figure(run, info, v, selected, fig)) if paths else None
    extend = (trajectories, embeddings_search.query_marks(run, v, query, v.layer, v.epoch))
    if v.other is None:
        plot_col, side = st.columns([3, 1])
        with plot_col:
            draw(run, v.layer, v.epoch, v, title=title, key="view-a", highlight=selected, extend=extend)
        with side:
            scores_ui(v.scores, v.layer, v.epoch, v.reason)
    else:
        kind, value = v.other
        layer_b, epoch_b = (v.layer, value) if kind == "epoch" else (value, v.epoch)
        left, right = st.columns(2)
        with left:
            draw(run, v.layer, v.epoch, v, title=half_title(title), key="view-a", highlight=selected, extend=extend)
            scores_ui(v.scores, v.layer, v.epoch, v.reason)
        with right:
            try:
                draw(run, layer_b, epoch_b, v, title=half_title(f"{run} · {layer_b} · epoch {epoch_b}"), key="view-b", highlight=selected,
                     extend=(embeddings_search.query_marks(run, v, query, layer_b, epoch_b),))
                scores_ui(v.scores, layer_b, epoch_b, v.reason)
            except ClusterScopeError as exc:
                widgets.error_panel(exc, what=f"Cannot draw {layer_b} at epoch {epoch_b}")
    if not dense:  # a density view's caption says how many are drawn; more cannot be
        embeddings_trajectories.drawn_caption(df, selected)
    selection_ui(run, full, selected)
    # last: its (empty) element leaves no gap above the plots
    embeddings_highlight.highlight_ui(selected, cleared=embeddings_select.take_cleared(run))
    return query

if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
