"""The two data sets that need no files: scikit-learn's digits and the thesis's SynthClust."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from backend.config import SynthClustConfig
from backend.data.base import Dataset, Split, channel_stats

# Fixed superclass grouping of the ten digits into five superclasses of two digits each, so a
# model can be trained on superclasses while the digits stay as subclasses: the thesis's
# CIFAR-100-superclass setting in miniature (SCIENCE.md section 4). Digits are paired by a shared
# stroke feature, not at random, so each superclass is a plausible "natural" group.
DIGIT_SUPERCLASSES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("round", (0, 6)),  # closed loop at the bottom
    ("stroke", (1, 7)),  # mostly straight strokes
    ("bend", (2, 5)),  # an S-like bend
    ("twin-curve", (3, 8)),  # two stacked curves
    ("hook", (4, 9)),  # an upper loop or hook on a stem
)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def digits() -> Dataset:
    """scikit-learn's handwritten digits: 1,797 8x8 grey images, shipped with scikit-learn.

    Split: stratified by digit, 20 % test, ``random_state=0`` (1,437 train / 360 test); the split
    never depends on the run's seed. ``sample_id`` is the index in ``load_digits()``.
    Pixels (0..16) are stored as uint8 ``16 * 15 = 240`` at most.
    """
    bunch = load_digits()
    x = (bunch.images * 15).astype(np.uint8)[:, None, :, :]  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    ids = np.arange(len(y), dtype=np.int64)
    tr, te = train_test_split(ids, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED)
    tr, te = np.sort(tr), np.sort(te)
    mapping = np.zeros(10, dtype=np.int64)
    for s, (_, members) in enumerate(DIGIT_SUPERCLASSES):
        mapping[list(members)] = s
    mean, std = channel_stats(x[tr])
    return Dataset(
        name="digits",
        kind="image",
        train=Split(x[tr], y[tr], ids[tr]),
        test=Split(x[te], y[te], ids[te]),
        label_names=tuple(str(d) for d in range(10)),
        superclass_names=tuple(name for name, _ in DIGIT_SUPERCLASSES),
        label_to_superclass=mapping,
        mean=mean,
        std=std,
    )


def _centroids(rng: np.random.Generator, cfg: SynthClustConfig) -> np.ndarray:
    n_clusters = cfg.classes * cfg.clusters_per_class
    coords = rng.permutation(cfg.dim)[: n_clusters * cfg.active_per_centroid].reshape(n_clusters, -1)
    centroids = np.zeros((n_clusters, cfg.dim), dtype=np.float32)
    np.put_along_axis(centroids, coords, 1.0, axis=1)
    return centroids


def synthclust_centroids(cfg: SynthClustConfig) -> np.ndarray:
    """The binary centroids of :func:`synthclust` with these settings: (n_clusters, dim) float32."""
    return _centroids(np.random.default_rng(cfg.seed), cfg)


def synthclust_difficulty(x: np.ndarray, cluster: np.ndarray, cfg: SynthClustConfig) -> np.ndarray:
    """SCIENCE.md 3.4 "easy/difficult split": <x, sum of the other classes' centroids> - <x, sum of its
    own class's centroids>; > 0 means difficult. x : (n, dim); cluster : (n,) cluster ids -> (n,) float64."""
    c = synthclust_centroids(cfg).astype(np.float64)
    cls = np.arange(len(c)) // cfg.clusters_per_class
    own = np.stack([c[cls == k].sum(axis=0) for k in range(cfg.classes)])  # (classes, dim)
    mine = own[np.asarray(cluster) // cfg.clusters_per_class]  # (n, dim)
    x = np.asarray(x, dtype=np.float64)
    return np.einsum("nd,nd->n", x, c.sum(axis=0) - mine) - np.einsum("nd,nd->n", x, mine)


def synthclust(cfg: SynthClustConfig) -> Dataset:
    """The thesis's synthetic clustered data (SCIENCE.md section 4, chapter 3).

    ``classes * clusters_per_class`` binary centroids in R^dim, each with ``active_per_centroid``
    ones on coordinates no other centroid uses; a sample is its centroid plus N(0, noise^2) noise.
    Cluster k belongs to class ``k // clusters_per_class``. Fine labels are the clusters and
    superclasses the classes, so the usual target is ``superclass``. Generated from ``cfg.seed``.
    ``test_noise`` (when > 0) draws the test samples at another noise level [P]: the training samples, and
    the random stream they come from, are the same whatever it is.
    """
    rng = np.random.default_rng(cfg.seed)
    n_clusters = cfg.classes * cfg.clusters_per_class
    centroids = _centroids(rng, cfg)

    def draw(per_cluster: int, std: float) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(n_clusters, dtype=np.int64), per_cluster)
        noise = rng.normal(0.0, std, size=(labels.size, cfg.dim)).astype(np.float32)
        return centroids[labels] + noise, labels

    x_tr, y_tr = draw(cfg.train_per_cluster, cfg.noise)
    x_te, y_te = draw(cfg.test_per_cluster, cfg.test_noise or cfg.noise)
    ids_tr = np.arange(len(y_tr), dtype=np.int64)
    ids_te = len(y_tr) + np.arange(len(y_te), dtype=np.int64)
    width = len(str(cfg.clusters_per_class - 1))
    names = tuple(f"c{k // cfg.clusters_per_class}.k{k % cfg.clusters_per_class:0{width}d}" for k in range(n_clusters))
    return Dataset(
        name="synthclust",
        kind="vector",
        train=Split(x_tr, y_tr, ids_tr),
        test=Split(x_te, y_te, ids_te),
        label_names=names,
        superclass_names=tuple(f"class {c}" for c in range(cfg.classes)),
        label_to_superclass=np.arange(n_clusters, dtype=np.int64) // cfg.clusters_per_class,
    )
