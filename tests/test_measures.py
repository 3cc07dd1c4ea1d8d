"""Measures c1-c4 and per-unit scores (SCIENCE.md 3.1, 3.4): hand-computed values, invariances, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.analysis import measures as M
from backend.analysis import neurons as N

# 6 samples: subclasses 0,0 | 1,1 | 2,2 ; superclasses 0,0,0,0 | 1,1 (subclass 2 is alone in superclass 1).
SUB = np.array([0, 0, 1, 1, 2, 2])
SUP = np.array([0, 0, 0, 0, 1, 1])
PRE = np.array([  # unit 0, unit 1, unit 2 (dead)
    [3, 2, -1],
    [1, 4, -2],
    [0, 1, -1],
    [0, 3, -3],
    [5, 0, -1],
    [5, 0, -1],
], dtype=np.float32)
EPS = 1e-7


def blobs(seed: int = 0, n: int = 75) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2 superclasses x 2 subclasses x n samples; unit j fires for subclass j (4 units + 4 silent ones)."""
    rng = np.random.default_rng(seed)
    sub = np.repeat(np.arange(4), n)
    sup = sub // 2
    pre = -0.3 + 3.0 * np.eye(8)[sub] + 0.3 * rng.standard_normal((len(sub), 8))
    return pre.astype(np.float32), sub, sup


def shuffled_within(sub: np.ndarray, sup: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = sub.copy()
    for s in np.unique(sup):
        idx = np.flatnonzero(sup == s)
        out[idx] = rng.permutation(sub[idx])
    return out


# ---------------------------------------------------------------- hand-computed values
def test_topk_mean_by_hand() -> None:
    assert M.topk_mean(np.array([1.0, 5.0, 3.0, 2.0]), 2) == pytest.approx(4.0)  # (5 + 3) / 2
    assert M.topk_mean(np.array([1.0, 5.0, 3.0, 2.0]), 10) == pytest.approx(2.75)  # k clipped to 4: 11 / 4
    assert M.topk_mean(np.array([1.0, np.nan, 3.0]), 2) == pytest.approx(2.0)  # NaN skipped: (3 + 1) / 2
    assert np.isnan(M.topk_mean(np.array([np.nan, np.nan]), 1))
    np.testing.assert_allclose(M.topk_mean(np.array([[1.0, 9.0, 2.0], [4.0, 0.0, 6.0]]), 2, axis=1), [5.5, 5.0])


def test_dead_units() -> None:
    np.testing.assert_array_equal(M.dead_units(PRE), [False, False, True])


def test_subclass_selectivity_by_hand() -> None:
    scores, ids = M.subclass_selectivity(PRE, subclass=SUB, superclass=SUP)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    # unit 0: C0 = {3, 1}: mu 2, sigma 1 ; rest of superclass = C1 = {0, 0}: mu 0, sigma 0 -> 2 / (1 + 0 + 1e-7)
    # unit 1: C0 = {2, 4}: mu 3, sigma 1 ; C1 = {1, 3}: mu 2, sigma 1 -> (3 - 2) / (1 + 1 + 1e-7)
    # unit 2 is dead -> 0 ; subclass 2 is alone in its superclass -> NaN
    expected = np.array([
        [2 / (1 + EPS), -2 / (1 + EPS), np.nan],
        [1 / (2 + EPS), -1 / (2 + EPS), np.nan],
        [0.0, 0.0, np.nan],
    ])
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_c1_by_hand() -> None:
    # k=1: subclass 0 -> max(2, .5, 0) = 2 ; subclass 1 -> max(-2, -.5, 0) = 0 (the dead unit) ; median(2, 0) = 1
    assert M.c1([PRE], subclass=SUB, superclass=SUP, k=1) == pytest.approx(1 / (1 + EPS))
    # k=2: subclass 0 -> (2 + .5) / 2 = 1.25 ; subclass 1 -> (0 - .5) / 2 = -.25 ; median = .5
    assert M.c1([PRE], subclass=SUB, superclass=SUP, k=2) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(M.c1_per_subclass([PRE], subclass=SUB, superclass=SUP, k=2), [1.25, -0.25, np.nan], rtol=1e-6)
    # layer-wise, k=5 clipped to 3 units: (2 + .5 + 0) / 3 and (-2 - .5 + 0) / 3 -> median 0
    assert M.layer_c1(PRE, subclass=SUB, superclass=SUP) == pytest.approx(0.0, abs=1e-9)
    # two layers: units are concatenated, so the second copy of unit 0 joins the top-2 of subclass 0
    assert M.c1([PRE, PRE[:, :1]], subclass=SUB, superclass=SUP, k=2) == pytest.approx((2 + (-0.25)) / 2, rel=1e-6)


def test_variance_ratio_and_c3_by_hand() -> None:
    classes = np.array([0, 0, 0, 1, 1, 1])
    pre = np.array([[0, 4, -1], [2, 4, -1], [1, 4, -1], [1, 4, -1], [1, 4, -1], [1, 4, -1]], dtype=np.float32)
    # unit 0: class 0 = {0, 2, 1}: var 2/3 ; class 1 = {1, 1, 1}: var 0 ; D: mean 1, var (1 + 1) / 6 = 1/3
    #   -> r = sqrt(2/3) / sqrt(1/3) = sqrt(2) and 0 ; unit 1 is constant -> 0 ; unit 2 is dead -> 0
    np.testing.assert_allclose(M.variance_ratio(pre, classes=classes), [[math.sqrt(2), 0], [0, 0], [0, 0]], rtol=1e-12)
    assert M.c3([pre], classes=classes, k=1) == pytest.approx(math.sqrt(2) / 2)  # mean(sqrt 2, 0)
    assert M.layer_c3(pre, classes=classes) == pytest.approx(math.sqrt(2) / 6)  # k=3: mean(sqrt2/3, 0)


def test_labels_need_not_be_contiguous() -> None:
    sub, sup = SUB * 10 + 3, SUP * 7 + 1
    scores, ids = M.subclass_selectivity(PRE, subclass=sub, superclass=sup)
    np.testing.assert_array_equal(ids, [3, 13, 23])
    np.testing.assert_allclose(scores, M.subclass_selectivity(PRE, subclass=SUB, superclass=SUP)[0])


def test_silhouettes_by_hand_euclidean() -> None:
    post = np.array([[0.0], [1.0], [4.0], [5.0], [7.0], [8.0]])
    # sample 0: a = 1, b = mean(4, 5) = 4.5 -> 3.5 / 4.5 = 7/9 ; sample 1: a = 1, b = mean(3, 4) = 3.5 -> 5/7
    # subclass 1 is the mirror image ; subclass 2 is alone in its superclass -> NaN
    sil = M.subclass_silhouettes(post, subclass=SUB, superclass=SUP, metric="euclidean")
    np.testing.assert_allclose(sil, [(7 / 9 + 5 / 7) / 2, (7 / 9 + 5 / 7) / 2, np.nan])


def test_silhouettes_cosine_with_zero_rows() -> None:
    post = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # The zero row is at distance 1 from everything. Samples 0 and 1: a = 1, b = 1 -> 0.
    # Samples 2 and 3: a = d(e2, e2) = 0, b = mean(1, 1) = 1 -> 1.
    sil = M.subclass_silhouettes(post, subclass=np.array([0, 0, 1, 1]), superclass=np.zeros(4, dtype=int))
    np.testing.assert_allclose(sil, [0.0, 1.0])
    all_zero = M.subclass_silhouettes(np.zeros((4, 3)), subclass=np.array([0, 0, 1, 1]), superclass=np.zeros(4, dtype=int))
    np.testing.assert_allclose(all_zero, [0.0, 0.0])


def test_silhouette_subsampling_is_seeded() -> None:
    pre, sub, sup = blobs()
    post = np.maximum(pre, 0)
    a = M.subclass_silhouettes(post, subclass=sub, superclass=sup, max_per_subclass=20, seed=3)
    b = M.subclass_silhouettes(post, subclass=sub, superclass=sup, max_per_subclass=20, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, M.subclass_silhouettes(post, subclass=sub, superclass=sup), atol=0.1)


def test_c2_by_hand() -> None:
    sil = np.array([[0.2, 0.5, np.nan], [0.4, 0.1, np.nan]])  # (layers, subclasses)
    assert M.c2(sil, k=1) == pytest.approx(0.45)  # max over layers: .4, .5, NaN -> median .45
    assert M.c2(sil, k=2) == pytest.approx(0.3)  # means: .3, .3
    assert M.layer_c2(sil[0]) == pytest.approx(0.35)


def test_c4_preprocess_by_hand() -> None:
    pre = np.array([[0, -1], [1, -1], [2, -1], [3, -1]], dtype=np.float32)  # unit 1 is dead -> dropped
    sd = math.sqrt(1.25)  # std of 0, 1, 2, 3
    # z = (x - 1.5) / sd ; its median is 0 -> ReLU keeps the upper half
    np.testing.assert_allclose(M.c4_preprocess(pre, percentile=50), [[0], [0], [0.5 / sd], [1.5 / sd]])
    # default with 1 alive unit: min(100 - 1000, 75) clipped to 0 -> subtract the minimum
    np.testing.assert_allclose(M.c4_preprocess(pre), [[0], [1 / sd], [2 / sd], [3 / sd]])


@pytest.mark.parametrize(("n_units", "active"), [(40, 25), (20, 50), (5, 100)])
def test_c4_default_percentile_rule(n_units: int, active: int) -> None:
    # 101 distinct values per unit: percentile min(100 - 1000/n, 75) leaves 25 (n=40), 50 (n=20) or all but one (n=5) active
    pre = np.tile(np.arange(101, dtype=np.float32)[:, None], (1, n_units))
    z = M.c4_preprocess(pre)
    assert (z > 0).sum(axis=0).tolist() == [min(active, 100)] * n_units


def test_distance_spread_by_hand() -> None:
    a = 1 - 1 / math.sqrt(2)  # cosine distance between e1 (or e2) and (1, 1)
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # upper triangle: distances 1, a, a -> std = sqrt(2) (1 - a) / 3 = 1/3
    assert M.distance_spread(z) == pytest.approx(1 / 3)
    assert M.distance_spread(z, upper_triangle=False) == pytest.approx(np.std([0, 0, 0, 1, 1, a, a, a, a]))
    assert np.isnan(M.distance_spread(z[:1]))


def test_c4_ratio_by_hand() -> None:
    # Two binary units, both with mean 2/3 and std sqrt(2/9): with percentile 0 every 1 maps to the same c > 0
    # and every 0 to 0, so the rows are c*e1, c*e2, c*(1,1) in each class.
    pre = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    classes = np.array([0, 0, 0, 1, 1, 1])
    a = 1 - 1 / math.sqrt(2)
    sigma_c = 1 / 3  # distances 1, a, a (see test_distance_spread_by_hand)
    # all 15 pairs: 3 identical pairs (0), 4 e1-e2 pairs (1), 8 pairs with (1, 1) (a)
    sigma_d = np.std([0] * 3 + [1] * 4 + [a] * 8)
    ratios = M.c4_layer_ratios(pre, classes=classes, percentile=0)
    np.testing.assert_allclose(ratios, [sigma_c / sigma_d] * 2)
    # the code's variant: full matrices, zero diagonals included
    full_c = np.std([0] * 3 + [1] * 2 + [a] * 4)
    full_d = np.std([0] * 6 + [0] * 6 + [1] * 8 + [a] * 16)
    np.testing.assert_allclose(M.c4_layer_ratios(pre, classes=classes, percentile=0, upper_triangle=False), [full_c / full_d] * 2)
    # c4 over layers: mean over classes of the top-k layers
    assert M.c4(np.array([[0.5, 1.0], [0.7, 0.2]]), k=1) == pytest.approx((0.7 + 1.0) / 2)
    assert M.c4(np.array([[0.5, 1.0], [0.7, 0.2], [np.nan, np.nan]]), k=2) == pytest.approx((0.6 + 0.6) / 2)
    assert M.layer_c4(np.array([0.5, 1.0])) == pytest.approx(0.75)


def test_hap_by_hand() -> None:
    classes = np.array([0, 0, 0, 1, 1, 1])
    sub, sup = np.array([0, 0, 1, 2, 2, 3]), np.array([0, 0, 0, 1, 1, 1])
    pre = np.array([[5, 5], [4, 0], [0, 4], [3, 0], [0, 0], [0, 3]], dtype=np.float32)
    # both units: sorted values 0 0 0 3 4 5 -> 0.5-quantile = 1.5 -> H = the 3 samples with 3, 4, 5
    # unit 0: H = {0, 1, 3}: classes 0, 0, 1 -> purity 2/3, class 0 ; majority superclass 0 holds subclasses
    #   {0, 1}; H's histogram there is (2, 0) -> entropy 0 -> concentration 1
    # unit 1: H = {0, 2, 5}: classes 0, 0, 1 -> purity 2/3 ; histogram (1, 1) -> entropy log 2 / log 2 -> 0
    df = N.unit_scores(pre, classes=classes, subclass=sub, superclass=sup, quantile=0.5)
    np.testing.assert_allclose(df["hap"], [2 / 3, 2 / 3])
    assert df["hap_class"].tolist() == [0, 0]
    np.testing.assert_allclose(df["hap_chance"], [0.5, 0.5])
    np.testing.assert_allclose(df["hap_subclass_concentration"], [1.0, 0.0], atol=1e-12)


def test_hap_sparse_units_by_hand() -> None:
    """A unit that fires on few samples is judged on those samples, not on the zeros (SCIENCE.md 3.4 [P])."""
    classes = np.repeat(np.arange(5), 200)  # 5 classes of 200: chance 0.2
    sub = np.repeat(np.arange(10), 100)  # 2 subclasses of 100 per class
    pre = np.full((1000, 4), -1.0)
    pre[[400, 410, 420, 430], 0] = 1.0  # unit 0 fires on 4 samples, all of class 2 (subclass 4)
    # unit 1 never fires
    pre[800:808, 2] = np.arange(11, 19)  # unit 2: values 1..20 on 20 samples, 0 elsewhere
    pre[[600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611], 2] = [19, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    pre[:50, 3] = 2.0  # unit 3: tied at 2.0 on 50 samples ...
    pre[200:210, 3] = 2.0  # ... 50 of class 0 and 10 of class 1
    df = N.unit_scores(pre, classes=classes, subclass=sub, superclass=classes, quantile=0.99)
    # unit 0: 996 zeros -> Q_0.99 = 0; H = the 4 firing samples -> purity 1, class 2 (the old rule: all 1000 -> 0.2)
    # unit 1: no H -> NaN, class -1
    # unit 2: sorted values have 980 zeros then 1..20; Q_0.99 sits at position 0.99 * 999 = 989.01 -> 10.01;
    #   H = values 11..20: 11..18 at samples 800-807 (class 4), 19, 20 at 600, 601 (class 3) -> purity 0.8, class 4
    # unit 3: 940 zeros then 60 values 2.0 -> Q = 2.0; the positive ties all enter: 50 / 60 of class 0
    np.testing.assert_allclose(df["hap"], [1.0, np.nan, 0.8, 50 / 60])
    assert df["hap_class"].tolist() == [2, -1, 4, 0]
    np.testing.assert_allclose(df["hap_chance"], 0.2)
    # subclass concentration: unit 0's H lies in subclass 4 only -> 1; unit 1 has none -> NaN;
    # unit 2: class 4 holds subclasses 8 (800-899) and 9: H there = 8 samples of subclass 8 -> 1;
    # unit 3: class 0, subclasses 0 (0-99) and 1: all 50 in subclass 0 -> 1
    np.testing.assert_allclose(df["hap_subclass_concentration"], [1.0, np.nan, 1.0, 1.0])
    assert not N.high_activation(pre, quantile=0.99)[:, 1].any()


def test_unit_scores_columns_and_hierarchy_free() -> None:
    df = N.unit_scores(PRE, classes=SUP, subclass=SUB, superclass=SUP)
    assert list(df.columns) == ["unit", "dead", "c1", "c1_subclass", "c3", "c3_class", "hap", "hap_class", "hap_chance",
                                "hap_subclass_concentration"]
    assert df["dead"].tolist() == [False, False, True]
    np.testing.assert_allclose(df["c1"], [2 / (1 + EPS), 1 / (2 + EPS), 0.0])
    assert df["c1_subclass"].tolist() == [0, 0, -1]  # the dead unit has no best subclass
    assert df["c3_class"].tolist()[2] == -1
    flat = N.unit_scores(PRE, classes=SUP)
    assert flat["c1"].isna().all() and (flat["c1_subclass"] == -1).all() and flat["hap_subclass_concentration"].isna().all()
    np.testing.assert_allclose(flat["c3"], df["c3"])


def test_class_stats() -> None:
    df = N.class_stats(PRE[:, :2], labels=np.array([0, 0, 0, 5, 5, 5]))
    assert df[["unit", "label", "n"]].values.tolist() == [[0, 0, 3], [0, 5, 3], [1, 0, 3], [1, 5, 3]]
    # unit 0, label 0: {3, 1, 0} -> mean 4/3, std sqrt(((5/3)^2 + (1/3)^2 + (4/3)^2) / 3) = sqrt(42/27)
    assert df["mean"].iloc[0] == pytest.approx(4 / 3)
    assert df["std"].iloc[0] == pytest.approx(math.sqrt(42 / 27))


def test_wtm_by_hand() -> None:
    # 4 clusters (2 samples each, mean +- 1), clusters 0, 1 in class 0 and 2, 3 in class 1. Cluster means:
    means = np.array([[0, 0, 0], [4, 0, 2], [1, 3, 5], [1, 3, 7]], dtype=float)  # (clusters, units)
    pre = np.repeat(means, 2, axis=0) + np.tile([[-1.0], [1.0]], (4, 3))
    cluster, cls = np.repeat(np.arange(4), 2), np.repeat([0, 0, 1, 1], 2)
    # unit 0: class 0 spread 4, gap |2 - 1| = 1 -> 4 ; class 1 spread 0 -> WTM 4
    # unit 1: both spreads 0 -> 0 ; unit 2: spreads 2 and 2, gap |1 - 6| = 5 -> 0.4
    wtm = N.wtm_index(pre, cluster=cluster, cluster_class=cls)
    np.testing.assert_allclose(wtm, [4 / (1 + 1e-6), 0.0, 2 / (5 + 1e-6)])
    assert N.wtm_fraction(wtm) == pytest.approx(1 / 3)


def test_wtm_pairs_each_class_spread_with_its_own_gap() -> None:
    # 3 classes x 2 clusters, one unit. Class 0: {10, 14} spread 4, gap |12 - 0.75| = 11.25 -> 0.356
    # class 1: {0, 3} spread 3, gap |1.5 - 6| = 4.5 -> 0.667 ; class 2: {0, 0} spread 0.
    # Our reading takes the max ratio (2/3), not the largest spread over its gap (0.356).
    pre = np.array([[10.0], [14.0], [0.0], [3.0], [0.0], [0.0]])
    wtm = N.wtm_index(pre, cluster=np.arange(6), cluster_class=np.array([0, 0, 1, 1, 2, 2]))
    np.testing.assert_allclose(wtm, [3 / (4.5 + 1e-6)])


# ---------------------------------------------------------------- invariances
def test_c1_c3_invariant_to_positive_affine_rescaling() -> None:
    pre, sub, sup = blobs(seed=4, n=20)
    pre = pre[:, :4]  # all alive
    a, b = np.array([3.0, 0.5, 10.0, 1.0]), np.array([2.0, 0.0, 1.0, 7.0])  # b >= 0 keeps every unit alive
    moved = (pre * a + b).astype(np.float32)
    np.testing.assert_allclose(M.subclass_selectivity(moved, subclass=sub, superclass=sup)[0],
                               M.subclass_selectivity(pre, subclass=sub, superclass=sup)[0], rtol=1e-4)
    assert M.c1([moved], subclass=sub, superclass=sup, k=2) == pytest.approx(M.c1([pre], subclass=sub, superclass=sup, k=2), rel=1e-4)
    assert M.c3([moved], classes=sup, k=2) == pytest.approx(M.c3([pre], classes=sup, k=2), rel=1e-5)


def test_c4_invariant_to_per_unit_affine_transforms() -> None:
    pre, _, sup = blobs(seed=5, n=20)
    pre = pre[:, :4]
    moved = pre * np.array([3.0, 0.5, 10.0, 1.0]) + np.array([5.0, -0.1, 2.0, 0.0])  # units stay alive
    np.testing.assert_allclose(M.c4_layer_ratios(moved, classes=sup), M.c4_layer_ratios(pre, classes=sup), rtol=1e-6)


def test_separated_subclasses_score_high_and_shuffled_ones_do_not() -> None:
    pre, sub, sup = blobs(seed=0)
    post = np.maximum(pre, 0)
    c2_blobs = M.c2(M.subclass_silhouettes(post, subclass=sub, superclass=sup)[None, :])
    c1_blobs = M.c1([pre], subclass=sub, superclass=sup, k=1)
    assert c2_blobs > 0.9
    assert c1_blobs > 3
    mixed = shuffled_within(sub, sup)
    c2_mixed = M.c2(M.subclass_silhouettes(post, subclass=mixed, superclass=sup)[None, :])
    c1_mixed = M.c1([pre], subclass=mixed, superclass=sup, k=1)
    assert abs(c2_mixed) < 0.05
    assert c1_mixed < 0.5 < c1_blobs / 6


# ---------------------------------------------------------------- dead and constant units
def test_dead_units_score_zero_and_are_dropped_in_c4() -> None:
    pre, sub, sup = blobs(seed=2, n=20)
    rng = np.random.default_rng(0)
    dead = -1.0 - 100.0 * rng.random((len(pre), 1))  # huge spread, but never positive
    with_dead = np.hstack([pre, dead]).astype(np.float32)
    assert M.dead_units(with_dead)[-1]
    assert (M.subclass_selectivity(with_dead, subclass=sub, superclass=sup)[0][-1] == 0).all()
    assert (M.variance_ratio(with_dead, classes=sup)[-1] == 0).all()
    assert M.c4_preprocess(with_dead).shape == (len(pre), M.c4_preprocess(pre).shape[1])
    np.testing.assert_allclose(M.c4_layer_ratios(with_dead, classes=sup), M.c4_layer_ratios(pre, classes=sup))
    assert np.isnan(M.c4_layer_ratios(dead, classes=sup)).all()  # a fully dead layer gives NaN, which c4 skips


def test_constant_units_give_no_nan() -> None:
    pre, sub, sup = blobs(seed=3, n=10)
    const = np.hstack([pre, np.full((len(pre), 1), 2.0), np.full((len(pre), 1), -3.0)]).astype(np.float32)
    scores, _ = M.subclass_selectivity(const, subclass=sub, superclass=sup)
    assert np.isfinite(scores).all() and (scores[-2:] == 0).all()
    assert (M.variance_ratio(const, classes=sup)[-2:] == 0).all()
    assert np.isfinite(M.c4_layer_ratios(const, classes=sup)).all()
    only_const = np.full((len(pre), 3), 0.1, dtype=np.float32)
    np.testing.assert_array_equal(M.c4_layer_ratios(only_const, classes=sup), [0.0, 0.0])  # Sigma_D = 0 -> 0
    units = N.unit_scores(const, classes=sup, subclass=sub, superclass=sup)
    assert np.isfinite(units[["c1", "c3"]].to_numpy()).all()
    fires = (const > 0).any(axis=0)  # a unit that never fires has no high-activation set: NaN by design
    assert fires[-2] and not fires[-1]
    np.testing.assert_array_equal(np.isfinite(units["hap"].to_numpy()), fires)


def test_singleton_superclasses_give_nan_without_warnings() -> None:
    sub, sup = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])
    pre = np.array([[1.0], [2.0], [3.0], [5.0]])
    assert np.isnan(M.c1([pre], subclass=sub, superclass=sup))
    assert np.isnan(M.subclass_silhouettes(pre, subclass=sub, superclass=sup)).all()
    assert np.isnan(M.c2(np.full((2, 2), np.nan)))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("call", "match"), [
    (lambda: M.subclass_selectivity(PRE, subclass=SUB[:5], superclass=SUP), "subclass must be a 1-D array"),
    (lambda: M.variance_ratio(PRE, classes=SUB.astype(float)), "classes must be an array of integer labels"),
    (lambda: M.variance_ratio(PRE, classes=SUB - 1), "classes must be non-negative"),
    (lambda: M.subclass_selectivity(PRE, subclass=SUB, superclass=np.array([0, 1, 0, 0, 1, 1])), "superclass must be one value"),
    (lambda: M.topk_mean(np.ones(3), 0), r"k must be an int >= 1; got 0"),
    (lambda: M.topk_mean(np.ones((0, 2)), 1), "scores must be a non-empty axis 0"),
    (lambda: M.c1([PRE], subclass=SUB, superclass=SUP, k=0), "k must be an int >= 1"),
    (lambda: M.c3([], classes=SUB), "pres must be a non-empty sequence"),
    (lambda: M.c3([PRE, PRE[:4]], classes=SUB), "pres must be layers with the same n_samples"),
    (lambda: M.dead_units(np.zeros((0, 3))), r"pre must be a 2-D array .*; got \(0, 3\)"),
    (lambda: M.dead_units(np.array([[np.nan]])), "pre must be finite"),
    (lambda: M.subclass_silhouettes(np.zeros(6), subclass=SUB, superclass=SUP), "post must be a 2-D array"),
    (lambda: M.subclass_silhouettes(PRE, subclass=SUB, superclass=SUP, max_per_subclass=0), "max_per_subclass must be"),
    (lambda: M.c2(np.zeros(3)), "sil_by_layer must be"),
    (lambda: M.c4(np.zeros((0, 2))), "ratios_by_layer must be"),
    (lambda: M.c4_preprocess(PRE, percentile=120), r"percentile must be a number in \[0, 100\]"),
    (lambda: M.c4_layer_ratios(PRE, classes=SUP, subset_size=0), "subset_size must be an int >= 1"),
    (lambda: N.unit_scores(PRE, classes=SUP, subclass=SUB), "subclass and superclass must be both given or both None"),
    (lambda: N.unit_scores(PRE, classes=SUP, quantile=1.5), r"quantile must be a number in \[0, 1\]"),
    (lambda: N.wtm_index(PRE, cluster=SUB, cluster_class=np.zeros(6, dtype=int)), "cluster_class must be at least 2 classes"),
    (lambda: N.wtm_index(PRE, cluster=SUB, cluster_class=SUP, eps=0), "eps must be a number > 0"),
    (lambda: N.wtm_fraction(np.array([])), "wtm must be a non-empty 1-D array"),
    (lambda: N.class_stats(PRE, labels=SUB[:2]), "labels must be a 1-D array"),
])
def test_bad_input_names_the_parameter(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
