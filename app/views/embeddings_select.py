"""The Embeddings page's selection: what the user selected in a plot, as sample ids, kept across reruns.

A box or a lasso reaches the server as its region only (the browser leaves its points out of the event:
app/views/embeddings_highlight.py), and the server selects the points of the view in that region, as the
density view always did (app/views/embeddings_density.py): Streamlit's conversion and sending of every selected
point (1.4 MB at 10,000 points) cost a selection most of its time (benchmarks/README.md). A click reaches it as
its point. The region rule is Plotly's: a point on the box's edge is inside (``charts_density.in_region``), on
the positions as the browser has them (float32).

A plot's event is compared with its event of the previous run, not with the ids it selects, and an event is
read only while the plot shows the layout it was made on: in the run where a plot's layout changes (another
epoch, layer, projection...), ``st.session_state`` still holds the event the browser sent for the old figure
(Streamlit names a chart after its figure; the new one registers later in the run, empty), and that old region
resolved in the new layout selected other samples: the selection the page follows across epochs was lost
(tests/test_e2e_trajectories.py). Each plot's report is therefore kept with its layout's ``token``; a report under
another token is the old figure's and is left unread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable

import pandas as pd
import streamlit as st

from app.views import embeddings_density

SELECTION = "cs-selection"  # session key: {"run", "ids": the selected sample ids, "reports": {plot key: (token, report)},
#                             "cleared": set by *Clear selection* until the page told the browser}
Resolver = Callable[[object], set[int]]
Plot = tuple[Hashable, Resolver]  # a plot's layout token (what it shows) and how its event becomes sample ids


def selected_ids(event: object) -> set[int]:
    """The sample ids of the points in a ``st.plotly_chart`` selection event. A point's customdata is
    [sample_id, cluster]; Plotly reports it as a list, or, for a typed array (ours, charts_embeddings),
    as ``{"0": sample_id, "1": cluster}``."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    out = set()
    for p in points:
        custom = p.get("customdata")
        if custom is not None:
            out.add(int(custom["0"] if isinstance(custom, dict) else custom[0]))
    return out


def report(event: object) -> str:
    """What a plot's selection event says, comparable between runs: its boxes, lassos and clicked sample ids
    ("" when it says nothing: a plot drawn anew starts empty, which is no choice of the user's)."""
    selection = (event or {}).get("selection") or {}
    regions = {k: list(selection.get(k) or []) for k in ("box", "lasso")}
    points = sorted(selected_ids(event))
    if not points and not regions["box"] and not regions["lasso"]:
        return ""
    return json.dumps(regions | {"points": points}, sort_keys=True, default=str)


def region_resolver(frame: Callable[[], pd.DataFrame], projection: str) -> Resolver:
    """The ids a plot's event selects: every point of ``frame()`` (the points the plot draws, or, for a density
    view, all of its points) in its boxes and lassos; a click's point otherwise. ``frame`` is read only when
    a new event comes."""
    return lambda event: embeddings_density.region_resolver(frame(), projection, selected_ids)(event)


def selection_memo(run: str) -> dict:
    """The page's selection memo (``SELECTION``) for ``run``: a new, empty one when the run changed."""
    memo = st.session_state.get(SELECTION)
    if memo is None or memo["run"] != run:
        memo = st.session_state[SELECTION] = {"run": run, "ids": frozenset(), "reports": {}}
    return memo


def current_selection(run: str, plots: dict[str, Plot]) -> set[int]:
    """The selection both views highlight: the newest one made in any of the plots (``plots``: per plot key, its
    layout token and how its event becomes sample ids), read before they are drawn so that one selection costs
    one rerun.

    A plot's event counts when it is not empty and differs from its event of the previous run under the same
    token (see the module's docstring); a selection of no point is no choice either. :func:`clear_selection`
    (a button) clears."""
    memo = selection_memo(run)
    for key, (token, resolve) in plots.items():
        last_token, last = memo["reports"].get(key, (None, ""))
        if token != last_token:  # the plot shows another layout now: its event is the old figure's
            memo["reports"][key] = (token, "")
            continue
        said = report(st.session_state.get(key))
        if said and said != last and (ids := resolve(st.session_state.get(key))):
            memo["ids"] = frozenset(int(i) for i in ids)
        memo["reports"][key] = (token, said)
    return set(memo["ids"])


def set_selection(run: str, ids: Iterable[int]) -> None:
    """Make ``ids`` the selection (a search's matches, a sample and its neighbours: app/views/embeddings_search.py)."""
    selection_memo(run)["ids"] = frozenset(int(i) for i in ids)


def clear_selection() -> None:
    if SELECTION in st.session_state:
        st.session_state[SELECTION]["ids"] = frozenset()
        st.session_state[SELECTION]["cleared"] = True


def take_cleared(run: str) -> bool:
    """Whether the selection was cleared since the last call (then the browser also removes Plotly's own)."""
    return bool(selection_memo(run).pop("cleared", False))
