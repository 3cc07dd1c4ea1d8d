"""Representation geometry of one layer at one epoch, and between layers and epochs (SCIENCE.md 7).

Pure: arrays and keyword-only parameters in, numbers or arrays out. X is one layer's recorded values
at one epoch (post-ReLU unless ``analysis.input = "pre"``), one row per probe sample; y its classes
(the training target), z its hidden subclasses (SCIENCE.md 2). Measures:

- linear CKA between two representations of the same samples (:func:`linear_cka`, closed form, biased or
  debiased [P]; the unbiased minibatch estimator :func:`minibatch_cka` for large N [P]);
- neural collapse NC1, NC2, NC3, NC4 for a grouping (:func:`nc1`, :func:`nc2`, :func:`nc3`, :func:`nc4`),
  classes and subclasses (subclass NC1 within each class [P]: :func:`nc1_within`);
- k-NN accuracy from the analysis's own neighbour graph (:func:`knn_accuracy`) [P];
- a linear probe's test accuracy (:func:`linear_probe`);
- TwoNN intrinsic dimension from the same graph's distances (:func:`twonn`).

:func:`snapshot_geometry` computes the per-snapshot scalars (the ``layers`` table's geometry columns).
"""

from __future__ import annotations

import numpy as np

from backend.analysis.labels import Labels

# ---------------------------------------------------------------------------------------------- CKA


def _centred(x: np.ndarray) -> np.ndarray:
    """Columns centred; float32 stays float32 (half the cost of the products, ~1e-6 relative error on CKA;
    recorded activations are float32), anything else becomes float64."""
    x = np.asarray(x)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    if not np.isfinite(x).all():  # a diverged snapshot: no CKA (NaN propagates through the products, quietly)
        return np.full(x.shape, np.nan, dtype=x.dtype)
    xc = x - x.mean(axis=0, keepdims=True, dtype=np.float64).astype(x.dtype)
    top = float(np.abs(xc).max(initial=0.0))  # CKA is invariant to isotropic scaling: scaled to at most 1, the
    return xc / np.asarray(top, dtype=x.dtype) if top > 0 else xc  # Gram products of huge values cannot overflow


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False) -> float:
    """Linear CKA (Kornblith et al. 2019; SCIENCE.md 7): ||YᵀX||²_F / (||XᵀX||_F · ||YᵀY||_F), columns centred.

    x : (n_samples, d1), y : (n_samples, d2), rows the same samples. In [0, 1]; 1 for x with itself;
    invariant to orthogonal transforms and isotropic scaling of either side. NaN when either side is
    constant (no variance to compare). This biased form gives unrelated representations about d/(n + d)
    (0.2 for 512 units on 2,000 samples); ``debiased`` [P]: each HSIC by the unbiased estimator of Song et al.
    (2012) in its closed form on the features (:func:`_hsic_debiased`, as Kornblith's code and Nguyen et al.
    2021), about 0 for unrelated ones (it can then be slightly negative); it needs n >= 4 (NaN below).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same samples (rows); got {x.shape[0]} and {y.shape[0]} rows.")
    return float(cka_matrix([x, y], debiased=debiased)[0, 1])


def _self_norm(xc: np.ndarray) -> float:
    """||XᵀX||_F of a centred X, from the smaller of its two Gram matrices (the same Frobenius norm)."""
    gram = xc.T @ xc if xc.shape[1] <= xc.shape[0] else xc @ xc.T
    return float(np.linalg.norm(gram.astype(np.float64)))


def _cka_centred(xc: np.ndarray, yc: np.ndarray, nx: float, ny: float) -> float:
    if nx == 0 or ny == 0:
        return float("nan")
    return float(np.linalg.norm((yc.T @ xc).astype(np.float64)) ** 2 / (nx * ny))


def _row_norms(xc: np.ndarray) -> np.ndarray:
    """Squared norm of each row of a centred X, float64 (n,): the diagonal of its Gram matrix."""
    return np.einsum("ij,ij->i", xc, xc, dtype=np.float64)


def _hsic_debiased(dot: float, rx: np.ndarray, ry: np.ndarray) -> float:
    """n(n − 3) times the unbiased HSIC of Song et al. (2012) of two linear kernels, from the features alone:
    dot = ||YᵀX||²_F of the centred X, Y and rx, ry their row norms squared (:func:`_row_norms`). With K = XXᵀ
    of centred X, K with its diagonal zeroed sums to −Σrx and its rows to −rx, which turns the estimator into
    dot − n/(n − 2) rx·ry + Σrx Σry / ((n − 1)(n − 2)) (Kornblith's cka.py): no n x n matrix is formed."""
    n = len(rx)
    return float(dot - n / (n - 2) * float(rx @ ry) + float(rx.sum()) * float(ry.sum()) / ((n - 1) * (n - 2)))


def _hsic_unbiased(k: np.ndarray, m: np.ndarray) -> float:
    """The unbiased HSIC estimator of Song et al. (2012) for two n x n Gram matrices (n >= 4)."""
    n = k.shape[0]
    k, m = k.copy(), m.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    ones_k, ones_m = k.sum(axis=0), m.sum(axis=0)
    term = (k * m).sum() + ones_k.sum() * ones_m.sum() / ((n - 1) * (n - 2)) - 2.0 * ones_k @ ones_m / (n - 2)
    return float(term / (n * (n - 3)))


def minibatch_cka(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int) -> float:
    """Minibatch linear CKA (Nguyen et al. 2021; SCIENCE.md 7 [P]): the unbiased HSIC (Song et al. 2012)
    summed over a seeded partition of the samples into batches of ``batch_size``, then
    CKA = Σ HSIC(K, L) / sqrt(Σ HSIC(K, K) · Σ HSIC(L, L)). For large N: memory O(batch_size²).

    x : (n_samples, d1), y : (n_samples, d2). Batches smaller than 4 samples are dropped (the estimator
    needs n >= 4). Close to :func:`linear_cka` for large batches; unbiased in the batch size.
    """
    if batch_size < 4:
        raise ValueError(f"batch_size must be an integer >= 4 (the unbiased HSIC needs 4 samples); got {batch_size}.")
    order = np.random.default_rng(seed).permutation(x.shape[0])
    xy = xx = yy = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if len(idx) < 4:
            continue
        a, b = np.asarray(x[idx], np.float64), np.asarray(y[idx], np.float64)
        k, m = a @ a.T, b @ b.T
        xy += _hsic_unbiased(k, m)
        xx += _hsic_unbiased(k, k)
        yy += _hsic_unbiased(m, m)
    return float(xy / np.sqrt(xx * yy)) if xx > 0 and yy > 0 else float("nan")


def cka_matrix(reps: list[np.ndarray], *, batch_size: int = 0, seed: int = 0, debiased: bool = False) -> np.ndarray:
    """Linear CKA between every pair of ``reps`` (each (n_samples, d_i), the same samples): (n, n), symmetric.

    ``batch_size`` 0: the closed form (:func:`linear_cka`, biased or ``debiased``: ``analysis.cka_debiased``);
    else :func:`minibatch_cka` with that batch size (``analysis.cka_batch``, SCIENCE.md 7 [P]; always unbiased).
    Centres and norms are computed once per array.
    """
    n = len(reps)
    out = np.eye(n)
    if batch_size:
        for i in range(n):
            for j in range(i + 1, n):
                out[i, j] = out[j, i] = minibatch_cka(reps[i], reps[j], batch_size=batch_size, seed=seed)
        return out
    centred = [_centred(r) for r in reps]
    norms = [_self_norm(c) for c in centred]
    if debiased:
        return _debiased_matrix(centred, norms)
    for i in range(n):
        out[i, i] = 1.0 if norms[i] > 0 else np.nan
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = _cka_centred(centred[i], centred[j], norms[i], norms[j])
    return out


def _debiased_matrix(centred: list[np.ndarray], norms: list[float]) -> np.ndarray:
    """:func:`cka_matrix` with the debiased HSIC (:func:`_hsic_debiased`) of centred arrays and their ||XᵀX||_F."""
    n = len(centred)
    out = np.full((n, n), np.nan)
    if not centred or centred[0].shape[0] < 4:  # the unbiased estimator needs 4 samples
        return out
    rows = [_row_norms(c) for c in centred]
    self_hsic = [_hsic_debiased(nx ** 2, r, r) if np.isfinite(nx) else np.nan for nx, r in zip(norms, rows, strict=True)]
    ok = [bool(h > 0) for h in self_hsic]  # NaN (diverged) or no variance beyond the estimator's bias: no CKA
    for i in range(n):
        out[i, i] = 1.0 if ok[i] else np.nan
        for j in range(i + 1, n):
            if ok[i] and ok[j]:
                dot = float(np.linalg.norm((centred[j].T @ centred[i]).astype(np.float64)) ** 2)
                out[i, j] = out[j, i] = _hsic_debiased(dot, rows[i], rows[j]) / np.sqrt(self_hsic[i] * self_hsic[j])
    return out


# ---------------------------------------------------------------------------------------- neural collapse


def _means(x: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group ids (C,), group means (C, d)); x : (n, d), groups : (n,)."""
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(ids), x.shape[1]))
    np.add.at(sums, inverse, x)
    return ids, sums / np.bincount(inverse)[:, None]


def nc1(x: np.ndarray, groups: np.ndarray, *, rcond: float = 1e-6) -> float:
    """NC1 = (1/C) Tr(Σ_W Σ_B⁺) (Papyan, Han & Donoho 2020; SCIENCE.md 7): within-group over between-group
    variability. Falls towards 0 as each group collapses to its mean. NaN with fewer than 2 groups.

    x : (n_samples, d); groups : (n_samples,). With M = [μ_c − μ_G] (d x C), Σ_B = M Mᵀ / C, so
    Σ_B⁺ = C (M⁺)ᵀ M⁺ and NC1 = Tr(M⁺ Σ_W M⁺ᵀ) = ||(X − μ_y) M⁺ᵀ||²_F / N: no d x d matrix is formed.
    μ_G is the mean of the group means (the samples' mean for balanced groups), so Σ_B has rank C − 1 as
    in Papyan et al.; the pseudo-inverse drops directions whose singular value is below ``rcond`` times
    the largest (with the samples' mean of unbalanced groups, or near-collinear means, a direction of
    almost no between-group spread would otherwise blow NC1 up to 1e28).
    """
    x = np.asarray(x, np.float64)
    ids, means = _means(x, groups)
    if len(ids) < 2:
        return float("nan")
    m = means - means.mean(axis=0)  # (C, d): rows μ_c − μ_G
    pinv = np.linalg.pinv(m.T, rcond=rcond)  # (C, d) = M⁺
    within = x - means[np.searchsorted(ids, groups)]  # (n, d)
    return float(np.sum((within @ pinv.T) ** 2) / x.shape[0])


def nc1_within(x: np.ndarray, groups: np.ndarray, parents: np.ndarray) -> float:
    """Subclass NC1 within each class (SCIENCE.md 7 [P]): :func:`nc1` of the subclasses (``groups``) over
    the samples of one class (``parents``), averaged over the classes with >= 2 subclasses; NaN if none."""
    values = [nc1(x[parents == p], groups[parents == p]) for p in np.unique(parents)
              if len(np.unique(groups[parents == p])) >= 2]
    return float(np.mean(values)) if values else float("nan")


def nc2(x: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """NC2 (SCIENCE.md 7): the centred group means M = [μ_c − μ_G] against a simplex ETF.

    Returns (std of ‖μ_c − μ_G‖ over their mean, mean over pairs c < c' of |cos(μ_c, μ_c') + 1/(C − 1)|);
    both 0 for a simplex ETF. NaN with fewer than 2 groups. μ_G is the mean of the group means, so
    unequal group sizes do not tilt the simplex.
    """
    ids, means = _means(np.asarray(x, np.float64), groups)
    c = len(ids)
    if c < 2:
        return float("nan"), float("nan")
    m = means - means.mean(axis=0)
    norms = np.linalg.norm(m, axis=1)
    if not (norms > 0).all():
        return float("nan"), float("nan")
    unit = m / norms[:, None]
    cos = (unit @ unit.T)[np.triu_indices(c, k=1)]
    return float(norms.std() / norms.mean()), float(np.mean(np.abs(cos + 1.0 / (c - 1))))


def nc3(weights: np.ndarray, x: np.ndarray, classes: np.ndarray) -> float:
    """NC3 (last layer only; SCIENCE.md 7): ‖W/‖W‖_F − Mᵀ/‖M‖_F‖²_F, W (C, d) the classifier's weights
    (rows in the order of the sorted class ids), M the centred class means (d x C, so Mᵀ is (C, d))."""
    ids, means = _means(np.asarray(x, np.float64), classes)
    w = np.asarray(weights, np.float64)
    if w.shape != means.shape:
        raise ValueError(f"weights must be (classes, units) = {means.shape}; got {w.shape}.")
    m = means - means.mean(axis=0)
    nw, nm = np.linalg.norm(w), np.linalg.norm(m)
    if not (np.isfinite(nw) and np.isfinite(nm) and nw > 0 and nm > 0):  # no direction to compare (as nc2)
        return float("nan")
    return float(np.sum((w / nw - m / nm) ** 2))


def nc3_problem(weights: np.ndarray, x: np.ndarray, classes: np.ndarray) -> str:
    """Why :func:`nc3_of` is NaN for these inputs ("" when it is not): weights (n_outputs, d), x (n, d), classes (n,)."""
    w = np.asarray(weights, np.float64)
    ids = np.unique(classes)
    if len(ids) < 2:
        return f"the training probe samples hold {len(ids)} class(es); NC3 needs at least 2"
    if ids.min() < 0 or ids.max() >= w.shape[0]:
        return f"class ids {ids.min()}..{ids.max()} of the training probe samples have no row in the classifier's {w.shape[0]} outputs"
    if w.shape[1] != x.shape[1]:
        return f"the classifier takes {w.shape[1]} inputs but the layer has {x.shape[1]} units"
    if not np.isfinite(w).all():
        return "the classifier's weights hold NaN or infinite values (training diverged)"
    if not np.isfinite(x).all():
        return "the layer's values hold NaN or infinite values (training diverged)"
    if not np.any(w[ids]):
        return "the classifier's weights of these classes are all 0: no direction to compare"
    _, means = _means(np.asarray(x, np.float64), classes)
    if np.linalg.norm(means - means.mean(axis=0)) <= 1e-12 * max(1.0, float(np.abs(means).max())):
        return "the class means of the layer coincide (a dead or class-blind layer: every centred mean is 0)"
    return ""


def nc3_of(weights: np.ndarray, x: np.ndarray, classes: np.ndarray) -> float:
    """:func:`nc3` with the classifier's rows of the classes present in ``classes`` (class id c = row c of
    ``weights``, (n_outputs, d)); NaN when :func:`nc3_problem` names a reason: a class id without a row, fewer
    than 2 classes, other widths, non-finite weights or values, all-zero weights or coinciding class means."""
    if nc3_problem(weights, x, classes):
        return float("nan")
    return nc3(np.asarray(weights, np.float64)[np.unique(classes)], x, classes)


def nc4(x: np.ndarray, groups: np.ndarray, predictions: np.ndarray, group_class: dict[int, int] | None = None) -> float:
    """NC4 (SCIENCE.md 7): share of samples whose nearest group mean (Euclidean) is the network's predicted
    class. For subclasses pass ``group_class`` (subclass -> its class): agreement is then between the
    nearest subclass mean's class and the prediction. x : (n, d); groups, predictions : (n,)."""
    ids, means = _means(np.asarray(x, np.float64), groups)
    x64 = np.asarray(x, np.float64)
    d2 = (x64 ** 2).sum(axis=1)[:, None] - 2.0 * x64 @ means.T + (means ** 2).sum(axis=1)[None, :]
    nearest = ids[np.argmin(d2, axis=1)]
    if group_class is not None:
        nearest = np.array([group_class[int(g)] for g in nearest])
    return float(np.mean(nearest == np.asarray(predictions)))


# ---------------------------------------------------------------------------------- neighbours, probe, ID


def knn_accuracy(indices: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out k-NN accuracy (SCIENCE.md 7 [P]) from a neighbour graph: each sample's label is
    predicted by majority among its neighbours other than itself (ties: the smallest label).

    indices : int (n, k+1), row i the neighbours of sample i (as :func:`backend.analysis.embed.knn_graph`
    returns them, the sample itself included, usually first); labels : (n,).
    """
    ids, codes = np.unique(labels, return_inverse=True)
    n = len(codes)
    neigh = codes[indices]  # (n, k+1)
    others = indices != np.arange(n)[:, None]
    counts = np.zeros((n, len(ids)), np.int64)
    rows = np.broadcast_to(np.arange(n)[:, None], indices.shape)
    np.add.at(counts, (rows[others], neigh[others]), 1)
    return float(np.mean(np.argmax(counts, axis=1) == codes))


def linear_probe(x: np.ndarray, labels: np.ndarray, train: np.ndarray, *, seed: int, max_iter: int = 200) -> float:
    """Linear probe (Alain & Bengio 2016; SCIENCE.md 7): multinomial logistic regression on the standardised
    ``x`` (the analysis gives its PCA components: ``analysis.probe_space``), fitted on the ``train`` rows,
    accuracy on the others. NaN when either split is empty or the training rows hold one label.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = np.asarray(train, bool)
    if train.all() or not train.any() or len(np.unique(labels[train])) < 2:
        return float("nan")
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():  # a probe stopped at max_iter is still a probe; its accuracy is what counts
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(x[train]), labels[train])
    return float(model.score(scaler.transform(x[~train]), labels[~train]))


def twonn(distances: np.ndarray, *, metric: str, indices: np.ndarray | None = None) -> float:
    """TwoNN intrinsic dimension (Facco et al. 2017; SCIENCE.md 7), maximum-likelihood form ID = N / Σ log μ_i,
    μ_i = r₂(i) / r₁(i) the ratio of the distances to sample i's two nearest distinct neighbours.

    distances : (n, k) each row's neighbour distances, ascending; indices : (n, k) the neighbours, when
    given the sample itself is dropped by index. Duplicates are removed: distances below 1e-6 of the
    median k-th neighbour distance (the sample itself, copies of it, rounding) are skipped, and a
    sample with fewer than two distinct neighbours left is left out. ``metric`` ``cosine`` turns the
    cosine distance d into the chord length sqrt(2d) between unit vectors, a metric that is locally
    the angle (d itself grows as the angle squared, which would halve the estimate).
    """
    d = np.asarray(distances, np.float64)
    if metric == "cosine":
        d = np.sqrt(2.0 * np.clip(d, 0.0, None))
    eps = 1e-6 * float(np.median(d[:, -1]))
    drop = d <= eps
    if indices is not None:
        drop |= indices == np.arange(len(d))[:, None]
    d = np.sort(np.where(drop, np.inf, d), axis=1)
    r1 = d[:, 0]
    # r2: the nearest neighbour farther than r1, so a copy of the nearest neighbour is not counted twice
    r2 = np.where(d > r1[:, None] * (1 + 1e-6), d, np.inf).min(axis=1)
    ok = np.isfinite(r2)
    total = np.log(r2[ok] / r1[ok]).sum()
    return float(ok.sum() / total) if total > 0 else float("nan")


# ---------------------------------------------------------------------------------------- one snapshot

GEOMETRY_COLUMNS = ("nc1_class", "nc1_subclass", "nc2_norm_class", "nc2_angle_class", "nc2_norm_subclass",
                    "nc2_angle_subclass", "nc3_class", "nc4_class", "nc4_subclass", "knn_class", "knn_subclass",
                    "probe_class", "probe_subclass", "twonn_id")


def snapshot_geometry(x: np.ndarray, pca: np.ndarray, indices: np.ndarray, distances: np.ndarray, *,
                      labels: Labels, predictions: np.ndarray | None, metric: str, probe_space: str,
                      seed: int, classifier: np.ndarray | None = None) -> dict[str, float]:
    """The geometry columns of one snapshot's ``layers`` row (SCIENCE.md 7; :data:`GEOMETRY_COLUMNS`).

    x : (n, d) the layer's values as SCIENCE.md 7 defines X (post-ReLU unless ``analysis.input``);
    pca : (n, p) the analysis's PCA of the preprocessed layer; indices, distances : (n, k) its
    neighbour graph (the one UMAP uses). NC1, NC2, NC4 on the training samples; k-NN accuracy and TwoNN
    on every embedded sample (the graph's); the probe trains on the training samples and scores on the
    test samples, on ``pca`` (``probe_space = "pca"``) or on ``x``. Subclass values only when the labels
    have hidden subclasses (``labels.intraclass``), else NaN; NC4 NaN without ``predictions``. NC3 only with
    ``classifier``, the weights (n_classes, d) of the linear classifier that ``x`` feeds (row c = class id c),
    on the training samples' classes (:func:`nc3_of`); else NaN.
    """
    row = dict.fromkeys(GEOMETRY_COLUMNS, float("nan"))
    t = labels.train if labels.train.any() else np.ones_like(labels.train)
    xt, classes = x[t], labels.classes[t]
    row["nc1_class"] = nc1(xt, classes)
    row["nc2_norm_class"], row["nc2_angle_class"] = nc2(xt, classes)
    row["knn_class"] = knn_accuracy(indices, labels.classes)
    space = pca if probe_space == "pca" else x
    row["probe_class"] = linear_probe(space, labels.classes, labels.train, seed=seed)
    row["twonn_id"] = twonn(distances, metric=metric, indices=indices)
    if predictions is not None:
        row["nc4_class"] = nc4(xt, classes, predictions[t])
    if classifier is not None:
        row["nc3_class"] = nc3_of(classifier, xt, classes)
    if labels.intraclass:
        sub = labels.subclass[t]  # type: ignore[index]
        row["nc1_subclass"] = nc1_within(xt, sub, classes)
        row["nc2_norm_subclass"], row["nc2_angle_subclass"] = nc2(xt, sub)
        row["knn_subclass"] = knn_accuracy(indices, labels.subclass)  # type: ignore[arg-type]
        row["probe_subclass"] = linear_probe(space, labels.subclass, labels.train, seed=seed)  # type: ignore[arg-type]
        if predictions is not None:
            parent = {int(s): int(c) for s, c in zip(sub, classes, strict=True)}
            row["nc4_subclass"] = nc4(xt, sub, predictions[t], group_class=parent)
    return row
