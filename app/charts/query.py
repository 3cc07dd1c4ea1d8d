"""The nearest-neighbour query on the Embeddings plots: the query sample as a large star with a dark outline, on top
of every point, and its k nearest neighbours (in the layer's full space, backend/analysis/neighbours.py) as dark
rings, each a legend entry ("query sample", "its k nearest neighbours in <layer> at epoch <e>": where they were
found, which a second view of another layer or epoch does not share). Yellow (Okabe-Ito) and near-black:
colour-blind safe, and apart from every class colour by shape and outline.

A figure with epoch frames (charts_embeddings.with_epoch_frames, switched in the browser) gets the marks' positions
in every frame too, so they move with the epoch. Pure: DataFrames in, figures out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.charts.base import INK, OKABE_ITO
from app.charts.embeddings import AXES, SCRUB_FRAME, fast_figure, point_customdata, typed_array

QUERY = "query sample"  # the query trace's name (its legend entry)
QUERY_META = "cs-query"  # the marks' ``meta`` (tests and the page's scripts find them by it)
HOVER = "<b>%{fullData.name}</b><br>sample %{customdata[0]} · cluster %{customdata[1]}<extra></extra>"


def neighbours_name(k: int, layer: str, epoch: int) -> str:
    """The rings' legend entry: where the neighbours were found (the first view's layer and epoch), so that a second
    view of another layer or epoch does not pass them off as its own."""
    return f"its {k} nearest neighbour{'s' if k != 1 else ''} in {layer} at epoch {epoch}"


def mark_data(rows: pd.DataFrame, query: int, *, projection: str) -> list[dict]:
    """The x, y and customdata of the two marks at one epoch: the neighbours, then the query sample.

    rows : the points table's rows (sample_id, cluster, the projection's x/y) of the query and its neighbours
        at that epoch; a sample not embedded there is simply not drawn."""
    x, y, _, _ = AXES[projection]
    out = []
    for part in (rows[rows["sample_id"] != query], rows[rows["sample_id"] == query]):
        ids, cluster = part["sample_id"].to_numpy(np.int64), part["cluster"].to_numpy(np.int64)
        out.append({"x": typed_array(part[x].to_numpy(np.float32)), "y": typed_array(part[y].to_numpy(np.float32)),
                    "customdata": typed_array(point_customdata(ids, cluster))})
    return out


def mark_traces(rows: pd.DataFrame, query: int, *, projection: str, k: int, found_in: tuple[str, int],
                present: bool = False) -> list[dict]:
    """Two Scattergl traces (:func:`mark_data`): rings on the neighbours, then the query's star on top.
    found_in : the (layer, epoch) whose full space the neighbours were found in (:func:`neighbours_name`)."""
    ring, star = mark_data(rows, query, projection=projection)
    size = 1.4 if present else 1.0
    return [
        ring | {"type": "scattergl", "mode": "markers", "name": neighbours_name(k, *found_in), "meta": QUERY_META,
                "hovertemplate": HOVER, "showlegend": True,
                "marker": {"symbol": "circle-open", "size": round(14 * size), "color": INK, "line": {"width": 2.5},
                           "opacity": 1.0}},
        star | {"type": "scattergl", "mode": "markers", "name": QUERY, "meta": QUERY_META, "hovertemplate": HOVER,
                "showlegend": True,
                "marker": {"symbol": "star", "size": round(24 * size), "color": OKABE_ITO[6],
                           "line": {"color": INK, "width": 2}, "opacity": 1.0}},
    ]


def with_query(fig: go.Figure, per_epoch: dict[int, pd.DataFrame], query: int, *, epoch: int, projection: str, k: int,
               found_in: tuple[str, int], present: bool = False) -> go.Figure:
    """``fig`` with the marks of the query sample and its neighbours at ``epoch`` on top; each of its epoch
    frames (``SCRUB_FRAME`` + epoch) moves them to that epoch's positions (``per_epoch``: each epoch's rows, as for
    :func:`mark_data`; an epoch missing there keeps them where they are). A new figure: ``fig`` may be a cached one."""
    spec = fig.to_dict()
    first = len(spec["data"])
    traces = mark_traces(per_epoch.get(epoch, per_epoch[next(iter(per_epoch))]), query, projection=projection, k=k,
                         found_in=found_in, present=present)
    frames = []
    for frame in spec.get("frames") or []:
        e = frame.get("name", "").removeprefix(SCRUB_FRAME)
        rows = per_epoch.get(int(e)) if e.isdigit() else None
        if rows is not None:
            frame = frame | {"data": [*frame["data"], *({"type": "scattergl"} | d for d in mark_data(rows, query, projection=projection))],
                             "traces": [*frame["traces"], first, first + 1]}
        frames.append(frame)
    return fast_figure([*spec["data"], *traces], spec["layout"], frames or None)
