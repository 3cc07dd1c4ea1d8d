"""Layca (SCIENCE.md 3.3): fixed kernel norms, a per-step rotation of exactly arctan(rho_l), layer multipliers."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from backend.analysis.rotation import rotation_rate
from backend.config import ModelConfig, TrainConfig, load_config
from backend.errors import ConfigError
from backend.training.layca import Layca, kernels, layer_multipliers
from backend.training.models import build_model
from backend.training.trainer import make_optimizer


def test_layer_multipliers_follow_the_thesis_formula() -> None:
    assert layer_multipliers(4, 0.0) == [1.0, 1.0, 1.0, 1.0]
    up = layer_multipliers(3, 0.6)  # alpha > 0: the last layer keeps rho, the first gets (1-alpha)^5
    assert up[-1] == 1.0 and up[0] == pytest.approx(0.4 ** 5) and up[1] == pytest.approx(0.4 ** 2.5)
    down = layer_multipliers(3, -0.5)  # alpha < 0: the first layer keeps rho
    assert down[0] == 1.0 and down[-1] == pytest.approx(0.5 ** 5)
    assert layer_multipliers(1, 0.9) == [1.0]
    with pytest.raises(ValueError, match="alpha must be a number in"):
        layer_multipliers(3, 1.5)


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_layca_keeps_norms_and_rotates_each_layer_by_the_requested_angle(base: str) -> None:
    cfg = ModelConfig(name="mlp", depth=2, width=12, batch_norm=False)
    model = build_model(cfg, (10,), 3, seed=1)
    rho, alpha = 0.05, -0.4
    opt = Layca.for_model(model, base=base, lr=rho, alpha=alpha, momentum=0.9)
    names = [n for n, _ in kernels(model)]
    assert names == ["fc1.linear.weight", "fc2.linear.weight", "classifier.weight"]
    mult = layer_multipliers(3, alpha)
    params = dict(model.named_parameters())
    norms0 = {n: float(params[n].detach().norm()) for n in names}
    biases0 = {n: p.detach().clone() for n, p in params.items() if n not in names}
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, y = torch.randn(32, 10, generator=gen), torch.randint(0, 3, (32,), generator=gen)
        before = {n: params[n].detach().double().numpy().copy() for n in names}
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for n, m in zip(names, mult, strict=True):
            after = params[n].detach().double().numpy()
            assert float(np.linalg.norm(after)) == pytest.approx(norms0[n], rel=1e-5)
            assert rotation_rate(before[n], after) == pytest.approx(rho * m, rel=1e-3)
    for n, b in biases0.items():  # biases are left unchanged, as in the reference code
        assert torch.equal(params[n].detach(), b)


def test_trainer_builds_layca_from_the_config_and_the_schedule_sets_its_rate() -> None:
    model = build_model(ModelConfig(name="mlp", depth=1, width=4, batch_norm=False), (3,), 2, seed=0)
    opt = make_optimizer(model, TrainConfig(optimizer="layca-adam", lr=3 ** -3, layca_alpha=0.5))
    assert isinstance(opt, Layca) and opt.base == "adam"
    assert [g["scale"] for g in opt.param_groups] == pytest.approx(layer_multipliers(2, 0.5))
    assert all(g["lr"] == pytest.approx(3 ** -3) for g in opt.param_groups)


def test_layca_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="train.optimizer must be one of sgd, adam, layca-sgd, layca-adam"):
        load_config(None, ['train.optimizer="layca"'])
    with pytest.raises(ConfigError, match="train.weight_decay must be 0 with a layca optimizer"):
        load_config(None, ['train.optimizer="layca-sgd"', "train.weight_decay=1e-4"])
    with pytest.raises(ConfigError, match=r"train.layca_alpha must be a number in \[-1, 1\]"):
        load_config(None, ["train.layca_alpha=2"])


def test_layca_state_survives_a_resume() -> None:
    cfg = ModelConfig(name="mlp", depth=1, width=6, batch_norm=False, bias=False)
    x, y = torch.randn(16, 5, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 2

    def step(model: torch.nn.Module, opt: Layca) -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    a = build_model(cfg, (5,), 2, seed=0)
    opt_a = Layca.for_model(a, base="adam", lr=0.1)
    step(a, opt_a)
    b = build_model(cfg, (5,), 2, seed=0)
    b.load_state_dict(a.state_dict())
    opt_b = Layca.for_model(b, base="adam", lr=0.1)
    buf = io.BytesIO()  # through bytes, as a resume reads checkpoints/resume.pt (no tensor shared with opt_a)
    torch.save(opt_a.state_dict(), buf)
    buf.seek(0)
    opt_b.load_state_dict(torch.load(buf, weights_only=True))
    step(a, opt_a)
    step(b, opt_b)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
