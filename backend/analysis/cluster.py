"""Unsupervised clusters of a layer and how they match the labels (SCIENCE.md 3.5, all [P]).

HDBSCAN runs on the high-dimensional representation (a 10-D UMAP or PCA of the preprocessed
layer), never on the 2-D picture. The scores compare its clusters with the class labels (what the
network was trained on) and the subclass labels (the fine labels it was not told about).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


@dataclass(frozen=True)
class ClusterScores:
    n_clusters: int
    noise_fraction: float
    class_purity: float  # sum_k max_c |k ∩ C_c| / N_K over clusters k (noise excluded)
    subclass_purity: float  # the same with fine labels, within each cluster's majority class
    subclass_chance: float  # subclass purity expected from a cluster blind to subclasses
    fragmentation: float  # mean number of >= 60 %-pure clusters per class
    ari_class: float
    nmi_class: float
    ari_subclass: float
    nmi_subclass: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def auto_min_cluster_size(subclass: np.ndarray) -> int:
    """SCIENCE.md 3.5: ``max(10, n_per_subclass / 4)`` with n_per_subclass the median subclass size."""
    _, counts = np.unique(subclass, return_counts=True)
    return int(max(10, np.median(counts) / 4))


def hdbscan_labels(x: np.ndarray, *, min_cluster_size: int, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels (-1 = noise) and membership probabilities. x : (n_samples, n_dims)."""
    import hdbscan

    if min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be an int in [2, inf); got {min_cluster_size}")
    model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, core_dist_n_jobs=1)
    labels = model.fit_predict(np.ascontiguousarray(x, dtype=np.float64))
    return labels.astype(np.int32), model.probabilities_.astype(np.float32)


def _majority(values: np.ndarray) -> tuple[int, int]:
    ids, counts = np.unique(values, return_counts=True)
    i = int(np.argmax(counts))
    return int(ids[i]), int(counts[i])


def cluster_scores(labels: np.ndarray, *, classes: np.ndarray, subclass: np.ndarray | None = None,
                   pure_threshold: float = 0.6) -> ClusterScores:
    """Scores of HDBSCAN ``labels`` (n_samples,) against ``classes`` and, if given, ``subclass``.

    Without clusters every purity is NaN. ``subclass_chance`` is the subclass purity a cluster would
    get by drawing its members at random from its majority class: sum over clustered samples of the
    majority-subclass share of their cluster's class, i.e. max_s |C_s ∩ class| / |class| weighted
    like the purity. ARI and NMI count noise as one more cluster.
    """
    if labels.shape != classes.shape:
        raise ValueError(f"labels and classes must have the same shape; got {labels.shape} and {classes.shape}")
    clustered = labels >= 0
    n_k = int(clustered.sum())
    ids = np.unique(labels[clustered])
    nan = float("nan")
    class_hits = sub_hits = sub_chance = 0.0
    pure_per_class: dict[int, int] = {int(c): 0 for c in np.unique(classes)}
    for k in ids:
        members = labels == k
        major, count = _majority(classes[members])
        class_hits += count
        if count / members.sum() >= pure_threshold:
            pure_per_class[major] += 1
        if subclass is not None:
            in_major = members & (classes == major)
            sub_hits += _majority(subclass[in_major])[1]
            class_pool = subclass[classes == major]
            sub_chance += in_major.sum() * _majority(class_pool)[1] / class_pool.size
    sub_defined = subclass is not None and n_k > 0
    return ClusterScores(
        n_clusters=int(ids.size),
        noise_fraction=float(1.0 - n_k / max(labels.size, 1)),
        class_purity=class_hits / n_k if n_k else nan,
        subclass_purity=sub_hits / n_k if sub_defined else nan,
        subclass_chance=sub_chance / n_k if sub_defined else nan,
        fragmentation=float(np.mean(list(pure_per_class.values()))) if n_k else nan,
        ari_class=float(adjusted_rand_score(classes, labels)),
        nmi_class=float(normalized_mutual_info_score(classes, labels)),
        ari_subclass=float(adjusted_rand_score(subclass, labels)) if subclass is not None else nan,
        nmi_subclass=float(normalized_mutual_info_score(subclass, labels)) if subclass is not None else nan,
    )
