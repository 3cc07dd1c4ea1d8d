"""data.train_per_label: a seeded, per-label subset of the training split (the study's smaller data)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.config import ConfigError, DataConfig, load_config
from backend.data import load_dataset


def test_keeps_that_many_training_examples_of_each_label_and_the_whole_test_split() -> None:
    full = load_dataset(DataConfig(name="digits"))
    small = load_dataset(DataConfig(name="digits", train_per_label=7))
    labels, counts = np.unique(small.train.label, return_counts=True)
    assert labels.tolist() == list(range(10)) and counts.tolist() == [7] * 10
    assert np.isin(small.train.sample_id, full.train.sample_id).all()
    assert np.array_equal(small.test.sample_id, full.test.sample_id)
    # the images are those of the kept ids, and the input statistics are the kept examples' own
    row = {int(s): i for i, s in enumerate(full.train.sample_id)}
    assert np.array_equal(small.train.x, full.train.x[[row[int(s)] for s in small.train.sample_id]])
    assert small.mean != full.mean
    assert small.mean[0] == pytest.approx(float((small.train.x / 255.0).mean()))


def test_the_subset_depends_on_subset_seed_only() -> None:
    a = load_dataset(DataConfig(name="digits", train_per_label=5))
    b = load_dataset(DataConfig(name="digits", train_per_label=5))
    c = load_dataset(DataConfig(name="digits", train_per_label=5, subset_seed=1))
    assert np.array_equal(a.train.sample_id, b.train.sample_id)
    assert not np.array_equal(a.train.sample_id, c.train.sample_id)


def test_zero_or_more_than_there_are_keeps_everything() -> None:
    full = load_dataset(DataConfig(name="digits"))
    for n in (0, 10_000):
        assert np.array_equal(load_dataset(DataConfig(name="digits", train_per_label=n)).train.sample_id,
                              full.train.sample_id)


def test_a_negative_count_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"data.train_per_label.*-1"):
        load_config(None, ("data.train_per_label=-1",))
