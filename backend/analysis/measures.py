"""Intraclass-clustering measures c1-c4 (SCIENCE.md 3.1) as pure functions over activation arrays.

Conventions (SCIENCE.md 2): ``pre`` is an array of shape (n_samples, n_units) holding one layer's
pre-activations (conv channels already reduced by global max pooling); the post-ReLU values are
``np.maximum(pre, 0)``. A unit is *dead* when its pre-activation is < 0 on every sample. Label
arrays have shape (n_samples,) and hold non-negative ints in any order; every per-(sub)class output
is ordered like ``np.unique(labels)``. Standard deviations are population ones (ddof=0), as in
the reference code. NaN marks an undefined value (e.g. a subclass alone in its superclass) and is
skipped by every aggregate (top-k means, medians, means).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix
from sklearn.metrics import pairwise_distances, silhouette_samples

from backend.analysis.accel import cosine_silhouette_samples
from backend.errors import expected

Array = NDArray[np.float64]


# ---------------------------------------------------------------- validation (shared by the package)
def check_pre(pre: ArrayLike, *, name: str = "pre") -> Array:
    """``pre`` as a finite float64 array of shape (n_samples >= 1, n_units >= 1), else ValueError."""
    x = np.asarray(pre, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(expected(name, expected="a 2-D array of shape (n_samples >= 1, n_units >= 1)", got=x.shape))
    if not np.isfinite(x).all():
        raise ValueError(expected(name, expected="finite (no NaN or inf)", got=f"{int((~np.isfinite(x)).sum())} non-finite values"))
    return x


def check_labels(labels: ArrayLike, *, name: str, n: int) -> NDArray[np.int64]:
    """``labels`` as an int64 array of shape (n,) with values >= 0, else ValueError naming ``name``."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(expected(name, expected=f"a 1-D array with one label per sample (length {n})", got=y.shape))
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(expected(name, expected="an array of integer labels", got=str(y.dtype)))
    if n and y.min() < 0:
        raise ValueError(expected(name, expected="non-negative labels", got=int(y.min())))
    return y.astype(np.int64)


def check_k(k: int, *, name: str = "k") -> int:
    """``k`` as an int >= 1, else ValueError."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(expected(name, expected="an int >= 1", got=k))
    return int(k)


def parent_of(ids: NDArray[np.int64], child: NDArray[np.int64], parent: NDArray[np.int64], *, name: str) -> NDArray[np.int64]:
    """Parent label of each child id in ``ids`` (shape (n_ids,)); ValueError if a child has two parents."""
    pairs = np.unique(np.stack([child, parent]), axis=1)
    if pairs.shape[1] != len(ids):
        bad = pairs[0][np.flatnonzero(np.diff(pairs[0]) == 0)[0]]
        raise ValueError(expected(name, expected="one value for all samples of a same fine label", got=f"several for label {bad}"))
    return pairs[1]


def group_moments(x: Array, labels: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], Array, Array]:
    """Per-label count, mean and sum of squared deviations of every column of ``x`` (n_samples, n_units).

    Returns ``ids`` (n_groups,), ``counts`` (n_groups,), ``means`` and ``m2`` (n_groups, n_units);
    the two-pass form keeps the variance accurate when a unit is shifted by a large constant. The group
    sums are a sparse one-hot (n_groups, n_samples) product: 2x faster than sorting and ``reduceat`` at
    100,000 x 512, equal to 1e-13.
    """
    ids, inv = np.unique(labels, return_inverse=True)
    counts = np.bincount(inv, minlength=len(ids))
    onehot = csr_matrix((np.ones(len(inv)), (inv, np.arange(len(inv)))), shape=(len(ids), len(inv)))
    means = np.asarray(onehot @ x) / counts[:, None]
    dev = x - means[inv]
    m2 = np.asarray(onehot @ np.square(dev, out=dev))
    return ids, counts, means, m2


def _pooled(counts: NDArray[np.int64], means: Array, m2: Array) -> tuple[int, Array, Array]:
    """Count, mean and sum of squared deviations of the union of groups (parallel variance formula)."""
    n = int(counts.sum())
    mean = (counts[:, None] * means).sum(axis=0) / n
    return n, mean, m2.sum(axis=0) + (counts[:, None] * (means - mean) ** 2).sum(axis=0)


def _nan_agg(values: ArrayLike, how: str) -> float:
    """Median or mean of the non-NaN values; NaN (without a warning) when there are none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan")
    return float(np.median(v) if how == "median" else v.mean())


def _as_layers(pres: Sequence[ArrayLike] | NDArray[np.float64], *, name: str = "pres") -> list[Array]:
    layers = [pres] if isinstance(pres, np.ndarray) and pres.ndim == 2 else list(pres)
    if not layers:
        raise ValueError(expected(name, expected="a non-empty sequence of (n_samples, n_units) arrays", got=0))
    out = [check_pre(p, name=f"{name}[{i}]") for i, p in enumerate(layers)]
    if len({p.shape[0] for p in out}) != 1:
        raise ValueError(expected(name, expected="layers with the same n_samples", got=[p.shape[0] for p in out]))
    return out


# ---------------------------------------------------------------- building blocks
def dead_units(pre: ArrayLike) -> NDArray[np.bool_]:
    """Units whose pre-activation is < 0 on every sample (SCIENCE.md 2). pre (n_samples, n_units) -> (n_units,) bool."""
    return np.all(check_pre(pre) < 0, axis=0)


def topk_mean(scores: ArrayLike, k: int, axis: int = 0) -> Array:
    """Mean of the k largest values along ``axis`` (SCIENCE.md 2, "topk-mean").

    k is clipped to the axis length. NaN entries are skipped (the mean runs over the k largest
    non-NaN values); a slice that is all NaN gives NaN. Shape: ``scores`` minus ``axis`` (a numpy
    float for 1-D ``scores``).
    """
    k = check_k(k)
    a = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1)
    if a.shape[-1] == 0:
        raise ValueError(expected("scores", expected=f"a non-empty axis {axis}", got=np.shape(scores)))
    valid = ~np.isnan(a)
    kk = np.minimum(k, valid.sum(axis=-1))
    top = -np.sort(np.where(valid, -a, np.inf), axis=-1)[..., :k]  # descending, NaN last (as -inf)
    total = np.where(np.arange(top.shape[-1]) < kk[..., None], top, 0.0).sum(axis=-1)
    return np.divide(total, kk, out=np.full(kk.shape, np.nan), where=kk > 0)[()]  # [()]: a numpy scalar for 1-D input


# ---------------------------------------------------------------- c1 / c3: neuron level
def subclass_selectivity(pre: ArrayLike, *, subclass: ArrayLike, superclass: ArrayLike) -> tuple[Array, NDArray[np.int64]]:
    """sel(n, i) of SCIENCE.md 3.1, c1, on pre-activations.

    sel(n,i) = (mu_{n,C_i} - mu_{n,S(i)\\C_i}) / (sigma_{n,C_i} + sigma_{n,S(i)\\C_i} + 1e-7), signed.

    pre : (n_samples, n_units); subclass, superclass : (n_samples,), each subclass inside one superclass.
    Returns ``scores`` (n_units, n_subclasses) and ``subclass_ids`` (n_subclasses,) = np.unique(subclass).
    Dead units (and constant units, whose formula gives 0 anyway) score 0. A subclass alone in its
    superclass has no "rest": its column is NaN and the aggregates leave it out.
    """
    x = check_pre(pre)
    sub = check_labels(subclass, name="subclass", n=len(x))
    parent = parent_of(np.unique(sub), sub, check_labels(superclass, name="superclass", n=len(x)), name="superclass")
    ids, counts, means, m2 = group_moments(x, sub)
    scores = np.full((x.shape[1], len(ids)), np.nan)
    for i in range(len(ids)):
        rest = parent == parent[i]
        rest[i] = False
        if rest.any():
            n_r, mu_r, m2_r = _pooled(counts[rest], means[rest], m2[rest])
            sd_i, sd_r = np.sqrt(m2[i] / counts[i]), np.sqrt(m2_r / n_r)
            scores[:, i] = (means[i] - mu_r) / (sd_i + sd_r + 1e-7)
    zero = np.all(x < 0, axis=0) | (np.ptp(x, axis=0) == 0)
    scores[np.ix_(zero, ~np.isnan(scores[0]))] = 0.0
    return scores, ids


def variance_ratio(pre: ArrayLike, *, classes: ArrayLike) -> Array:
    """r(n, i) = sigma_{n,C_i} / sigma_{n,D} of SCIENCE.md 3.1, c3, on pre-activations.

    pre : (n_samples, n_units); classes : (n_samples,). Returns (n_units, n_classes), columns in
    np.unique(classes) order. Dead units score 0; a constant unit (sigma_D = 0) scores 0 (the
    reference code divides by sigma_D + 1e-7 instead, which gives the same 0).
    """
    x = check_pre(pre)
    _, counts, means, m2 = group_moments(x, check_labels(classes, name="classes", n=len(x)))
    n, _, m2_d = _pooled(counts, means, m2)
    sd_c = np.sqrt(m2 / counts[:, None]).T
    sd_d = np.sqrt(m2_d / n)
    zero = np.all(x < 0, axis=0) | (np.ptp(x, axis=0) == 0)
    return np.where(zero[:, None], 0.0, sd_c / np.where(zero, 1.0, sd_d)[:, None])


def c1_per_subclass(pres: Sequence[ArrayLike], *, subclass: ArrayLike, superclass: ArrayLike, k: int = 30) -> Array:
    """topk-mean over all units of sel(n, i), per subclass (SCIENCE.md 3.1, c1): the c1 histogram.

    pres : list of (n_samples, n_units_l) arrays, one per ReLU layer; units are concatenated over
    layers. k = 30 as in the paper [T] (the reference code's default is round(n_units / n_subclasses)
    [C]). Returns (n_subclasses,) in np.unique(subclass) order; NaN for a subclass alone in its superclass.
    """
    k = check_k(k)
    scores = np.vstack([subclass_selectivity(p, subclass=subclass, superclass=superclass)[0] for p in _as_layers(pres)])
    return topk_mean(scores, k, axis=0)


def c1(pres: Sequence[ArrayLike], *, subclass: ArrayLike, superclass: ArrayLike, k: int = 30) -> float:
    """Network-level c1 (SCIENCE.md 3.1): median over subclasses of :func:`c1_per_subclass` (NaN skipped)."""
    return _nan_agg(c1_per_subclass(pres, subclass=subclass, superclass=superclass, k=k), "median")


def c3(pres: Sequence[ArrayLike], *, classes: ArrayLike, k: int = 30) -> float:
    """Network-level c3 (SCIENCE.md 3.1): mean over classes of topk-mean over all units of r(n, i).

    pres : list of (n_samples, n_units_l) arrays, units concatenated over layers. k = 30 [T]
    (reference code default: n_units / n_classes [C]).
    """
    k = check_k(k)
    ratios = np.vstack([variance_ratio(p, classes=classes) for p in _as_layers(pres)])
    return _nan_agg(topk_mean(ratios, k, axis=0), "mean")


def layer_c1(pre: ArrayLike, *, subclass: ArrayLike, superclass: ArrayLike, k: int = 5) -> float:
    """Layer-wise c1 (SCIENCE.md 3.1, layer-wise variants; thesis Fig. 2.6): top-5 units of this layer."""
    return c1([pre], subclass=subclass, superclass=superclass, k=k)


def layer_c3(pre: ArrayLike, *, classes: ArrayLike, k: int = 5) -> float:
    """Layer-wise c3 (SCIENCE.md 3.1, layer-wise variants; thesis Fig. 2.6): top-5 units of this layer."""
    return c3([pre], classes=classes, k=k)


# ---------------------------------------------------------------- noise floor of c1 and c2
def shuffle_within(subclass: ArrayLike, superclass: ArrayLike, *, seed: int = 0) -> NDArray[np.int64]:
    """Subclass labels permuted at random among the samples of each superclass (SCIENCE.md 3.1, "Invariances").

    subclass, superclass : (n_samples,), each subclass inside one superclass. Returns (n_samples,):
    every subclass keeps its size and its superclass, but its members are drawn at random from the
    superclass, so c1 and c2 computed with these labels give their noise floor (c2 about 0) for
    the same activations, samples and k. Deterministic for a given ``seed``.
    """
    sub = np.asarray(subclass)
    sup = check_labels(superclass, name="superclass", n=len(sub))
    sub = check_labels(subclass, name="subclass", n=len(sup))
    parent_of(np.unique(sub), sub, sup, name="superclass")
    rng = np.random.default_rng(seed)
    out = sub.copy()
    for s in np.unique(sup):
        idx = np.flatnonzero(sup == s)
        out[idx] = sub[idx][rng.permutation(len(idx))]
    return out


# ---------------------------------------------------------------- c2: layer-level silhouettes
def _subsample(inv: NDArray[np.int64], cap: int | None, rng: np.random.Generator, *, name: str) -> NDArray[np.int64]:
    """Sorted sample indices keeping at most ``cap`` samples of each group (all when cap is None)."""
    if cap is None:
        return np.arange(len(inv))
    cap = check_k(cap, name=name)
    keep = [rng.permutation(np.flatnonzero(inv == g))[:cap] for g in range(inv.max() + 1)]
    return np.sort(np.concatenate(keep))


def subclass_silhouettes(post: ArrayLike, *, subclass: ArrayLike, superclass: ArrayLike, metric: str = "cosine",
                         max_per_subclass: int | None = None, seed: int = 0) -> Array:
    """sil(l, i) of SCIENCE.md 3.1, c2: mean silhouette of subclass i's samples within its superclass.

    post : (n_samples, n_units) post-ReLU values of one layer; subclass, superclass : (n_samples,).
    Per superclass, sklearn ``silhouette_samples`` with the subclasses as cluster labels and
    ``metric`` (cosine [T]; all-zero rows are at distance 1 from everything, without warnings); for
    cosine its closed form :func:`backend.analysis.accel.cosine_silhouette_samples` (equal to 1e-9).
    ``max_per_subclass`` (None = all) subsamples each subclass with ``seed`` to cap the O(n^2) cost.
    Returns (n_subclasses,) in np.unique(subclass) order; NaN for a superclass with a single
    subclass, or with too few samples for sklearn (it needs n_samples > n_subclasses).
    """
    x = check_pre(post, name="post")
    sub = check_labels(subclass, name="subclass", n=len(x))
    ids, inv = np.unique(sub, return_inverse=True)
    parent = parent_of(ids, sub, check_labels(superclass, name="superclass", n=len(x)), name="superclass")
    keep = _subsample(inv, max_per_subclass, np.random.default_rng(seed), name="max_per_subclass")
    out = np.full(len(ids), np.nan)
    for s in np.unique(parent):
        members = np.flatnonzero(parent == s)
        idx = keep[np.isin(inv[keep], members)]
        if len(members) < 2 or len(idx) <= len(members):
            continue
        sil = (cosine_silhouette_samples(x[idx], inv[idx]) if metric == "cosine"  # closed form, O(n k d): accel.py
               else silhouette_samples(x[idx], inv[idx], metric=metric))
        out[members] = np.bincount(inv[idx], weights=sil, minlength=len(ids))[members] / np.bincount(inv[idx], minlength=len(ids))[members]
    return out


def c2(sil_by_layer: ArrayLike, *, k: int = 1) -> float:
    """Network-level c2 (SCIENCE.md 3.1): median over subclasses of topk-mean over layers of sil(l, i).

    sil_by_layer : (n_layers, n_subclasses), rows from :func:`subclass_silhouettes`. k = 1 (the
    reference code's max over layers [C]); the thesis uses k = 5 layers for ResNets [T]. NaN skipped.
    """
    s = np.asarray(sil_by_layer, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(expected("sil_by_layer", expected="a non-empty (n_layers, n_subclasses) array", got=s.shape))
    return _nan_agg(topk_mean(s, k, axis=0), "median")


def layer_c2(sil: ArrayLike) -> float:
    """Layer-wise c2 (SCIENCE.md 3.1, layer-wise variants): median over subclasses of this layer's sil (NaN skipped)."""
    return _nan_agg(sil, "median")


# ---------------------------------------------------------------- c4: layer-level variance of distances
def c4_preprocess(pre: ArrayLike, *, percentile: float | None = None) -> Array:
    """SCIENCE.md 3.1, c4 step 1: drop dead units, z-score each unit, subtract its percentile, ReLU.

    pre : (n_samples, n_units) -> (n_samples, n_alive_units). ``percentile`` in [0, 100]; None
    means the code's rule min(100 - 1000 / n_alive, 75) [C], clipped at 0 for layers of fewer than
    10 alive units (the code also rounds it; we do not). A constant unit z-scores to 0 (the code
    divides by std + 1e-7, which also gives 0), so it ends up all-zero.
    """
    x = check_pre(pre)
    x = x[:, ~np.all(x < 0, axis=0)]
    if x.shape[1] == 0:
        return x
    if percentile is None:
        percentile = max(min(100.0 - 1000.0 / x.shape[1], 75.0), 0.0)
    elif not 0 <= percentile <= 100:
        raise ValueError(expected("percentile", expected="a number in [0, 100] or None", got=percentile))
    sd = x.std(axis=0)
    const = np.ptp(x, axis=0) == 0
    z = np.where(const, 0.0, (x - x.mean(axis=0)) / np.where(const, 1.0, sd))
    return np.maximum(z - np.percentile(z, percentile, axis=0), 0.0)


def distance_spread(z: ArrayLike, *, upper_triangle: bool = True) -> float:
    """Sigma_E of SCIENCE.md 3.1, c4 step 2: std of the pairwise cosine distances among the rows of z.

    z : (n_samples, n_units). upper_triangle=True [P] uses each pair once; False is the reference
    code's std over the full matrix, zero diagonal included [C]. NaN for fewer than 2 samples.
    """
    z = np.asarray(z, dtype=np.float64)
    if len(z) < 2:
        return float("nan")
    d = pairwise_distances(z, metric="cosine")
    return float((d[np.triu_indices(len(z), k=1)] if upper_triangle else d).std())


def c4_layer_ratios(pre: ArrayLike, *, classes: ArrayLike, max_per_class: int | None = 1000, subset_size: int | None = 1000,
                    upper_triangle: bool = True, percentile: float | None = None, seed: int = 0) -> Array:
    """Sigma_{l,C_i} / Sigma_{l,D} of SCIENCE.md 3.1, c4 steps 1-3, for one layer.

    pre : (n_samples, n_units); classes : (n_samples,). Returns (n_classes,) in np.unique order.
    Preprocessing (z-score, percentile) uses all samples; Sigma_D is then estimated on a random
    subset of ``subset_size`` samples [C] and Sigma_{C_i} on at most ``max_per_class`` samples per
    class [P] (None = all). ``upper_triangle``: see :func:`distance_spread` ([P] default True).
    Sigma_D = 0 gives 0 (as in :func:`variance_ratio`); a class with < 2 samples, or a layer whose
    units are all dead (the code drops such layers), gives NaN.
    """
    x = check_pre(pre)
    y = check_labels(classes, name="classes", n=len(x))
    ids, inv = np.unique(y, return_inverse=True)
    z = c4_preprocess(x, percentile=percentile)
    if z.shape[1] == 0:
        return np.full(len(ids), np.nan)
    rng = np.random.default_rng(seed)
    n_d = len(x) if subset_size is None else min(len(x), check_k(subset_size, name="subset_size"))
    sigma_d = distance_spread(z[np.sort(rng.choice(len(x), size=n_d, replace=False))], upper_triangle=upper_triangle)
    keep = _subsample(inv, max_per_class, rng, name="max_per_class")
    sigma_c = np.array([distance_spread(z[keep[inv[keep] == g]], upper_triangle=upper_triangle) for g in range(len(ids))])
    if not sigma_d > 0:
        return np.where(np.isnan(sigma_c), np.nan, 0.0)
    return sigma_c / sigma_d


def c4(ratios_by_layer: ArrayLike, *, k: int = 1) -> float:
    """Network-level c4 (SCIENCE.md 3.1): mean over classes of topk-mean over layers of the ratio.

    ratios_by_layer : (n_layers, n_classes), rows from :func:`c4_layer_ratios`. k = 1 for VGG, the
    thesis uses k = 5 for ResNets [T]. NaN (dead layers, tiny classes) skipped.
    """
    r = np.asarray(ratios_by_layer, dtype=np.float64)
    if r.ndim != 2 or r.size == 0:
        raise ValueError(expected("ratios_by_layer", expected="a non-empty (n_layers, n_classes) array", got=r.shape))
    return _nan_agg(topk_mean(r, k, axis=0), "mean")


def layer_c4(ratios: ArrayLike) -> float:
    """Layer-wise c4 (SCIENCE.md 3.1, layer-wise variants): mean over classes of this layer's ratios (NaN skipped)."""
    return _nan_agg(ratios, "mean")
