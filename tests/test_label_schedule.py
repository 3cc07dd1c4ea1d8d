"""[train.labels]: random pre-training on relabelled clusters and a planted relabelling, with real tiny training."""

from __future__ import annotations

import numpy as np
import pytest

from backend import api
from backend.config import LabelScheduleConfig
from backend.errors import ConfigError
from backend.training.labels import LabelSchedule
from tests.conftest import tiny_config

SYNTH = ('data.name="synthclust"', "data.synthclust.train_per_cluster=20", "data.synthclust.test_per_cluster=5",
         "data.synthclust.clusters_per_class=4", "model.depth=1", "model.width=32", "train.batch_size=32",
         "analysis.auto=false")


def test_schedule_phases_and_seeded_random_targets() -> None:
    fine = np.repeat(np.arange(8), 3)
    true = fine // 4
    cfg = LabelScheduleConfig(relabel=(1,), relabel_to=1, relabel_from=4, random_epochs=2, random_seed=3)
    s = LabelSchedule(cfg, fine=fine, true=true, n_fine=8, n_targets=2)
    assert s.phase(1) == (True, False) and s.phase(3) == (False, False) and s.phase(4) == (False, True)
    rand = s.targets(s.phase(1))
    assert all(len(set(rand[fine == c])) == 1 for c in range(8))  # one random class per cluster
    again = LabelSchedule(cfg, fine=fine, true=true, n_fine=8, n_targets=2)
    np.testing.assert_array_equal(rand, again.targets((True, False)))
    np.testing.assert_array_equal(s.targets(s.phase(3)), true)
    late = s.targets(s.phase(4))
    assert (late[fine == 1] == 1).all() and (late[fine != 1] == true[fine != 1]).all()
    assert s.record()["random_targets"] == [int(v) for v in s.random_targets]  # type: ignore[union-attr]


def test_bad_schedules_are_refused_by_name(store: api.RunStore) -> None:
    with pytest.raises(ConfigError, match=r"train.labels.random_epochs must be .*\[0, train.epochs=3\)"):
        tiny_config("train.epochs=3", "train.labels.random_epochs=3")
    with pytest.raises(ConfigError, match=r"train.labels.relabel_from must be"):
        tiny_config("train.epochs=3", "train.labels.relabel=[1]", "train.labels.relabel_from=4")
    with pytest.raises(ConfigError, match=r"train.labels.relabel names fine label\(s\) \[99\]"):
        api.train(tiny_config('run_id="bad"', *SYNTH, "train.labels.relabel=[99]"), store, progress=False)
    assert not (store.root / "bad").exists()  # refused before the run folder is made


def test_planted_relabelling_is_trained_and_evaluated_against_true_labels(store: api.RunStore) -> None:
    run = api.train(tiny_config('run_id="planted"', *SYNTH, "train.epochs=16", "snapshots.epochs=[6, 16]",
                                "train.labels.relabel=[0]", "train.labels.relabel_to=1", "train.labels.relabel_from=7"),
                    store, progress=False)
    info = api.read_run(store, run)
    assert info["label_schedule"]["relabel"] == [0] and info["label_schedule"]["relabel_from"] == 7
    samples = api.read_samples(store, run)
    moved = samples["sample_id"][samples["label"] == 0]
    before, after = (api.read_predictions(store, run, e).set_index("sample_id").loc[moved] for e in (6, 16))
    assert before["correct"].mean() > 0.9  # cluster 0 learnt as its true class 0 ...
    assert (after["prediction"] == 1).mean() > 0.9  # ... then as class 1 once relabelled,
    assert not after["correct"].any()  # and scored against its true class: wrong
    others = api.read_predictions(store, run, 16).set_index("sample_id").drop(index=moved)
    assert others["correct"].mean() > 0.9


def test_random_pretraining_then_true_labels(store: api.RunStore) -> None:
    run = api.train(tiny_config('run_id="pre"', *SYNTH, "train.epochs=16", "snapshots.epochs=[8, 16]",
                                "train.labels.random_epochs=8", "train.labels.random_seed=1"), store, progress=False)
    drawn = np.asarray(api.read_run(store, run)["label_schedule"]["random_targets"])
    samples = api.read_samples(store, run).set_index("sample_id")
    assert (drawn != np.arange(8) // 4).any()  # the draw relabels some clusters
    mid, end = (api.read_predictions(store, run, e).set_index("sample_id") for e in (8, 16))
    assert (mid["prediction"] == drawn[samples.loc[mid.index, "label"]]).mean() > 0.9  # the random classes were learnt
    assert end["correct"].mean() > 0.9  # then the true ones
