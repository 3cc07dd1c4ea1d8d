"""The Embeddings page above ``draw_limit()`` points: a density image of every point, a sample drawn on top.

Up to the limit (``DRAW_LIMIT``, 200,000 by default; an operator sets another with CLUSTERSCOPE_DRAW_POINTS)
every point is drawn as a WebGL point. Above it the plot shows the density of ALL points, counted by the server
(app/charts/density.py), under a stratified sample of at most ``SAMPLE`` points (and *Max points drawn*) drawn
as WebGL points with hover cards. Selection works over all points, not only the drawn ones: a box or a lasso
selects every point in its region (its images, composition and CSV cover them all; the drawn ones are
highlighted), a click selects the drawn point clicked.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pandas as pd

from app.charts import density as charts_density
from app.charts import embeddings as charts_embeddings

DRAW_LIMIT = 200_000  # [P] points drawn one by one at most; above, the density view
SAMPLE = 20_000  # [P] points drawn over the density image at most (fewer if *Max points drawn* says so)


def draw_limit() -> int:
    """``DRAW_LIMIT``, or the operator's CLUSTERSCOPE_DRAW_POINTS (an integer >= 1)."""
    raw = os.environ.get("CLUSTERSCOPE_DRAW_POINTS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DRAW_LIMIT


def is_density(total: int) -> bool:
    """Whether a view of ``total`` points is shown as a density image (more than :func:`draw_limit`)."""
    return total > draw_limit()


def sample_size(max_points: int) -> int:
    """How many points the density view draws on top: *Max points drawn*, at most ``SAMPLE`` and the limit."""
    return max(1, min(int(max_points), SAMPLE, draw_limit()))


def note(drawn: int, total: int) -> str:
    """The line under the plot's title that says it is a density view."""
    return f"density view: all {total:,} points counted per pixel, {drawn:,} of them drawn as points"


def caption(drawn: int, total: int) -> str:
    return (f"**Density view**: {total:,} samples are more than the {draw_limit():,} drawn one by one, so the plot shows "
            f"how many of them fall in each pixel ({charts_density.UNIT}, colour bar; every sample counted, on a log "
            f"scale), with a stratified sample of {drawn:,} drawn on top as points (hover them for their images). "
            "A box or lasso selects every sample in its region, drawn or not; a click selects the point clicked.")


def region_resolver(full: pd.DataFrame, projection: str,
                    fallback: Callable[[object], set[int]]) -> Callable[[object], set[int]]:
    """The selected sample ids of a selection event on a density view: every point of ``full`` (all of the
    view's points) in its boxes or lassos; a click's points through ``fallback`` (``embeddings_select.selected_ids``).
    The positions as the browser has them (float32, charts_embeddings): a point near a box's edge is in or out
    for the server as it is for Plotly."""
    x, y, _, _ = charts_embeddings.AXES[projection]
    xs, ys = (full[c].to_numpy(dtype=np.float32) for c in (x, y))
    ids = full["sample_id"].to_numpy()

    def resolve(event: object) -> set[int]:
        inside = charts_density.in_region(xs, ys, event)
        return fallback(event) if inside is None else set(np.asarray(ids[inside], dtype=np.int64).tolist())

    return resolve
