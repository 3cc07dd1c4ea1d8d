"""Data sets: built-in (digits, synthclust) and loaders of local files (MNIST, CIFAR, folders)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from backend.config import DataConfig
from backend.data.base import Dataset, Split, channel_stats, stratified_indices
from backend.errors import DataError

__all__ = ["Dataset", "Split", "load_dataset", "stratified_indices"]


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set named by ``cfg.name`` (see :data:`backend.config.DATASETS`), keeping only
    ``cfg.train_per_label`` training examples per fine label when it is set."""
    return reduce_training(_load(cfg), per_label=cfg.train_per_label, seed=cfg.subset_seed)


def reduce_training(ds: Dataset, *, per_label: int, seed: int) -> Dataset:
    """``ds`` with a seeded subset of ``per_label`` training examples of each fine label (all if 0 or fewer).

    The test split is untouched; image statistics (mean, std) are those of the kept examples, the data
    the model actually sees.
    """
    if per_label <= 0:
        return ds
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(ds.train.label):
        idx = np.flatnonzero(ds.train.label == label)
        keep.append(idx if idx.size <= per_label else rng.choice(idx, size=per_label, replace=False))
    train = ds.train.subset(np.sort(np.concatenate(keep)))
    stats = channel_stats(train.x) if ds.kind == "image" else (ds.mean, ds.std)
    return dataclasses.replace(ds, train=train, mean=stats[0], std=stats[1])


def _load(cfg: DataConfig) -> Dataset:
    from backend.data import builtin

    if cfg.name == "digits":
        return builtin.digits()
    if cfg.name == "synthclust":
        return builtin.synthclust(cfg.synthclust)
    from backend.data import files

    if not cfg.root:
        raise DataError(
            f"data.root is empty but data set {cfg.name!r} reads local files; set data.root to the folder "
            f"that holds them (see docs/datasets.md), e.g. --set data.root=data/datasets."
        )
    root = Path(cfg.root).expanduser()
    if cfg.name in ("mnist", "fashion-mnist"):
        return files.load_mnist(root, variant=cfg.name, download=cfg.download)
    if cfg.name == "cifar10":
        return files.load_cifar10(root, download=cfg.download)
    if cfg.name == "cifar100":
        return files.load_cifar100(root, download=cfg.download)
    if cfg.name == "imagefolder":
        from backend.data.imagefolder import load_imagefolder

        return load_imagefolder(
            root,
            image_size=cfg.image_size,
            channels=cfg.channels,
            superclass_map=Path(cfg.superclass_map).expanduser() if cfg.superclass_map else None,
            test_fraction=cfg.test_fraction,
        )
    raise DataError(f"data.name must be a known data set; got {cfg.name!r}.")  # validate() catches it first
