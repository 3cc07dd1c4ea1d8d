"""c0 and the sharpness baselines (SCIENCE.md 3.1, 3.2): hand-computable cases, then a real digits run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from backend.analysis import baselines as b

SIG = 1.0 / (1.0 + math.exp(-1.0)), 1.0 / (1.0 + math.exp(2.0))  # σ(1), σ(-2)


class Bowl(nn.Module):
    """1-D input; logits [3(x−2)² − 1, 0], so p(class 0) = σ(3(x−2)² − 1): high at x = 1 and 3, low at 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 3.0 * (x[:, 0] - 2.0) ** 2 - 1.0
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def test_c0_on_a_model_whose_interpolation_drop_is_known() -> None:
    # one superclass (0) with subclasses at x = 1 and x = 3, four identical samples each: a same-subclass
    # mix stays at x = 1 (drop 1 − σ(2) = σ(−2)); the other-subclass mix passes x = 2 at f = 0.5 (drop σ(1))
    x = torch.tensor([[1.0]] * 4 + [[3.0]] * 4)
    value, ratios = b.c0(Bowl(), x, superclass=np.zeros(8, np.int64), subclass=np.repeat([0, 1], 4), pairs=3, seed=0)
    assert ratios == pytest.approx([SIG[0] / SIG[1]] * 2, rel=1e-5)
    assert value == pytest.approx(SIG[0] / SIG[1], rel=1e-5)  # ≈ 6.18


def test_c0_is_the_median_over_subclasses_and_skips_a_subclass_without_sibling() -> None:
    # superclass 0 as above; superclass 1 holds one subclass only (no other subclass to pair with: NaN)
    x = torch.tensor([[1.0]] * 4 + [[3.0]] * 4 + [[2.0]] * 3)
    sup = np.array([0] * 8 + [1] * 3)
    value, ratios = b.c0(Bowl(), x, superclass=sup, subclass=np.repeat([0, 1, 2], [4, 4, 3]), pairs=10, seed=1)
    assert np.isnan(ratios[2]) and value == pytest.approx(SIG[0] / SIG[1], rel=1e-5)


def one_hot_linear(n: int, a: float) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Sample i is the one-hot e_i; weights W[0, i] = a, W[1, i] = 0: each sample's decision has its own weights."""
    model = nn.Linear(n, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0].fill_(a)
    return model, torch.eye(n), torch.zeros(n, dtype=torch.int64)


def test_sigma_matches_the_closed_form_of_a_linear_model() -> None:
    # sample i stays correct iff a + m(a+ε)·n0 > m·ε·n1 (n0, n1 ~ N(0,1)): accuracy Φ(a / (m·s)), s = ‖(a+ε, ε)‖;
    # 90 % accuracy at m* = a / (s·Φ⁻¹(0.9)); the bisection stops within 0.005 of 90 %, i.e. m in [0.76, 0.80]
    a, eps = 1.0, b.EPS_WEIGHT
    model, x, y = one_hot_linear(2000, a)
    s = b.sharpness_random(model, x, y, kernels_only=False, batch_stats=False, samples=2000, draws=4, steps=20, seed=0)
    expected = a / (math.hypot(a + eps, eps) * norm.ppf(0.9))
    assert s.reason == "" and abs(s.accuracy - 0.9) < 0.01
    assert s.scale == pytest.approx(expected, abs=0.03)  # ≈ 0.779
    assert torch.equal(model.weight[0], torch.full((2000,), a))  # the caller's model is untouched


def test_alpha_matches_the_worst_corner_of_the_box() -> None:
    # x = 1 for every sample, logits (w0·x, w1·x): the worst point of the box lowers w0 by m(w0+ε) and raises
    # w1 by m(w1+ε), so every sample flips at m* = (w0 − w1) / (w0 + w1 + 2ε); one ascent step reaches the corner
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.1], [0.9]]))
    x, y = torch.ones(64, 1), torch.zeros(64, dtype=torch.int64)
    s = b.sharpness_worstcase(model, x, y, kernels_only=True, batch_stats=False, samples=64, ascent_steps=3,
                              steps=30, seed=0, ascent_batch=16)
    assert s.scale == pytest.approx(0.2 / (2.0 + 2 * b.EPS_WEIGHT), abs=1e-4)  # ≈ 0.0999


def test_kernels_only_leaves_the_biases_alone() -> None:
    # the decision sits in the bias (1 vs 0) and the kernel is zero: perturbing kernels only scales the noise
    # by m·ε, which never flips a sample, so σ″-style bisection climbs to the top of [0, 2]
    model = nn.Linear(10, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0]))
    x, y = torch.eye(10).repeat(20, 1), torch.zeros(200, dtype=torch.int64)
    common = {"batch_stats": False, "samples": 200, "draws": 3, "steps": 12, "seed": 0}
    assert b.sharpness_random(model, x, y, kernels_only=True, **common).scale > 1.99
    assert b.sharpness_random(model, x, y, kernels_only=False, **common).scale < 1.5


def test_batch_statistics_mode_ignores_the_running_statistics() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.9))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[1].running_mean.copy_(torch.tensor([100.0, 0.0]))  # inference mode: class 0 never wins
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 50)
    y = torch.tensor([0, 1] * 50)
    assert b.accuracy(model, x, y, batch_stats=True) == 1.0  # batch statistics, no dropout
    assert b.accuracy(model, x, y) == 0.5
    assert model.training and model[1].running_mean.tolist() == [100.0, 0.0]  # mode and statistics restored


def test_a_model_below_the_target_gets_nan_with_the_reason() -> None:
    model, x, y = one_hot_linear(50, -1.0)  # every sample wrong
    for s in (b.sharpness_random(model, x, y, kernels_only=False, batch_stats=False, samples=50, draws=1, steps=3, seed=0),
              b.sharpness_worstcase(model, x, y, kernels_only=False, batch_stats=False, samples=50, ascent_steps=1,
                                    steps=3, seed=0)):
        assert math.isnan(s.scale) and "below the target 0.9" in s.reason


def test_the_same_seed_gives_the_same_values() -> None:
    model, x, y = one_hot_linear(300, 1.0)
    kw = {"kernels_only": False, "batch_stats": False, "samples": 100, "steps": 6, "seed": 3}
    assert b.sharpness_random(model, x, y, draws=2, **kw) == b.sharpness_random(model, x, y, draws=2, **kw)
    assert b.sharpness_worstcase(model, x, y, ascent_steps=2, **kw) == b.sharpness_worstcase(model, x, y, ascent_steps=2, **kw)
