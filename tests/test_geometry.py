"""Representation geometry (SCIENCE.md 7): CKA, neural collapse, k-NN accuracy, probe, TwoNN on seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from backend.analysis import geometry
from backend.analysis.labels import Labels


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """An independent CKA: biased HSIC of linear Gram matrices, tr(KHLH) (Gretton et al. 2005)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, m = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 30))
    return x, x @ rng.normal(size=(30, 20)) + 0.5 * rng.normal(size=(200, 20))


def test_cka_properties(xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = xy
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    assert geometry.linear_cka(x, x) == pytest.approx(1.0)
    base = geometry.linear_cka(x, y)
    assert 0.0 < base < 1.0
    assert geometry.linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert geometry.linear_cka(7.5 * x, y) == pytest.approx(base, rel=1e-10)
    assert geometry.linear_cka(x + 3.0, y) == pytest.approx(base, rel=1e-10)  # columns are centred
    general = rng.normal(size=(30, 30)) * np.linspace(0.05, 5, 30)  # an anisotropic linear map
    assert abs(geometry.linear_cka(x @ general, y) - base) > 0.02
    assert geometry.linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-9)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)  # float32 activations: computed in float32
    assert geometry.linear_cka(x32, y32) == pytest.approx(base, rel=1e-5)
    wide = rng.normal(size=(40, 300))  # d > n: the Gram-side norm
    assert geometry.linear_cka(wide, wide[:, :50]) == pytest.approx(_hsic_cka(wide, wide[:, :50]), rel=1e-9)


def test_minibatch_cka_close_to_closed_form() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 20))
    y = x[:, :10] + 0.3 * rng.normal(size=(4000, 10))
    exact = geometry.linear_cka(x, y)
    approx = geometry.minibatch_cka(x, y, batch_size=500, seed=0)
    assert approx == pytest.approx(exact, abs=0.03)
    assert geometry.minibatch_cka(x, x, batch_size=500, seed=0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="batch_size"):
        geometry.minibatch_cka(x, y, batch_size=2, seed=0)
    m = geometry.cka_matrix([x, y, 2 * x], batch_size=0)
    assert m.shape == (3, 3) and np.allclose(m, m.T) and m[0, 2] == pytest.approx(1.0)
    assert geometry.cka_matrix([x, y], batch_size=500)[0, 1] == pytest.approx(exact, abs=0.03)


def _blobs(spread: float, seed: int = 0, per: int = 60, d: int = 12, c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 5.0 * rng.normal(size=(c, d))
    y = np.repeat(np.arange(c), per)
    return centres[y] + spread * rng.normal(size=(c * per, d)), y


def test_nc1_falls_with_collapse_and_matches_the_definition() -> None:
    tight, y = _blobs(0.1)
    loose, _ = _blobs(2.0)
    assert geometry.nc1(tight, y) < 0.01 < geometry.nc1(loose, y)
    # the definition written out: (1/C) Tr(Σ_W Σ_B⁺) with d x d matrices
    means = np.stack([loose[y == c].mean(0) for c in range(4)])
    sw = sum((loose[y == c] - means[c]).T @ (loose[y == c] - means[c]) for c in range(4)) / len(loose)
    m = means - loose.mean(0)
    sb = m.T @ m / 4
    assert geometry.nc1(loose, y) == pytest.approx(np.trace(sw @ np.linalg.pinv(sb)) / 4, rel=1e-6)
    assert np.isnan(geometry.nc1(loose, np.zeros(len(y))))
    # Σ_B has rank C - 1; rounding leaves a near-zero singular value (here from a large offset, on a digits
    # layer from float32 values) that a bare pseudo-inverse turns into NC1 ~1e20 instead of dropping it
    assert geometry.nc1(loose + 1e6, y) == pytest.approx(geometry.nc1(loose, y), rel=1e-3)


def test_nc1_within_subclasses() -> None:
    rng = np.random.default_rng(3)
    sub = np.repeat(np.arange(6), 50)
    cls = sub // 3
    centres = 4.0 * rng.normal(size=(6, 10))
    apart = centres[sub] + 0.2 * rng.normal(size=(300, 10))
    merged = 4.0 * rng.normal(size=(2, 10))[cls] + 0.2 * rng.normal(size=(300, 10))  # subclasses indistinct
    assert geometry.nc1_within(apart, sub, cls) < 0.05 < 1.0 < geometry.nc1_within(merged, sub, cls)


def test_nc2_is_zero_for_a_simplex_and_not_otherwise() -> None:
    c = 5
    etf = np.eye(c) - 1.0 / c  # the simplex ETF's vertices
    y = np.repeat(np.arange(c), 10)
    norm_cv, angle = geometry.nc2(etf[y] + 3.0, y)
    assert norm_cv == pytest.approx(0.0, abs=1e-12) and angle == pytest.approx(0.0, abs=1e-12)
    skew, _ = _blobs(0.1, c=5)
    assert min(geometry.nc2(skew, np.repeat(np.arange(5), 60))) > 0.05


def test_nc3_and_nc4() -> None:
    x, y = _blobs(0.5)
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    w = 3.0 * (means - means.mean(0))  # a classifier aligned with the class means
    assert geometry.nc3(w, x, y) == pytest.approx(0.0, abs=1e-12)
    assert geometry.nc3(-w, x, y) == pytest.approx(4.0)
    assert geometry.nc3(np.random.default_rng(0).normal(size=w.shape), x, y) > 0.1
    with pytest.raises(ValueError, match="weights must be"):
        geometry.nc3(w[:3], x, y)
    assert geometry.nc4(x, y, y) == 1.0
    wrong = (y + 1) % 4
    assert geometry.nc4(x, y, wrong) == 0.0
    sub = np.arange(len(y)) % 2 + 2 * y  # two subclasses per class
    assert geometry.nc4(x, sub, y, group_class={s: s // 2 for s in range(8)}) == 1.0


def _graph(x: np.ndarray, k: int, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    dist, idx = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(x).kneighbors(x)
    return idx, dist


def test_knn_accuracy_leaves_the_sample_out() -> None:
    x, y = _blobs(0.3)
    idx, _ = _graph(x, 6)
    assert geometry.knn_accuracy(idx, y) == 1.0
    noise = np.random.default_rng(0).integers(0, 4, len(y))
    assert geometry.knn_accuracy(idx, noise) < 0.5
    # 1-NN graph of [self, other]: each sample predicted by its one neighbour, never by itself
    pts = np.array([[0.0], [0.1], [5.0], [5.1]])
    one, _ = _graph(pts, 2)
    assert geometry.knn_accuracy(one, np.array([0, 1, 2, 2])) == 0.5


def test_linear_probe() -> None:
    x, y = _blobs(1.0)
    train = np.arange(len(y)) % 3 != 0
    assert geometry.linear_probe(x, y, train, seed=0) > 0.95
    shuffled = np.random.default_rng(0).permutation(y)
    assert geometry.linear_probe(x, shuffled, train, seed=0) < 0.6
    assert np.isnan(geometry.linear_probe(x, y, np.ones(len(y), bool), seed=0))
    assert np.isnan(geometry.linear_probe(x, y, np.zeros(len(y), bool), seed=0))


def test_twonn_recovers_a_known_dimension() -> None:
    rng = np.random.default_rng(4)
    basis, _ = np.linalg.qr(rng.normal(size=(50, 3)))
    plane = rng.uniform(-1, 1, size=(2000, 3)) @ basis.T  # a 3-D plane in 50-D
    idx, dist = _graph(plane, 5)
    assert geometry.twonn(dist, metric="euclidean", indices=idx) == pytest.approx(3.0, abs=0.3)
    # cosine distances of an affine plane away from the origin: the chord length keeps the dimension
    idx, cos = _graph(plane + 10.0 * rng.normal(size=50), 5, metric="cosine")
    assert geometry.twonn(cos, metric="cosine", indices=idx) == pytest.approx(3.0, abs=0.3)
    # duplicates removed: a copy of every point changes nothing
    idx, dup = _graph(np.vstack([plane, plane]), 6)
    assert geometry.twonn(dup, metric="euclidean", indices=idx) == pytest.approx(3.0, abs=0.3)
    line = np.outer(rng.uniform(size=1000), rng.normal(size=50))
    idx, dist = _graph(line, 4)
    assert geometry.twonn(dist, metric="euclidean", indices=idx) == pytest.approx(1.0, abs=0.15)


def test_snapshot_geometry_row() -> None:
    rng = np.random.default_rng(5)
    sub = np.repeat(np.arange(6), 40)
    cls = sub // 3
    x = np.maximum(4.0 * rng.normal(size=(6, 16))[sub] + rng.normal(size=(240, 16)), 0)
    labels = Labels(classes=cls, subclass=sub, superclass=cls, fine=sub, train=np.arange(240) % 4 != 0)
    idx, dist = _graph(x, 11, "cosine")
    row = geometry.snapshot_geometry(x, x[:, :8], idx, dist, labels=labels, predictions=cls, metric="cosine",
                                     probe_space="pca", seed=0)
    assert set(row) == set(geometry.GEOMETRY_COLUMNS)
    assert row["knn_class"] > 0.9 and row["knn_subclass"] > 0.8 and row["probe_class"] > 0.9
    assert row["nc4_class"] > 0.9 and row["nc1_class"] > 0 and np.isfinite(row["twonn_id"])
    flat = Labels(classes=sub, subclass=None, superclass=None, fine=sub, train=labels.train)
    row = geometry.snapshot_geometry(x, x, idx, dist, labels=flat, predictions=None, metric="cosine",
                                     probe_space="full", seed=0)
    assert np.isnan(row["nc1_subclass"]) and np.isnan(row["nc4_class"]) and np.isfinite(row["probe_class"])
    assert np.isnan(row["nc3_class"])  # no classifier given


def test_snapshot_nc3_against_a_hand_built_classifier() -> None:
    """NC3 (SCIENCE.md 7) in the snapshot's row: 0 for W equal to the normalised centred class means of the
    training samples, in class-id order; rows of classes absent from the probe are ignored; NaN for a width
    mismatch or a class without a row."""
    rng = np.random.default_rng(6)
    cls = np.repeat(np.arange(4), 30)
    x = np.maximum(3.0 * rng.normal(size=(4, 12))[cls] + rng.normal(size=(120, 12)), 0)
    train = np.arange(120) % 5 != 0
    means = np.stack([x[train & (cls == c)].mean(axis=0) for c in range(4)])
    w = means - means.mean(axis=0)
    w = 2.5 * w / np.linalg.norm(w)  # NC3 compares directions: any scale of W gives 0
    labels = Labels(classes=cls, subclass=None, superclass=None, fine=cls, train=train)
    idx, dist = _graph(x, 8, "cosine")

    def nc3_with(weights: np.ndarray | None) -> float:
        return geometry.snapshot_geometry(x, x, idx, dist, labels=labels, predictions=None, metric="cosine",
                                          probe_space="full", seed=0, classifier=weights)["nc3_class"]

    assert nc3_with(w) == pytest.approx(0.0, abs=1e-12)
    assert nc3_with(np.vstack([w, rng.normal(size=(3, 12))])) == pytest.approx(0.0, abs=1e-12)  # 7 outputs, 4 classes
    assert nc3_with(-w) == pytest.approx(4.0)
    assert 0.1 < nc3_with(rng.normal(size=w.shape)) < 4.0
    assert np.isnan(nc3_with(w[:, :10])) and np.isnan(nc3_with(w[:3]))


def test_cka_of_huge_or_diverged_values_neither_overflows_nor_warns() -> None:
    """A run on its way to diverging records values near float32's limit; CKA is scale-invariant, so it is
    computed on scaled matrices (no overflow warning) and a snapshot with infinite values gives NaN."""
    import warnings

    from backend.analysis import geometry

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 20)).astype(np.float32)
    y = (x @ rng.normal(size=(20, 8))).astype(np.float32)
    expected = geometry.linear_cka(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert abs(geometry.linear_cka(x * np.float32(1e30), y) - expected) < 1e-5
        bad = x.copy()
        bad[0, 0] = np.inf
        assert np.isnan(geometry.linear_cka(bad, y))
