"""Cluster genealogy (SCIENCE.md 7): links by shared samples, splits, merges and make-up; read from a real analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend import api
from backend.analysis.genealogy import cluster_members, genealogy
from backend.errors import ClusterScopeError


def _points() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = np.arange(50)
    e0 = np.where(ids < 20, 0, np.where(ids < 45, 1, -1))  # 45..49 noise
    e1 = np.where(ids < 10, 0, 1)  # 0..9 stay; 10..49 join one cluster
    e1[40:44] = 2  # 4 of cluster 1's 25 (16 % < 20 %) leave for a cluster of their own
    pts = pd.concat([pd.DataFrame({"stage": 0, "sample_id": ids, "cluster": e0}),
                     pd.DataFrame({"stage": 5, "sample_id": ids, "cluster": e1})])
    labels = pd.DataFrame({"sample_id": ids, "class": (ids >= 20).astype(int), "subclass": ids // 10})
    return pts, labels


def test_links_splits_and_merges() -> None:
    pts, labels = _points()
    nodes, links = genealogy([0, 5], pts, labels, threshold=0.2, class_names={0: "even", 1: "odd"})
    assert nodes["size"].tolist() == [20, 25, 10, 36, 4]
    assert set(map(tuple, links[["source", "target", "shared"]].to_numpy().tolist())) == {(0, 2, 10), (0, 3, 10), (1, 3, 21)}
    assert nodes["split"].tolist() == [True, False, False, False, False]  # cluster 0 splits in two
    assert nodes["merged"].tolist() == [False, False, False, True, False]  # and half of it merges with cluster 1
    assert nodes.loc[3, "class_makeup"] == "odd 72%, even 28%" and nodes.loc[3, "main_subclass"] == 1  # a tie of 1, 2, 3: the smaller
    assert nodes.loc[4, "parents"] == 0  # 4/25 shared is under the threshold
    assert cluster_members(pts, 5, 2).tolist() == [40, 41, 42, 43]
    looser = genealogy([0, 5], pts, labels, threshold=0.15)[1]
    assert len(looser) == 4
    with pytest.raises(ClusterScopeError, match=r"threshold must be in \(0, 1\]; got 0"):
        genealogy([0, 5], pts, labels, threshold=0)


def test_genealogy_of_an_analysed_run(analysed_store: tuple[api.RunStore, str]) -> None:
    store, run = analysed_store
    nodes, links, points = api.cluster_genealogy(store, run, layer="fc1.relu")
    assert sorted(set(nodes["stage"])) == [0, 1, 2] and (links["share"] >= 0.2).all()
    assert nodes.groupby("stage")["size"].sum().le(len(api.read_samples(store, run))).all()
    assert (nodes["class_share"] > 0).all() and nodes["subclass_makeup"].str.len().gt(0).all()
    across, _, _ = api.cluster_genealogy(store, run, epoch=2, across="layers")
    assert list(dict.fromkeys(across["stage"])) == ["fc1.relu", "fc2.relu"]
    with pytest.raises(api.StoreError, match="across 'epochs' of a layer"):
        api.cluster_genealogy(store, run, across="epochs")
