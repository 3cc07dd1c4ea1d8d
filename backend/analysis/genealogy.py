"""Cluster genealogy (SCIENCE.md section 7, [P]): HDBSCAN clusters of consecutive stages (recorded epochs
of a layer, or adjacent layers at one epoch) linked by the samples they share.

Clusters A (stage s) and B (stage s+1) are linked when |A ∩ B| / |A| >= ``threshold`` (0.2 by default,
the strong links); a cluster with two or more strong children *split*, a child with two or more strong
parents *merged*. Noise (cluster -1) is no cluster. Each cluster's make-up is the share of its samples
per class and per subclass. Pure: tables in, tables out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend.errors import ClusterScopeError

NODE_COLUMNS = ["node", "stage", "cluster", "size", "children", "parents", "split", "merged", "main_class",
                "class_share", "class_makeup", "main_subclass", "subclass_share", "subclass_makeup"]
LINK_COLUMNS = ["source", "target", "shared", "share"]


def _makeup(values: pd.Series, names: dict[int, str] | None, top: int = 3) -> tuple[int, float, str]:
    counts = values.value_counts().sort_index().sort_values(ascending=False, kind="stable")  # ties: smaller label first
    if counts.empty:
        return -1, float("nan"), ""
    share = counts / counts.sum()
    text = ", ".join(f"{(names or {}).get(int(k), k)} {v:.0%}" for k, v in share.head(top).items())
    return int(share.index[0]), float(share.iloc[0]), text + (", …" if len(share) > top else "")


def genealogy(stages: Sequence[object], points: pd.DataFrame, labels: pd.DataFrame, *, threshold: float = 0.2,
              class_names: dict[int, str] | None = None, subclass_names: dict[int, str] | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and strong links of the genealogy over ``stages`` (in order).

    points : one row per (stage, sample): ``stage`` (a value of ``stages``), ``sample_id``, ``cluster``.
    labels : one row per sample: ``sample_id``, ``class`` and ``subclass`` (-1 or NaN when there is none).
    Returns (nodes with :data:`NODE_COLUMNS`, links with :data:`LINK_COLUMNS`); ``node`` numbers the clusters
    of every stage in order; ``share`` = |A ∩ B| / |A| of the link's source A.
    """
    if not 0.0 < threshold <= 1.0:
        raise ClusterScopeError(f"the genealogy's link threshold must be in (0, 1]; got {threshold}.")
    pts = points[points["cluster"] >= 0].merge(labels, on="sample_id", how="left")
    pts = pts[pts["stage"].isin(list(stages))]
    order = {s: i for i, s in enumerate(stages)}
    sizes = pts.groupby(["stage", "cluster"]).size().reset_index(name="size")
    sizes = sizes.assign(o=sizes["stage"].map(order)).sort_values(["o", "cluster"]).drop(columns="o").reset_index(drop=True)
    sizes["node"] = np.arange(len(sizes))
    node_of = {(r.stage, r.cluster): r.node for r in sizes.itertuples()}
    links = []
    for a, b in zip(stages, list(stages)[1:], strict=False):
        pa_, pb = pts[pts["stage"] == a], pts[pts["stage"] == b]
        both = pa_[["sample_id", "cluster"]].merge(pb[["sample_id", "cluster"]], on="sample_id", suffixes=("_a", "_b"))
        shared = both.groupby(["cluster_a", "cluster_b"]).size().reset_index(name="shared")
        for r in shared.itertuples():
            src = node_of[(a, r.cluster_a)]
            share = r.shared / sizes.at[src, "size"]
            if share >= threshold:
                links.append({"source": src, "target": node_of[(b, r.cluster_b)], "shared": int(r.shared), "share": share})
    link_df = pd.DataFrame(links, columns=LINK_COLUMNS)
    return _nodes(sizes, link_df, pts, class_names, subclass_names), link_df


def _nodes(sizes: pd.DataFrame, links: pd.DataFrame, pts: pd.DataFrame, class_names: dict[int, str] | None,
           subclass_names: dict[int, str] | None) -> pd.DataFrame:
    nodes = sizes.copy()
    nodes["children"] = nodes["node"].map(links.groupby("source").size()).fillna(0).astype(int)
    nodes["parents"] = nodes["node"].map(links.groupby("target").size()).fillna(0).astype(int)
    nodes["split"], nodes["merged"] = nodes["children"] >= 2, nodes["parents"] >= 2
    groups = dict(tuple(pts.groupby(["stage", "cluster"])))
    rows = []
    for r in nodes.itertuples():
        g = groups[(r.stage, r.cluster)]
        sub = g["subclass"].dropna()
        rows.append(_makeup(g["class"], class_names) + _makeup(sub[sub >= 0], subclass_names))
    cols = ["main_class", "class_share", "class_makeup", "main_subclass", "subclass_share", "subclass_makeup"]
    made = pd.DataFrame(rows, columns=cols, index=nodes.index)
    return pd.concat([nodes, made], axis=1)[NODE_COLUMNS]


def cluster_members(points: pd.DataFrame, stage: object, cluster: int) -> np.ndarray:
    """The sample ids (ascending) of ``cluster`` at ``stage`` in a genealogy's points table."""
    hit = (points["stage"] == stage) & (points["cluster"] == cluster)
    return np.sort(points.loc[hit, "sample_id"].to_numpy(dtype=np.int64))
