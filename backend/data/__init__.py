"""Data sets: built-in (digits, synthclust) and loaders of local files (MNIST, CIFAR, folders)."""

from __future__ import annotations

from pathlib import Path

from backend.config import DataConfig
from backend.data.base import Dataset, Split, stratified_indices
from backend.errors import DataError

__all__ = ["Dataset", "Split", "load_dataset", "stratified_indices"]


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set named by ``cfg.name`` (see :data:`backend.config.DATASETS`)."""
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
