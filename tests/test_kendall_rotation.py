"""Kendall coefficients (SCIENCE.md 3.2) and layer rotation (SCIENCE.md 3.3): hand-computed values and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backend.analysis.kendall import granulated_kendall, kendall_tau
from backend.analysis.rotation import kernel_names, layer_rotation, rotation_rate, rotation_table


# ---------------------------------------------------------------- Kendall
def test_kendall_by_hand() -> None:
    # pairs (0,1): sign(-1) sign(-2) = +1 ; (0,2): sign(-2) sign(-1) = +1 ; (1,2): sign(-1) sign(+1) = -1
    # each counted in both orders: (2 * 1) / 6 = 1/3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_kendall_reference_ties() -> None:
    # tie in m only: (0,1) gives sign(0)=+1 * sign(-1) = -1 and (1,0) gives +1 * +1, cancelling ;
    # the 4 ordered pairs with model 2 agree -> 4 / 6
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 3)
    # tau-b: 2 concordant, 0 discordant, 1 pair tied in m -> 2 / sqrt((3 - 1) * 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3], ties="tau-b") == pytest.approx(2 / math.sqrt(6))
    # models 0 and 1 coincide in (m, g): the reference code skips that pair, leaving 4 ordered pairs that all disagree
    assert kendall_tau([1, 1, 2], [1, 1, 0]) == pytest.approx(-1.0)


def test_kendall_identity_and_reversal() -> None:
    m = np.random.default_rng(0).permutation(20).astype(float)  # distinct values
    for ties in ("reference", "tau-b"):
        assert kendall_tau(m, m, ties=ties) == pytest.approx(1.0)
        assert kendall_tau(m, -m, ties=ties) == pytest.approx(-1.0)


def test_kendall_degenerate_inputs_give_nan() -> None:
    assert np.isnan(kendall_tau([1.0], [2.0]))
    assert np.isnan(kendall_tau([], []))
    assert np.isnan(kendall_tau([1.0, 1.0], [2.0, 2.0]))  # every pair coincides
    assert np.isnan(kendall_tau([1.0, 2.0, 3.0], [5.0, 5.0, 5.0], ties="tau-b"))  # constant target
    # non-finite models are left out: only models 0 and 2 remain, and they agree
    assert kendall_tau([1.0, np.nan, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(1.0)


def test_granulated_kendall_2x2_by_hand() -> None:
    # models: (lr, bs) = (a, x), (b, x), (a, y), (b, y)
    hp = pd.DataFrame({"lr": ["a", "b", "a", "b"], "bs": [100, 100, 300, 300]})
    m, g = [1, 2, 3, 4], [1, 2, 4, 3]
    # lr axis, groups by bs: {0, 1}: m up, g up -> +1 ; {2, 3}: m up, g down -> -1 -> psi_lr = 0
    # bs axis, groups by lr: {0, 2}: +1 ; {1, 3}: +1 -> psi_bs = 1 ; total = (0 + 1) / 2
    psi = granulated_kendall(m, g, hp)
    assert psi.index.tolist() == ["lr", "bs", "total"]
    np.testing.assert_allclose(psi.to_numpy(), [0.0, 1.0, 0.5])


def test_granulated_kendall_mixed_types_missing_values_and_singletons() -> None:
    hp = pd.DataFrame({
        "opt": ["sgd", "sgd", "adam", "adam", "sgd"],
        "aug": [True, False, True, False, True],
        "drop": [None, None, None, None, 0.2],  # missing values group together
    })
    m, g = [1, 2, 3, 4, 5], [1, 2, 3, 4, 0]
    # opt: groups by (aug, drop): {0, 2} +1, {1, 3} +1, {4} alone (skipped) -> 1
    # aug: groups by (opt, drop): {0, 1} +1, {2, 3} +1, {4} alone -> 1
    # drop: groups by (opt, aug): {0, 4}: m 1 < 5 but g 1 > 0 -> -1 ; the others are alone -> -1
    psi = granulated_kendall(m, g, hp)
    np.testing.assert_allclose(psi.to_numpy(), [1.0, 1.0, -1.0, 1 / 3])


def test_granulated_kendall_without_groups_and_single_axis() -> None:
    hp = pd.DataFrame({"lr": [0.1, 0.01], "bs": [100, 300]})  # the two models differ on both axes
    psi = granulated_kendall([1.0, 2.0], [1.0, 2.0], hp)
    assert psi.isna().all()
    one = granulated_kendall([1, 2, 3], [1, 3, 2], pd.DataFrame({"lr": [1, 2, 3]}))
    np.testing.assert_allclose(one.to_numpy(), [1 / 3, 1 / 3])  # a single axis: one group of all models


@pytest.mark.parametrize(("call", "match"), [
    (lambda: kendall_tau([1, 2, 3], [1, 2]), r"g must be a 1-D array as long as m \(3\)"),
    (lambda: kendall_tau(np.ones((2, 2)), np.ones((2, 2))), "m must be a 1-D array"),
    (lambda: kendall_tau([1, 2], [1, 2], ties="exact"), "ties must be one of"),
    (lambda: granulated_kendall([1, 2], [1, 2], pd.DataFrame({"lr": [1, 2, 3]})), "hparams must be a DataFrame"),
    (lambda: granulated_kendall([1, 2], [1, 2], pd.DataFrame(index=range(2))), "hparams must be a DataFrame"),
    (lambda: granulated_kendall([1, 2], [1, 2], pd.DataFrame({"total": [1, 2]})), "hparams columns must be unique"),
    (lambda: granulated_kendall([1, 2], [1], pd.DataFrame({"lr": [1, 2]})), "target must be"),
])
def test_kendall_bad_input(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- layer rotation
def test_layer_rotation_by_hand() -> None:
    assert layer_rotation([1.0, 0.0], [1.0, 0.0]) == 0.0  # same direction
    assert layer_rotation([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)  # orthogonal
    assert layer_rotation([1.0, 0.0], [-1.0, 0.0]) == pytest.approx(2.0)  # opposite
    assert layer_rotation([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 - 1 / math.sqrt(2))  # 45 degrees
    assert layer_rotation(np.eye(2), 3 * np.eye(2)) == pytest.approx(0.0)  # kernels are flattened
    assert np.isnan(layer_rotation([0.0, 0.0], [1.0, 0.0]))


def test_layer_rotation_invariant_to_scaling_of_wt() -> None:
    rng = np.random.default_rng(0)
    w0, wt = rng.standard_normal((8, 3, 3, 3)), rng.standard_normal((8, 3, 3, 3))
    assert layer_rotation(w0, 7.5 * wt) == pytest.approx(layer_rotation(w0, wt))
    assert layer_rotation(w0, w0) == pytest.approx(0.0, abs=1e-12)


def test_rotation_rate_by_hand() -> None:
    # 45 degrees: d = 1 - 1/sqrt 2 -> 1 / (1 - d)^2 = 2 -> tan = sqrt(2 - 1) = 1
    assert rotation_rate([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert rotation_rate([1.0, 0.0], [2.0, 0.0]) == 0.0
    assert rotation_rate([1.0, 0.0], [0.0, 1.0]) == math.inf
    assert rotation_rate([1.0, math.sqrt(3)], [1.0, 0.0]) == pytest.approx(math.sqrt(3))  # 60 degrees


def _state(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)),
        "conv.bias": rng.standard_normal(4),
        "bn.weight": rng.standard_normal(4),  # batch-norm gamma: 1-D, not a kernel
        "bn.bias": rng.standard_normal(4),
        "bn.running_mean": rng.standard_normal(4),
        "bn.running_var": rng.random(4),
        "bn.num_batches_tracked": np.array(10),
        "fc.weight": rng.standard_normal((2, 4)),
        "fc.bias": rng.standard_normal(2),
    }


def test_kernel_names_keep_conv_and_linear_kernels_only() -> None:
    assert kernel_names(_state(np.random.default_rng(0))) == ["conv.weight", "fc.weight"]


def test_rotation_table() -> None:
    rng = np.random.default_rng(1)
    init = _state(rng)
    later = {**init, "conv.weight": -2.0 * init["conv.weight"], "fc.weight": 5.0 * init["fc.weight"]}
    table = rotation_table(init, {3: later, 0: init})
    assert table.columns.tolist() == ["epoch", "layer", "depth", "rotation"]
    assert table["epoch"].tolist() == [0, 0, 3, 3]
    assert table["layer"].tolist() == ["conv", "fc", "conv", "fc"]
    assert table["depth"].tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(table["rotation"], [0.0, 0.0, 2.0, 0.0], atol=1e-12)  # 0 at init, scaling ignored
    empty = rotation_table(init, {})
    assert empty.empty and empty.columns.tolist() == ["epoch", "layer", "depth", "rotation"]


@pytest.mark.parametrize(("call", "match"), [
    (lambda: layer_rotation([1.0, 0.0], [1.0, 0.0, 0.0]), r"wt must be an array with as many entries as w0 \(2\); got 3"),
    (lambda: rotation_rate(np.ones(4), np.ones(5)), "wt must be"),
    (lambda: rotation_table({"fc.weight": np.ones((2, 2))}, {1: {"other.weight": np.ones((2, 2))}}), r"states\[1\] must be"),
])
def test_rotation_bad_input(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
