"""Colours of HDBSCAN clusters that mean something across two views.

HDBSCAN numbers its clusters per run (one layer at one epoch): cluster 3 of one layer has nothing to do with cluster 3
of another, yet coloured by their ids they would be painted alike, as if they were the same cluster. In the
Embeddings page's second view (another layer or epoch of the same samples) the clusters are therefore coloured by
what they share with the first view's: a cluster takes the colour and marker shape of the first view's cluster it is
paired with, one to one, by the most shared samples (``scipy.optimize.linear_sum_assignment`` on the table of shared
samples), when more than ``MATCH_SHARE`` of its samples are in that cluster; every other cluster gets a (colour,
shape) pair that neither view uses for another cluster. The same colour then says "mostly the same samples", and the
ids stay each view's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.charts.base import NOISE_COLOUR
from app.charts.embeddings import cluster_colours, marker_symbols

# [P] the share of a cluster's samples that must lie in the first view's cluster it is paired with for it to take
# that cluster's colour (more than half: the pairing is then the clear majority of its samples)
MATCH_SHARE = 0.5


def pairs(palette: list[str], shapes: list[str]) -> list[tuple[str, str]]:
    """Every (colour, shape) pair in the order the page hands them out: each colour as a circle, then each as the
    next shape (charts_embeddings.marker_symbols)."""
    return [(c, s) for s in shapes for c in palette]


def reference_styles(clusters: np.ndarray, palette: list[str], shapes: list[str]) -> dict[int, tuple[str, str]]:
    """The (colour, shape) of each cluster id (-1: noise) as a view coloured by its own ids draws it
    (charts_embeddings.cluster_colours in id order, then marker_symbols)."""
    ids = sorted(int(c) for c in np.unique(clusters))
    names = {c: "noise" if c < 0 else f"cluster {c}" for c in ids}
    colours = cluster_colours(list(names.values()), palette)
    symbols = marker_symbols(colours, shapes)
    return {c: (colours[n], symbols[n]) for c, n in names.items()}


def matched_styles(ref: pd.DataFrame, view: pd.DataFrame, palette: list[str], shapes: list[str], *,
                   share: float = MATCH_SHARE) -> tuple[dict[str, str], dict[str, str]]:
    """(colour per cluster name, shape per cluster name) for ``view``'s clusters, matched to ``ref``'s.

    ref, view : one row per sample drawn (sample_id, cluster; -1 is noise), e.g. the first and second view.
    Cluster names are the page's ("cluster 3", "noise"), noise first, then by id. See the module's docstring.
    """
    ref_style = reference_styles(ref["cluster"].to_numpy(), palette, shapes)
    both = view[["sample_id", "cluster"]].merge(ref[["sample_id", "cluster"]], on="sample_id", suffixes=("", "_ref"))
    both = both[(both["cluster"] >= 0) & (both["cluster_ref"] >= 0)]
    mine = sorted(int(c) for c in view["cluster"].unique() if c >= 0)
    theirs = sorted(c for c in ref_style if c >= 0)
    sizes = view.loc[view["cluster"] >= 0, "cluster"].value_counts()
    styles: dict[int, tuple[str, str]] = {}
    if mine and theirs:
        from scipy.optimize import linear_sum_assignment

        shared = pd.crosstab(both["cluster"], both["cluster_ref"]).reindex(index=mine, columns=theirs, fill_value=0)
        rows, cols = linear_sum_assignment(-shared.to_numpy())
        for r, c in zip(rows, cols, strict=True):
            if shared.iat[r, c] > share * sizes[mine[r]]:
                styles[mine[r]] = ref_style[theirs[c]]
    taken = set(ref_style.values()) | set(styles.values())
    free = [p for p in pairs(palette, shapes) if p not in taken] or pairs(palette, shapes)
    for k, c in enumerate(c for c in mine if c not in styles):
        styles[c] = free[k % len(free)]
    names = {c: f"cluster {c}" for c in mine}
    colours = {"noise": NOISE_COLOUR} if (view["cluster"] < 0).any() else {}
    symbols = {"noise": shapes[0]} if colours else {}
    for c in mine:
        colours[names[c]], symbols[names[c]] = styles[c]
    return colours, symbols
