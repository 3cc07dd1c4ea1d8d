"""Training events per sample (SCIENCE.md 7): flips, forgetting, cartography; true_probability in predictions."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from backend import api
from backend.analysis.events import cartography_regions, flips_at, training_events
from backend.errors import ClusterScopeError


def test_events_counted_over_recorded_epochs() -> None:
    epochs = [0, 1, 2, 4, 8]
    pred = np.array([[1, 0], [0, 0], [1, 0], [0, 0], [0, 0]])  # sample 0 flips into 2 and into 4
    correct = pred == 0
    prob = np.array([[.1, .9], [.8, .9], [.2, .9], [.6, .9], [.8, .9]])
    ev = training_events(epochs, pred, correct, prob)
    assert ev["flips"].tolist() == [2, 0] and ev["first_flip_epoch"].tolist() == [2, -1]
    assert ev["last_flip_epoch"].tolist() == [4, -1]
    assert ev["forgetting"].tolist() == [1, 0]  # correct at 1, wrong at 2; the initialisation is left out
    assert ev["first_learned_epoch"].tolist() == [1, 1]
    np.testing.assert_allclose(ev["confidence"], [0.6, 0.9])
    np.testing.assert_allclose(ev["variability"], [np.std([.8, .2, .6, .8]), 0.0])
    assert ev["n_epochs"].tolist() == [4, 4]
    with_init = training_events(epochs, pred, correct, prob, include_init=True)
    assert with_init["flips"].tolist() == [3, 0] and with_init["first_learned_epoch"].tolist() == [1, 0]
    assert flips_at(epochs, pred, 2).tolist() == [True, False] and not flips_at(epochs, pred, 0).any()
    with pytest.raises(ClusterScopeError, match="strictly increasing"):
        training_events([0, 0], pred[:2], correct[:2], prob[:2])
    with pytest.raises(ClusterScopeError, match="epoch 3 is not a recorded epoch"):
        flips_at(epochs, pred, 3)


def test_cartography_regions() -> None:
    conf = np.array([0.95, 0.9, 0.1, 0.2, 0.5, 0.5, np.nan])
    var = np.array([0.01, 0.02, 0.01, 0.03, 0.4, 0.45, np.nan])
    assert cartography_regions(conf, var).tolist() == ["easy-to-learn", "easy-to-learn", "hard-to-learn",
                                                       "hard-to-learn", "ambiguous", "ambiguous", "unknown"]


def test_predictions_hold_the_true_class_probability(trained_store: tuple[api.RunStore, str]) -> None:
    store, run = trained_store
    p = api.read_predictions(store, run, 2)
    assert p["true_probability"].between(0, 1).all()
    right = p[p["correct"]]
    np.testing.assert_allclose(right["true_probability"], right["confidence"], rtol=1e-6)
    assert (p.loc[~p["correct"], "true_probability"] < p.loc[~p["correct"], "confidence"]).all()
    ev = api.training_events(store, run)
    assert len(ev) == len(api.read_samples(store, run)) and ev["n_epochs"].eq(2).all()
    assert ev["confidence"].between(0, 1).all() and set(ev["region"]) <= {"easy-to-learn", "ambiguous", "hard-to-learn"}
    flips = api.prediction_flips(store, run, 2)
    prev, now = (api.read_predictions(store, run, e).set_index("sample_id")["prediction"] for e in (1, 2))
    assert set(flips["sample_id"]) == set(now.index[now != prev.loc[now.index]])


def test_version_2_predictions_read_with_nan_cartography(trained_store: tuple[api.RunStore, str],
                                                         tmp_path) -> None:
    store, run = trained_store
    import shutil

    copy = api.open_store(tmp_path / "v2")
    shutil.copytree(store.root / run, copy.root / run)
    for e in (0, 1, 2):  # a version-2 run: its predictions have no true_probability column
        path = copy.predictions_path(run, e)
        t = pq.read_table(path)
        pq.write_table(t.drop_columns(["true_probability"]).replace_schema_metadata(t.schema.metadata), path)
    p = api.read_predictions(copy, run, 1)
    assert p["true_probability"].isna().all() and p["confidence"].notna().all()
    ev = api.training_events(copy, run)
    assert ev["confidence"].isna().all() and (ev["region"] == "unknown").all()
    assert ev["flips"].notna().all() and ev["forgetting"].ge(0).all()  # flips and forgetting need no probabilities


def test_events_of_runs_with_one_or_no_recorded_epoch_after_initialisation() -> None:
    """A run with snapshots at epochs 0 and 2 only has one epoch after initialisation: no transition, no
    flip, and no crash (the Embeddings page of such a run showed an error)."""
    from backend.analysis.events import training_events

    pred = np.array([[0, 1, 1], [1, 1, 0]])
    ok = np.array([[True, False, True], [False, False, True]])
    prob = np.array([[0.9, 0.2, 0.8], [0.4, 0.3, 0.7]])
    one = training_events([0, 2], pred, ok, prob)
    assert one["flips"].tolist() == [0, 0, 0] and one["first_flip_epoch"].tolist() == [-1, -1, -1]
    assert one["n_epochs"].tolist() == [1, 1, 1] and one["first_learned_epoch"].tolist() == [-1, -1, 2]
    none = training_events([0], pred[:1], ok[:1], prob[:1])
    assert none["flips"].tolist() == [0, 0, 0] and none["confidence"].isna().all()
