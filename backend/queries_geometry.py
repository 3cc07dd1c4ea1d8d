"""Read models of the representation geometry (SCIENCE.md 7): the geometry columns of the ``layers`` table
per (layer, epoch) and the CKA table. Read-only; :mod:`backend.api` re-exports these.

A version-2 run (analysed before the geometry existed) reads with the geometry columns NaN and an
empty CKA table, until ``clusterscope analyze RUN`` computes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backend import schema
from backend.errors import StoreError
from backend.store import RunStore

# The geometry columns of the layers table with their meaning, the order the Geometry page lists them in
# (SCIENCE.md 7; backend.analysis.geometry.GEOMETRY_COLUMNS).
GEOMETRY_MEASURES: dict[str, str] = {
    "nc1_class": "NC1, classes (lower = more collapsed)",
    "nc1_subclass": "NC1, subclasses within each class (lower = more collapsed)",
    "nc2_norm_class": "NC2 norms, classes (std/mean of the centred means' norms; 0 = equal)",
    "nc2_angle_class": "NC2 angles, classes (mean |cos + 1/(C-1)|; 0 = simplex)",
    "nc2_norm_subclass": "NC2 norms, subclasses",
    "nc2_angle_subclass": "NC2 angles, subclasses",
    "nc3_class": "NC3, the layer feeding the classifier (0 = the classifier's rows proportional to the centred class means: self-duality)",
    "nc4_class": "NC4, classes (nearest class mean = prediction; share)",
    "nc4_subclass": "NC4, subclasses (nearest subclass mean's class = prediction; share)",
    "knn_class": "k-NN accuracy, classes",
    "knn_subclass": "k-NN accuracy, subclasses",
    "probe_class": "linear-probe test accuracy, classes",
    "probe_subclass": "linear-probe test accuracy, subclasses",
    "twonn_id": "TwoNN intrinsic dimension",
}


NC3_BEFORE_4 = "analysed before ClusterScope measured NC3 (store version 3): run `clusterscope analyze` again"


def layer_geometry(store: RunStore, run_id: str) -> pd.DataFrame:
    """layer, epoch, depth, the geometry columns (:data:`GEOMETRY_MEASURES`) of every analysed snapshot and
    ``nc3_reason`` (why NC3 is NaN, "" where it is not), sorted by depth and epoch; empty before analysis;
    NaN columns for a version-2 analysis (and NaN NC3, with :data:`NC3_BEFORE_4` as its reason, for version 3)."""
    cols = ["layer", "epoch", "depth", *GEOMETRY_MEASURES, "nc3_reason"]
    table = store.analysis.read_all(run_id, "layers", columns=cols)
    reason = table["nc3_reason"].astype(object)
    table["nc3_reason"] = pd.Series(np.where(reason.isna(), NC3_BEFORE_4, reason), index=table.index, dtype=str)
    return table.sort_values(["depth", "epoch"], ignore_index=True)[cols]


def read_cka(store: RunStore, run_id: str) -> pd.DataFrame:
    """analysis/cka.parquet (schema.CKA_SCHEMA): kind, layer_a, epoch_a, layer_b, epoch_b, cka; an empty
    frame with those columns when the run has none (version 2, ``analysis.geometry = false``, not analysed)."""
    try:
        return store.analysis.read(run_id, "cka")
    except StoreError:
        return schema.CKA_SCHEMA.empty_table().to_pandas()


def cka_params(store: RunStore, run_id: str) -> dict[str, Any]:
    """The parameters ``analysis/cka.parquet`` was computed with: the analysis's, ``cka_max_samples``,
    ``cka_max_epochs``, ``cka_debiased``, and ``cka_samples`` of ``cka_of`` (CKA on N of the M embedded samples;
    absent from a file written before they were stored); {} without the file."""
    return store.analysis.params(run_id, "cka")


def cka_layers(cka: pd.DataFrame, epoch: int, layers: list[str]) -> pd.DataFrame:
    """The layer x layer CKA matrix at ``epoch`` from a :func:`read_cka` table, rows and columns in ``layers``
    order (those present)."""
    part = cka[(cka["kind"] == "layer") & (cka["epoch_a"] == epoch)]
    m = part.pivot_table(index="layer_a", columns="layer_b", values="cka", dropna=False)
    order = [lay for lay in layers if lay in m.index]
    return m.reindex(index=order, columns=order)


def cka_epochs(cka: pd.DataFrame, layer: str) -> pd.DataFrame:
    """The epoch x epoch CKA matrix of ``layer`` from a :func:`read_cka` table (epochs ascending): the epochs
    compared pairwise (all of them, or ``analysis.cka_max_epochs`` evenly spaced ones in a longer run, whose other
    epochs are compared with the last only: :func:`cka_to_last` has them).

    The grid is read from the pairs present, not guessed from the counts: the reference epoch (:func:`_reference`)
    and every epoch compared with more than one other; when none is (a grid of 2, ``cka_max_epochs = 2``), the first
    epoch and the reference. A snapshot CKA left out (unreadable) has no pairs, so it drops out of the grid."""
    part = cka[(cka["kind"] == "epoch") & (cka["layer_a"] == layer)]
    m = part.pivot_table(index="epoch_a", columns="epoch_b", values="cka", dropna=False)
    m = m.sort_index().sort_index(axis=1)
    others = _partners(part)
    if others.empty:
        return m
    ref = _reference(others)
    grid = {*others.index[others > 1], ref}
    if len(grid) < 2:
        grid = {int(part["epoch_a"].min()), ref}
    return m.loc[m.index.isin(grid), m.columns.isin(grid)]


def _partners(part: pd.DataFrame) -> pd.Series:
    """Per epoch (index) of one layer's ``epoch`` rows, how many other epochs it is compared with."""
    pairs = part[part["epoch_a"] != part["epoch_b"]]
    return pairs.groupby("epoch_a")["epoch_b"].nunique()


def _reference(others: pd.Series) -> int:
    """The epoch every other is compared with (the last analysed one, or the last readable one when the last
    snapshot's CKA was left out): the one compared with the most others, the latest of a tie."""
    return int(others.index[others == others.max()].max())


def cka_to_last(cka: pd.DataFrame) -> pd.DataFrame:
    """layer, epoch, cka: each epoch of each layer against the layer's last analysed epoch (1 at the last; the last
    readable one, :func:`_reference`, when the last snapshot's CKA was left out)."""
    part = cka[cka["kind"] == "epoch"]
    if part.empty:
        return pd.DataFrame(columns=["layer", "epoch", "cka"])
    frames = []
    for _, rows in part.groupby("layer_a", sort=False):
        others = _partners(rows)
        ref = _reference(others) if not others.empty else int(rows["epoch_b"].max())
        frames.append(rows[rows["epoch_b"] == ref])
    out = pd.concat(frames)
    return out.rename(columns={"layer_a": "layer", "epoch_a": "epoch"})[["layer", "epoch", "cka"]].reset_index(drop=True)
