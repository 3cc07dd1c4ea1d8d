"""The in-memory data set every loader returns.

Images are kept as uint8 arrays of shape (N, C, H, W) and turned into normalised floats one batch
at a time, so CIFAR-sized data sets stay small in memory; vector data (SynthClust) is float32 of
shape (N, D). Every sample has a stable integer ``sample_id`` and a fine ``label``; data sets with
a two-level hierarchy map each fine label to one superclass (SCIENCE.md section 2, "Hierarchical
labels").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.model_selection import train_test_split

from backend.errors import DataError


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # uint8 (N, C, H, W) for images, float32 (N, D) for vectors
    label: np.ndarray  # int64 (N,), fine class
    sample_id: np.ndarray  # int64 (N,), unique across the train and test splits
    file_name: np.ndarray | None = None  # str (N,): where the data set names its samples' files, else None

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def subset(self, index: np.ndarray) -> Split:
        names = None if self.file_name is None else self.file_name[index]
        return Split(self.x[index], self.label[index], self.sample_id[index], names)


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: Literal["image", "vector"]
    train: Split
    test: Split
    label_names: tuple[str, ...]
    superclass_names: tuple[str, ...] | None = None
    label_to_superclass: np.ndarray | None = None  # int64 (n_labels,): fine label -> superclass index
    mean: tuple[float, ...] = (0.0,)  # per channel, of x/255 on the training split (images only)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        ids = np.concatenate([self.train.sample_id, self.test.sample_id])
        if np.unique(ids).size != ids.size:  # pragma: no cover - loader bug
            raise ValueError(f"data set {self.name}: sample ids are not unique")
        if self.label_to_superclass is not None and len(self.label_to_superclass) != len(self.label_names):
            raise ValueError(f"data set {self.name}: label_to_superclass must map every label")  # pragma: no cover

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[1:])

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def has_superclasses(self) -> bool:
        return self.label_to_superclass is not None

    def superclass(self, labels: np.ndarray) -> np.ndarray | None:
        if self.label_to_superclass is None:
            return None
        return self.label_to_superclass[labels]

    def num_targets(self, target: str) -> int:
        if target == "superclass":
            self.require_superclasses()
            assert self.superclass_names is not None
            return len(self.superclass_names)
        return self.num_labels

    def targets(self, split: Split, target: str) -> np.ndarray:
        """The labels the model is trained on: fine labels or their superclasses."""
        if target == "superclass":
            self.require_superclasses()
            return self.label_to_superclass[split.label]  # type: ignore[index]
        return split.label

    def require_superclasses(self) -> None:
        if self.label_to_superclass is None:
            raise DataError(
                f"data.target is 'superclass' but data set {self.name!r} has no superclasses; "
                "set data.target=\"label\" (or give data.superclass_map for an image folder)."
            )


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) scaled to [0, 1]."""
    xf = x.astype(np.float64) / 255.0
    mean = xf.mean(axis=(0, 2, 3))
    std = xf.std(axis=(0, 2, 3))
    std = np.where(std > 0, std, 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def image_dataset(name: str, train: Split, test: Split, label_names: Sequence[str],
                   superclasses: tuple[tuple[str, ...], np.ndarray] | None = None) -> Dataset:
    """A Dataset of uint8 images with per-channel statistics of its training split."""
    mean, std = channel_stats(train.x)
    return Dataset(
        name=name, kind="image", train=train, test=test, label_names=tuple(label_names),
        superclass_names=superclasses[0] if superclasses else None,
        label_to_superclass=superclasses[1] if superclasses else None, mean=mean, std=std,
    )


def stratified_indices(labels: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Indices of a seeded stratified subset of size ``n`` (all indices, sorted, when n >= len)."""
    size = labels.shape[0]
    if n >= size:
        return np.arange(size)
    if n <= 0:
        return np.arange(0)
    _, counts = np.unique(labels, return_counts=True)
    if n < counts.size or counts.min() < 2:
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(size, size=n, replace=False))
    idx, _ = train_test_split(np.arange(size), train_size=n, stratify=labels, random_state=seed)
    return np.sort(idx)
