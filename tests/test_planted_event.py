"""Issue 17's planted event (docs/reproduction.md, "What changed: a planted event"): in a small SynthClust run one
subclass is relabelled to the other class mid-training ([train.labels]); at the first snapshot after the change its
samples top the prediction-flip list and the neighbourhood-change ranking, and the cluster genealogy shows the
class's cluster splitting and the subclass merging into the other class's cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import api
from backend.config import load_config

PLANTED = (
    'run_id="planted"', 'data.name="synthclust"', 'data.target="superclass"', "data.synthclust.dim=100",
    "data.synthclust.clusters_per_class=6", "data.synthclust.train_per_cluster=40", "data.synthclust.test_per_cluster=10",
    'model.name="mlp"', "model.depth=1", "model.width=64", "train.epochs=14", "train.batch_size=32", "train.lr=0.05",
    'train.device="cpu"', "snapshots.epochs=[10, 12, 14]", "snapshots.probe_train=120", "snapshots.probe_test=60",
    "snapshots.checkpoints=false", "analysis.auto=false", "analysis.umap_epochs=10", "analysis.cluster_epochs=30",
    "analysis.baselines=false",
    # the planted event: subclass 0 (class 0) is trained as class 1 from epoch 11 on
    "train.labels.relabel=[0]", "train.labels.relabel_to=1", "train.labels.relabel_from=11",
)
LAYER, BEFORE, AFTER = "fc1.relu", 10, 12


def planted_measures(store: api.RunStore, run: str) -> dict[str, float]:
    """The figures docs/reproduction.md reports, at the first snapshot after the change."""
    samples = api.read_samples(store, run).set_index("sample_id")
    moved = set(samples.index[samples["label"] == 0])
    flips = api.prediction_flips(store, run, AFTER)
    change = api.neighbour_change(store, run, LAYER, AFTER).join(samples["label"], on="sample_id")
    top = change.nlargest(len(moved), "neighbour_change")
    by_subclass = change.groupby("label")["neighbour_change"].median().sort_values(ascending=False)
    return {"moved": len(moved), "flips": len(flips), "flips_moved": int(flips["sample_id"].isin(moved).sum()),
            "precision_at_n": float(top["sample_id"].isin(moved).mean()), "top_subclass": int(by_subclass.index[0]),
            "median_moved": float(by_subclass.loc[0]), "median_next": float(by_subclass.iloc[1]),
            "median_others": float(change.loc[change["label"] != 0, "neighbour_change"].median())}


def test_a_relabelled_subclass_tops_the_change_lists_and_splits_off(store: api.RunStore) -> None:
    run = api.train(load_config(None, PLANTED), store, progress=False)
    report = api.analyze(store, run, api.analysis_config(store, run))
    assert not report.errors, report.errors
    m = planted_measures(store, run)
    assert m["flips_moved"] == m["moved"] and m["flips_moved"] >= 0.8 * m["flips"]  # every one of them flips, few others
    assert m["top_subclass"] == 0 and m["precision_at_n"] >= 0.5  # the subclass moved most
    assert api.prediction_flips(store, run, BEFORE).empty or api.prediction_flips(store, run, BEFORE)["sample_id"].isin(
        api.read_samples(store, run).query("label == 0")["sample_id"]).sum() == 0  # nothing announced it before

    nodes, links, points = api.cluster_genealogy(store, run, layer=LAYER)
    moved = api.read_samples(store, run).query("label == 0")["sample_id"]
    home = _holding(points, nodes, BEFORE, moved)  # the cluster the subclass was in before the change
    after = _holding(points, nodes, AFTER, moved)  # and after
    assert home["split"] or after["merged"], (home, after)
    assert after["class_makeup"] != home["class_makeup"]  # it left its class's cluster for one of mixed true classes


def _holding(points: pd.DataFrame, nodes: pd.DataFrame, stage: int, ids: pd.Series) -> pd.Series:
    """The node at ``stage`` holding most of the samples ``ids``."""
    here = points[(points["stage"] == stage) & points["sample_id"].isin(ids) & (points["cluster"] >= 0)]
    cluster = int(np.bincount(here["cluster"]).argmax())
    return nodes[(nodes["stage"] == stage) & (nodes["cluster"] == cluster)].iloc[0]
