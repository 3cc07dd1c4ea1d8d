"""Layca: LAYer-level Controlled Amount of weight rotation (SCIENCE.md 3.3, thesis ch. 4).

Per kernel (conv or linear weight with ndim >= 2) and per step, with s the base optimizer's update
oriented uphill (SGD: the momentum buffer; Adam: m_hat / (sqrt(v_hat) + eps)):

1. project out the weight direction: s <- s - (s.w / |w|^2) w;
2. rescale so that |s| = |w|;
3. step w <- w - rho_l s, with rho_l the layer's rate (the learning rate times the layer multiplier);
4. renormalise w back to its initial norm.

Since s is orthogonal to w and as long as w, the angle between consecutive iterates is exactly
arctan(rho_l): the learning rate *is* the per-step rotation rate tan(theta) of SCIENCE.md 3.3.

As in the reference code [C] ("only kernels are optimized; biases and batchnorm parameters are
left unchanged. This did not affect performance in our experiments"), every parameter that is not
a kernel keeps its initial value. That value is zero for every bias (:func:`zero_biases`, called by the
runner for Layca runs), as in the reference's Keras models, rather than PyTorch's random one. Use
``model.bias=false`` to match the thesis's models exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from backend.errors import expected

BASES = ("sgd", "adam")


def layer_multipliers(n_layers: int, alpha: float) -> list[float]:
    """The layer-wise rate multipliers rho_l / rho of SCIENCE.md 3.3, first layer first.

    rho_l = (1-alpha)^(5(L-1-l)/(L-1)) rho when alpha > 0 (last layers rotate faster), and
    (1+alpha)^(5l/(L-1)) rho when alpha <= 0 (first layers rotate faster); alpha in [-1, 1].
    With one layer the multiplier is 1.
    """
    if not -1.0 <= alpha <= 1.0:
        raise ValueError(expected("alpha", expected="a number in [-1, 1]", got=alpha))
    if n_layers < 1:
        raise ValueError(expected("n_layers", expected="an integer >= 1", got=n_layers))
    if n_layers == 1:
        return [1.0]
    last = n_layers - 1
    if alpha > 0:
        return [(1.0 - alpha) ** (5.0 * (last - layer) / last) for layer in range(n_layers)]
    return [(1.0 + alpha) ** (5.0 * layer / last) for layer in range(n_layers)]


def kernels(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The model's kernels (``*.weight`` with ndim >= 2) in parameter order, as layer rotation counts them."""
    return [(name, p) for name, p in model.named_parameters() if name.split(".")[-1] == "weight" and p.ndim >= 2]


@torch.no_grad()
def zero_biases(model: nn.Module) -> None:
    """Set every ``*.bias`` parameter to zero (Keras's initialiser in the reference code [C]).

    Layca never updates biases, so they would otherwise keep PyTorch's random initial values for the
    whole run. Batch-norm biases (beta) start at zero anyway.
    """
    for name, p in model.named_parameters():
        if name.split(".")[-1] == "bias":
            p.zero_()


class Layca(torch.optim.Optimizer):
    """Layca on top of SGD (with momentum) or Adam; one parameter group per kernel.

    Every group's ``lr`` is the base rotation rate rho (the trainer's learning-rate schedule sets
    it); ``scale`` is the layer's multiplier from :func:`layer_multipliers`.
    """

    def __init__(self, params: Iterable[dict], *, base: str, lr: float, momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if base not in BASES:
            raise ValueError(expected("base", expected=f"one of {BASES}", got=base))
        super().__init__(params, {"lr": lr, "scale": 1.0, "momentum": momentum, "betas": betas, "eps": eps})
        self.base = base

    @classmethod
    def for_model(cls, model: nn.Module, *, base: str, lr: float, alpha: float = 0.0, **kwargs: Any) -> Layca:
        found = kernels(model)
        if not found:
            raise ValueError(expected("model", expected="at least one kernel (conv or linear weight)", got="none"))
        groups = [{"params": [p], "scale": m, "name": name} for (name, p), m in zip(found, layer_multipliers(len(found), alpha),
                                                                                  strict=True)]
        return cls(groups, base=base, lr=lr, **kwargs)

    def _direction(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """The base optimizer's uphill update for ``p`` (its state is advanced by one step)."""
        state = self.state[p]
        g = p.grad
        assert g is not None  # step() skips parameters without a gradient
        if self.base == "sgd":
            if group["momentum"] == 0:
                return g
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.clone()
            else:
                buf.mul_(group["momentum"]).add_(g)
            return buf
        beta1, beta2 = group["betas"]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = float(state["step"])
        state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m_hat = state["exp_avg"] / (1 - beta1 ** t)
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** t)
        return m_hat / (v_hat.sqrt() + group["eps"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            rho = group["lr"] * group["scale"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "initial_norm" not in state:
                    state["initial_norm"] = p.detach().norm().clone()
                s = self._direction(p, group)
                w_norm2 = (p * p).sum()
                s = s - (s * p).sum() / w_norm2 * p  # 1. orthogonal to w
                s_norm = s.norm()
                if s_norm == 0:
                    continue  # no gradient signal: nothing to rotate
                s = s * (w_norm2.sqrt() / s_norm)  # 2. as long as w
                p.sub_(rho * s)  # 3. descent step: tan(angle) = rho
                p.mul_(state["initial_norm"] / p.norm())  # 4. back to the initial norm
        return loss
