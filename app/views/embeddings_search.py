"""Embeddings page: find samples (by id, label or file name) and list a sample's nearest neighbours in the
layer's full activation space (backend/analysis/neighbours.py through backend.api).

Both act through the page's selection (``select(run, ids)``, app/views/embeddings.py): the matches, or a
sample and its neighbours, become the selection, so the plots highlight them and the selection panel shows
their images, composition and CSV.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import loaders, state, widgets
from app.charts import embeddings as charts_embeddings
from app.charts import query as charts_query
from app.views.embeddings_view import View
from backend import api
from backend.api import ClusterScopeError

Select = Callable[[str, Iterable[int]], None]
# The backend's choices, named for the page (a new choice there fails here, at import, until it is named).
SEARCH_IN = dict(zip(api.SEARCH_FIELDS, ("Anything", "Sample id", "Label", "File name"), strict=True))
METRICS = dict(zip(api.NEIGHBOUR_METRICS, ("Euclidean", "Cosine"), strict=True))
VALUES = {"post": "post-ReLU", "pre": "pre-activation"}  # [P] post: what the embeddings start from (docs/store.md)
PROJECTIONS = charts_embeddings.PROJECTIONS
DEFAULT_K = 10
MAX_K = 200
LAST_SINGLE = "cs-nn-single"  # session key: the last single selected sample, copied once into the id box
QUERY_RUN = "cs-nn-run"  # session key: the run the id box's sample belongs to


def search_labels(run: str, info: dict) -> pd.DataFrame:
    """Every probe sample's labels (charts_embeddings.label_samples), with ``file_name`` where the samples
    table has one."""
    samples = loaders.read_samples(run)  # without thumbnails: a cached copy per rerun stays small
    labels = charts_embeddings.label_samples(samples, target=info["dataset"].get("target", "label"))
    if has_file_names(samples):
        labels["file_name"] = samples["file_name"].fillna("").astype(str)
    return labels


def has_file_names(samples: pd.DataFrame) -> bool:
    """Whether the data set names its samples' files (docs/store.md: image folders, CIFAR's python version)."""
    return "file_name" in samples and bool(samples["file_name"].notna().any())


def matches(run: str, info: dict) -> np.ndarray:
    """The sample ids matching the search box (raises ClusterScopeError on a bad query)."""
    query, field = st.session_state.get("w-search") or "", st.session_state.get("w-search-in", "any")
    return api.search_samples(search_labels(run, info), query, field=field)


def apply_search(run: str, info: dict, select: Select) -> None:
    """A new query's matches become the selection (none: the selection stays)."""
    try:
        found = matches(run, info)
    except ClusterScopeError:
        return  # search_ui shows the message
    if len(found):
        select(run, found)


def search_ui(run: str, info: dict, df: pd.DataFrame, select: Select) -> None:
    """The search box above the plot, how many samples match and how many of them are drawn."""
    has_files = has_file_names(loaders.read_samples(run))
    fields = [f for f in SEARCH_IN if f != "file" or has_files]
    files = ("a file name, " if has_files else "") + "a class, subclass or superclass name"
    left, right = st.columns([3, 1])
    left.text_input("Find samples", key="w-search", on_change=apply_search, args=(run, info, select),
                    placeholder=f"sample ids (12, 40) or {files}",
                    help="Sample ids (integers separated by commas) or a case-insensitive part of "
                         f"{files}. The matches become the selection."
                         + ("" if has_files else " This data set records no file names (only image folders and "
                            "CIFAR's python version do; docs/store.md), so they cannot be searched."))
    right.selectbox("Search in", fields, format_func=SEARCH_IN.get, key="w-search-in",
                    on_change=apply_search, args=(run, info, select))
    query = (st.session_state.get("w-search") or "").strip()
    if not query:
        return
    try:
        found = matches(run, info)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Cannot search")
        return
    if not len(found):
        st.info(f"No sample matches “{query}” ({SEARCH_IN[st.session_state.get('w-search-in', 'any')].lower()}).",
                icon=":material/search_off:")
        return
    drawn = int(np.isin(found, df["sample_id"].to_numpy()).sum())
    text, button = st.columns([3, 1])
    text.markdown(match_text(query, len(found), drawn))
    button.button("Select the matches", on_click=select, args=(run, found), icon=":material/select:", key="w-search-select")


def match_text(query: str, found: int, drawn: int) -> str:
    """How many samples match and how many of them the plot draws (it may draw a stratified sample)."""
    if found == 1:
        head = f"**1** sample matches “{query}”; it is " + ("drawn" if drawn else "not drawn")
    else:
        head = f"**{found:,}** samples match “{query}”; **{drawn:,}** of them " + ("is" if drawn == 1 else "are") + " drawn"
    return head + ("" if drawn == found else " (the plot shows a sample: raise *Max points drawn*)") + "."


class Query(NamedTuple):
    """The neighbours panel's query, read before the plots are drawn (they mark it: app/charts/query.py)."""

    sample: int | None  # the query sample's id (None: no query)
    k: int
    metric: str
    post: bool  # post-ReLU values (else the stored pre-activations)
    nn: pd.DataFrame | None  # rank, sample_id, distance (None: no query, or ``error``)
    ids: np.ndarray | None  # the activations' sample ids and values the neighbours were found among
    acts: np.ndarray | None
    error: ClusterScopeError | None


def neighbour_query(run: str, v: View, selected: set[int]) -> Query:
    """The query of the neighbours panel (its widgets' values: they are drawn under the plots, but the plots mark
    the query) and its neighbours in the layer's full space at the view's epoch. One point selected fills the id
    box once; the box keeps it afterwards, until *Clear selection* (:func:`clear_query`) or another run."""
    if st.session_state.get(QUERY_RUN) != run:  # a sample id of another run's probe set means nothing here
        clear_query()
        st.session_state[QUERY_RUN] = run
    if len(selected) == 1 and (single := next(iter(selected))) != st.session_state.get(LAST_SINGLE):
        st.session_state[LAST_SINGLE] = single
        st.session_state["w-nn-id"] = single
    st.session_state.setdefault("w-nn-id", None)
    sample = st.session_state["w-nn-id"]
    k = int(st.session_state.get("w-nn-k", DEFAULT_K))
    metric = st.session_state.get("w-nn-metric", next(iter(METRICS)))
    post = st.session_state.get("w-nn-values", "post") == "post"
    if sample is None:
        return Query(None, k, metric, post, None, None, None, None)
    try:
        ids, acts = loaders.activations(run, v.layer, v.epoch)
        nn = api.nearest_neighbours(ids, acts, int(sample), k=k, metric=metric, post_relu=post)
    except ClusterScopeError as exc:
        return Query(int(sample), k, metric, post, None, None, None, exc)
    return Query(int(sample), k, metric, post, nn, ids, acts, None)


def clear_query() -> None:
    """Forget the neighbours panel's query sample (the id box) and the single selection that filled it."""
    st.session_state["w-nn-id"] = None
    st.session_state.pop(LAST_SINGLE, None)


def query_marks(run: str, v: View, query: Query | None, layer: str, epoch: int) -> Callable[[go.Figure], go.Figure] | None:
    """What adds the query sample and its neighbours to the figure of the view (``layer``, ``epoch``): at their
    places in every epoch of the layer when the figure has epoch frames (app/views/embeddings_scrub.py). None
    without a query. The neighbours are those at the page's epoch; the rerun after an epoch switch finds the new ones."""
    if query is None or query.nn is None or query.sample is None:
        return None
    wanted = [query.sample, *query.nn["sample_id"].tolist()]
    x, y, _, _ = charts_embeddings.AXES[v.proj]

    def rows(e: int) -> pd.DataFrame:
        points = loaders.analysis(run, "points", layer, e)
        return points.loc[points["sample_id"].isin(wanted), ["sample_id", "cluster", x, y]]

    def extend(fig: go.Figure) -> go.Figure:
        epochs = v.scores.epochs.get(layer, [epoch]) if fig.frames else [epoch]
        return charts_query.with_query(fig, {e: rows(e) for e in epochs}, query.sample, epoch=epoch, projection=v.proj,
                                       k=len(query.nn), found_in=(v.layer, v.epoch), present=state.presenting())

    return extend


def neighbour_inputs() -> None:
    """The query's widgets (their values: :func:`neighbour_query`, read before the plots are drawn)."""
    a, b, c, d = st.columns([2, 1, 2, 2])
    a.number_input("Sample id", min_value=0, step=1, key="w-nn-id", placeholder="select one point, or type",
                   help="The sample whose neighbours to list; selecting exactly one point fills it in. The plots "
                        "mark it with a star, its neighbours with rings.")
    b.number_input("k", 1, MAX_K, DEFAULT_K, step=1, key="w-nn-k", help="How many neighbours to list.")
    c.radio("Distance", list(METRICS), format_func=METRICS.get, horizontal=True, key="w-nn-metric",
            help="Euclidean: the raw activation vectors. Cosine: 1 - cos(angle), ignores how strongly a "
                 "sample activates the layer overall.")
    d.radio("Values", list(VALUES), format_func=VALUES.get, horizontal=True, key="w-nn-values",
            help="post-ReLU: max(value, 0), what the embeddings are computed from. Pre-activation: the values "
                 "as stored, before the ReLU (they also tell apart samples that leave a unit off).")


def neighbours_ui(run: str, info: dict, v: View, df: pd.DataFrame, query: Query, select: Select) -> None:
    """A sample's k nearest neighbours in the layer's full activation space at this epoch (``query``:
    :func:`neighbour_query`): thumbnails, labels, distances, and how many of them the 2-D picture keeps among
    the sample's k nearest."""
    layer, epoch = v.layer, v.epoch
    st.subheader("Nearest neighbours in the layer")
    neighbour_inputs()
    sample, k, metric, post = query.sample, query.k, query.metric, query.post
    if sample is None:
        st.caption(f"Give a sample id, or select one point, to list its nearest neighbours in {layer}'s full "
                   f"activation space at epoch {epoch} (not in the 2-D picture).")
        return
    if query.error is not None:
        widgets.error_panel(query.error, what=f"Cannot list the neighbours of sample {sample}")
        return
    nn, ids, acts = query.nn, query.ids, query.acts
    labels = search_labels(run, info).set_index("sample_id")
    thumbs = loaders.read_samples(run, thumbnails=True).set_index("sample_id")["thumbnail"]
    shown = [sample, *nn["sample_id"].tolist()]
    st.image([thumbs[i] for i in shown], width=56,
             caption=[f"sample {sample}"] + [f"{r}. {i} · {d:.3g}" for r, i, d in nn.itertuples(index=False)])
    table = nn.join(labels[["class_name", "subclass_name", "superclass_name"]], on="sample_id")
    table["drawn"] = table["sample_id"].isin(df["sample_id"])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"distance": st.column_config.NumberColumn(f"distance ({METRICS[metric]})", format="%.4g")})
    st.caption(f"Sample {sample} is {labels.at[sample, 'class_name']}/{labels.at[sample, 'subclass_name']}; "
               f"{int((table['class_name'] == labels.at[sample, 'class_name']).sum())} of its {len(nn)} neighbours "
               f"share its class. Distances over {acts.shape[1]:,} units' {VALUES['post' if post else 'pre']} values. "
               + overlap_text(run, v, ids, acts, sample, k, metric=metric, post_relu=post))
    st.button("Select the sample and its neighbours", on_click=select, args=(run, shown), icon=":material/hub:",
              key="w-nn-select", help="Makes them the selection, so the plots highlight them.")


def overlap_text(run: str, v: View, ids: np.ndarray, acts: np.ndarray, sample: int, k: int, *, metric: str,
                 post_relu: bool) -> str:
    """How many of the sample's k neighbours in the full space are among its k nearest in the 2-D picture,
    both among the embedded samples (the points table); empty when the sample is not embedded."""
    try:
        points = loaders.analysis(run, "points", v.layer, v.epoch)
    except ClusterScopeError:
        return ""
    embedded = points["sample_id"].to_numpy(dtype=np.int64)
    rows = pd.Index(np.asarray(ids, dtype=np.int64)).get_indexer(embedded)
    if sample not in set(embedded.tolist()) or (rows < 0).any() or len(embedded) < 2:
        return ""
    xy = points[[f"{v.proj}_x", f"{v.proj}_y"]].to_numpy(dtype=np.float64)
    kept, of = api.picture_overlap(embedded, acts[rows], xy, sample, k=k, metric=metric, post_relu=post_relu)
    return (f"**{kept} of {of}** of its nearest neighbours in the layer are also among its {of} nearest points in the "
            f"{PROJECTIONS[v.proj]} picture (over the {len(embedded):,} embedded samples; {of} of {of}: its "
            "neighbourhood is drawn faithfully).")
