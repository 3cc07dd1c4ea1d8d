"""A selection's highlight in a downloaded Embeddings figure: the page draws it in the browser
(app/views/embeddings_highlight.py), a download carries it in the figure. Pure: figure in, figure out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.charts.embeddings import POINTS, decode_typed, fast_figure, typed_array


def with_highlight(fig: go.Figure, ids: set[int] | frozenset[int]) -> go.Figure:
    """``fig`` with the samples ``ids`` opaque and the rest faded, as the page highlights them in the browser
    (app/views/embeddings_highlight.py): for a download. ``fig`` is left unchanged; no ``ids``: ``fig`` itself."""
    if not ids:
        return fig
    spec = fig.to_plotly_json()
    wanted = np.fromiter(ids, dtype=np.int64, count=len(ids))
    data = []
    for trace in spec["data"]:
        if trace.get("meta") == POINTS:
            custom = np.asarray(decode_typed(trace["customdata"])).reshape(-1, 2)
            opacity = np.where(np.isin(custom[:, 0], wanted), 0.95, 0.12)
            trace = trace | {"marker": trace.get("marker", {}) | {"opacity": typed_array(opacity)}}
        data.append(trace)
    return fast_figure(data, spec["layout"], spec.get("frames"))
