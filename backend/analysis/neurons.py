"""Per-unit scores for the neuron drill-down (SCIENCE.md 3.1 c1/c3 per unit, 3.4 mechanisms).

Inputs follow :mod:`backend.analysis.measures`: ``pre`` (n_samples, n_units) pre-activations of one
layer, integer label arrays (n_samples,). Outputs are one row per unit (or per unit and label).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import entr

from backend.analysis.measures import check_labels, check_pre, group_moments, parent_of, subclass_selectivity, variance_ratio
from backend.errors import expected

Array = NDArray[np.float64]


def _best(scores: Array, ids: NDArray[np.int64], none: NDArray[np.bool_]) -> tuple[Array, NDArray[np.int64]]:
    """Row-wise max of (n_units, n_groups) scores (NaN skipped) and its column id; -1 where ``none`` or all NaN."""
    filled = np.where(np.isnan(scores), -np.inf, scores)
    arg = filled.argmax(axis=1)
    best = filled[np.arange(len(filled)), arg]
    missing = np.isneginf(best)
    return np.where(missing, np.nan, best), np.where(missing | none, -1, ids[arg])


def _onehot(labels: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    ids, inv = np.unique(labels, return_inverse=True)
    return ids, np.eye(len(ids))[inv]


def high_activation(pre: ArrayLike, *, quantile: float = 0.99) -> NDArray[np.bool_]:
    """H_n(q) of SCIENCE.md 3.4 [P]: samples where the unit fires (post-ReLU > 0) at or above its q-quantile.

    pre : (n_samples, n_units) -> (n_samples, n_units) bool.
    [P choice] A zero post-ReLU value never enters H, whatever q: when more than a fraction q of a
    unit's values are 0, the q-quantile is 0 and ``>= Q_q`` alone would put every sample in H, so
    the sparsest, most selective units would score at chance. Such a unit's H is the samples it
    fires on (fewer than (1 - q) N). Positive values tied at the quantile all enter: they are
    equally high, and leaving them out could empty H for a unit with few distinct values. A unit
    that never fires (dead, or pre-activation <= 0 everywhere) has an empty H: its purity is NaN.
    """
    if not 0 <= quantile <= 1:
        raise ValueError(expected("quantile", expected="a number in [0, 1]", got=quantile))
    post = np.maximum(check_pre(pre), 0.0)
    return (post > 0) & (post >= np.quantile(post, quantile, axis=0))


def subclass_concentration(high: NDArray[np.bool_], *, subclass: ArrayLike, superclass: ArrayLike) -> Array:
    """SCIENCE.md 3.4 [P]: 1 - normalised entropy of the subclass histogram of H within H's majority superclass.

    high : (n_samples, n_units) bool from :func:`high_activation` -> (n_units,). The entropy is
    normalised by log(number of subclasses of that superclass), absent subclasses counting as 0;
    NaN when that superclass has a single subclass or H is empty. Ties for the majority go to the smallest id.
    """
    h = check_pre(high, name="high")
    sub = check_labels(subclass, name="subclass", n=len(h))
    sup = check_labels(superclass, name="superclass", n=len(h))
    sub_ids, sub_hot = _onehot(sub)
    sup_ids, sup_hot = _onehot(sup)
    member = parent_of(sub_ids, sub, sup, name="superclass")[None, :] == sup_ids[:, None]  # (n_superclasses, n_subclasses)
    majority = (h.T @ sup_hot).argmax(axis=1)  # (n_units,)
    counts = (h.T @ sub_hot) * member[majority]  # (n_units, n_subclasses), zero outside the majority superclass
    total = counts.sum(axis=1, keepdims=True)  # 0 only when H is empty
    p = counts / np.where(total > 0, total, 1.0)
    m = member[majority].sum(axis=1)
    norm = np.log(np.maximum(m, 2))
    return np.where((m >= 2) & (total[:, 0] > 0), 1.0 - entr(p).sum(axis=1) / norm, np.nan)


def unit_scores(pre: ArrayLike, *, classes: ArrayLike, subclass: ArrayLike | None = None, superclass: ArrayLike | None = None,
                quantile: float = 0.99) -> pd.DataFrame:
    """One row per unit: dead flag, best c1 and c3 scores, high-activation class purity.

    pre : (n_samples, n_units) pre-activations; classes : (n_samples,) training labels;
    subclass, superclass : (n_samples,) or both None (no hierarchy).
    Columns:
      unit, dead;
      c1, c1_subclass: max over subclasses of sel(n, i) (SCIENCE.md 3.1, c1) and its subclass id
        (NaN and -1 without hierarchy);
      c3, c3_class: max over classes of r(n, i) (SCIENCE.md 3.1, c3) and its class id;
        the ids are -1 for dead or constant units, whose scores are all 0;
      hap, hap_class, hap_chance: high-activation class purity [P] (SCIENCE.md 3.4) at ``quantile``
        q: H = :func:`high_activation` (post-ReLU > 0 and >= the unit's q-quantile), hap =
        max_c |H & C_c| / |H|, the majority class (smallest id on ties) and the chance level
        max_c |C_c| / N; a unit that never fires has no H: hap NaN, hap_class -1;
      hap_subclass_concentration: :func:`subclass_concentration` (NaN without hierarchy).
    """
    x = check_pre(pre)
    y = check_labels(classes, name="classes", n=len(x))
    if (subclass is None) != (superclass is None):
        raise ValueError(expected("subclass and superclass", expected="both given or both None", got="only one"))
    none = np.all(x < 0, axis=0) | (np.ptp(x, axis=0) == 0)
    class_ids, hot = _onehot(y)
    c3, c3_class = _best(variance_ratio(x, classes=y), class_ids, none)
    high = high_activation(x, quantile=quantile)
    in_class = high.T.astype(np.float64) @ hot  # (n_units, n_classes)
    df = pd.DataFrame({"unit": np.arange(x.shape[1]), "dead": np.all(x < 0, axis=0)})
    if subclass is None:
        df["c1"], df["c1_subclass"], conc = np.nan, -1, np.full(x.shape[1], np.nan)
    else:
        assert superclass is not None  # both given or both None (checked above)
        sel, sub_ids = subclass_selectivity(x, subclass=subclass, superclass=superclass)
        df["c1"], df["c1_subclass"] = _best(sel, sub_ids, none)
        conc = subclass_concentration(high, subclass=subclass, superclass=superclass)
    df["c3"], df["c3_class"] = c3, c3_class
    size = high.sum(axis=0)
    df["hap"] = np.where(size > 0, in_class.max(axis=1) / np.maximum(size, 1), np.nan)
    df["hap_class"] = np.where(size > 0, class_ids[in_class.argmax(axis=1)], -1)
    df["hap_chance"] = hot.sum(axis=0).max() / len(x)
    df["hap_subclass_concentration"] = conc
    return df


def class_stats(pre: ArrayLike, *, labels: ArrayLike) -> pd.DataFrame:
    """Long table of per-(unit, label) pre-activation statistics, for classes or subclasses (SCIENCE.md 6.5 drill-down).

    pre : (n_samples, n_units); labels : (n_samples,). Returns n_units * n_labels rows sorted by
    unit then label, columns unit, label, mean, std (population, ddof=0), n.
    """
    x = check_pre(pre)
    ids, counts, means, m2 = group_moments(x, check_labels(labels, name="labels", n=len(x)))
    n_units = x.shape[1]
    return pd.DataFrame({
        "unit": np.repeat(np.arange(n_units), len(ids)),
        "label": np.tile(ids, n_units),
        "mean": means.T.ravel(),
        "std": np.sqrt(m2 / counts[:, None]).T.ravel(),
        "n": np.tile(counts, n_units),
    })


def wtm_index(pre: ArrayLike, *, cluster: ArrayLike, cluster_class: ArrayLike, eps: float = 1e-6) -> Array:
    """Winner-take-most index [P] of SCIENCE.md 3.4, per unit.

    pre : (n_samples, n_units) pre-activations; cluster : (n_samples,) known cluster (fine label);
    cluster_class : (n_samples,) the class of each sample's cluster (>= 2 classes). With p_k the
    unit's mean pre-activation over cluster k (unweighted over clusters in the class means):
      spread_c = max_{k in c} p_k - min_{k in c} p_k,  gap_c = |mean_{k in c} p_k - mean_{k not in c} p_k|,
      WTM = max_c spread_c / (gap_c + eps).
    The spec writes gap_n without saying which class: we pair each class's spread with its own gap
    [P choice]. With two classes (SynthClust, 2-class MNIST) gap_c is the same for both classes,
    so every reading agrees. No dead-unit rule applies. Returns (n_units,).
    """
    x = check_pre(pre)
    k = check_labels(cluster, name="cluster", n=len(x))
    if not eps > 0:
        raise ValueError(expected("eps", expected="a number > 0", got=eps))
    ids, _, means, _ = group_moments(x, k)
    cls = parent_of(ids, k, check_labels(cluster_class, name="cluster_class", n=len(x)), name="cluster_class")
    if len(np.unique(cls)) < 2:
        raise ValueError(expected("cluster_class", expected="at least 2 classes", got=len(np.unique(cls))))
    best = np.full(x.shape[1], -np.inf)
    for c in np.unique(cls):
        inside = means[cls == c]
        gap = np.abs(inside.mean(axis=0) - means[cls != c].mean(axis=0))
        best = np.maximum(best, (inside.max(axis=0) - inside.min(axis=0)) / (gap + eps))
    return best


def wtm_fraction(wtm: ArrayLike) -> float:
    """Fraction of units with WTM > 1 (SCIENCE.md 3.4 [P]). wtm : (n_units,), non-empty."""
    w = np.asarray(wtm, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(expected("wtm", expected="a non-empty 1-D array", got=w.shape))
    return float(np.mean(w > 1))
