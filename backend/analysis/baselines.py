"""Black-box c0 and the sharpness baselines σ′, σ″, α′, α″ (SCIENCE.md 3.1 and 3.2).

Pure: a torch model and in-memory tensors in, numbers out; no I/O. The caller's model is never
changed (perturbations happen on a copy). Every random draw comes from ``seed``, so on the CPU the
results are deterministic.

Follows the reference code (``measures.py`` of Simoncarbo/Intraclass-clustering-measures):

- **c0** (``blackbox_subclass``): per subclass i of superclass c, pairs (x, x') with x' of the same
  subclass or of another subclass of c; along x·f + x'·(1−f), f = 0.1…0.9, the drop 1 − p(c); the
  maximum drop per pair, averaged over the pairs; c0 = median_i drop(other) / drop(same).
- **σ** (``sharpness_random``): the largest scale m, found by bisection on [0, 2], at which weights
  w + m·(|w| + 1e-3)·N(0, 1) keep the accuracy on training samples at the target (90 %), averaged
  over noise draws; stop when the bracket is below 1e-5 or the accuracy is within 0.005 of target.
- **α** (``sharpness_worstcase``): the same bisection on [0, 0.25] with the worst perturbation in
  the box |Δw| <= m·(|w| + 1e-3), found by projected gradient ascent on the cross-entropy (SGD steps
  of rate 1, then 0.1 for the last 40 % of the steps, clipped to the box after each step).
- ′ perturbs every parameter, model in inference mode; ″ perturbs kernels only (parameters with more
  than one dimension) and runs batch norm on batch statistics (dropout stays off).

Deviations [P]: a model below the target accuracy before any perturbation gets NaN (the reference's
bisection would return a scale near 0, i.e. "very sharp"); α's ascent computes gradients in the same
mode as its evaluation and leaves the batch-norm running statistics alone (the reference's Keras
``fit`` ran in training mode and updated them); it has no early stop at 70 % accuracy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FACTORS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # c0's interpolation points (reference)
EPS_WEIGHT = 1e-3  # the box and the noise scale with |w| + this (reference)


@dataclass(frozen=True)
class Sharpness:
    """The bisected scale (NaN when undefined), the accuracy measured at it and why it is NaN."""

    scale: float
    accuracy: float
    reason: str = ""


def _batches(n: int, batch_size: int) -> list[np.ndarray]:
    """Index chunks of at least ``min(n, batch_size)`` samples: no batch of one under batch statistics."""
    return np.array_split(np.arange(n), max(1, n // max(batch_size, 1)))


@contextmanager
def _mode(model: nn.Module, batch_stats: bool) -> Iterator[nn.Module]:
    """Inference mode; with ``batch_stats`` batch norm uses the batch's statistics (dropout stays off) and
    leaves its running statistics as they were (momentum 0 meanwhile)."""
    was = model.training
    model.eval()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if batch_stats else []
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0
    try:
        yield model
    finally:
        model.train(was)
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[torch.from_numpy(i)]) for i in _batches(len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_stats: bool = False,
             batch_size: int = 512) -> float:
    """Fraction of ``x`` (N, *in_shape) classified as ``y`` (N,) int64."""
    with _mode(model, batch_stats):
        return float((_logits(model, x, batch_size).argmax(1) == y).double().mean())


# ------------------------------------------------------------------------------------------- c0


def max_drop(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, target: int, *, batch_size: int = 512) -> np.ndarray:
    """Per pair (x1[j], x2[j]): max over f in FACTORS of 1 − p(target | x1·f + x2·(1−f)); shape (n,).

    The drop is computed as −expm1(log p) in float64, so a confident model's tiny drops stay non-zero.
    """
    mixes = torch.cat([x1 * f + x2 * (1.0 - f) for f in FACTORS])  # (9n, *in_shape)
    with _mode(model, False):
        logp = F.log_softmax(_logits(model, mixes, batch_size).double(), dim=1)[:, target]
    drop = -torch.expm1(logp).reshape(len(FACTORS), len(x1))
    return drop.max(dim=0).values.numpy()


def c0(model: nn.Module, x: torch.Tensor, *, superclass: np.ndarray, subclass: np.ndarray, pairs: int, seed: int,
       batch_size: int = 512) -> tuple[float, np.ndarray]:
    """c0 = median over subclasses of drop(other-subclass pairs) / drop(same-subclass pairs) (SCIENCE.md 3.1).

    x : (N, *in_shape) normalised training inputs; superclass : (N,) the model's target (its output
    index); subclass : (N,) fine labels. ``pairs`` anchors per subclass (all when fewer), each paired
    with a different sample of its subclass and with a sample of another subclass of its superclass.
    Returns c0 and the ratio per subclass (NaN where the subclass has fewer than 2 samples, no sibling
    subclass, or a zero same-subclass drop). c0 is NaN when no subclass has a ratio.
    """
    rng = np.random.default_rng(seed)
    ratios = []
    for i in np.unique(subclass):
        own = np.flatnonzero(subclass == i)
        c = int(np.bincount(superclass[own]).argmax())  # the superclass holding the subclass (reference)
        rest = np.flatnonzero((superclass == c) & (subclass != i))
        if len(own) < 2 or len(rest) == 0:
            ratios.append(np.nan)
            continue
        n = min(pairs, len(own))
        pos = rng.choice(len(own), n, replace=False)
        same = own[(pos + rng.integers(1, len(own), n)) % len(own)]  # never the anchor itself
        other = rng.choice(rest, n, replace=len(rest) < n)
        a = x[torch.from_numpy(own[pos])]
        d_same = max_drop(model, a, x[torch.from_numpy(same)], c, batch_size=batch_size).mean()
        d_other = max_drop(model, a, x[torch.from_numpy(other)], c, batch_size=batch_size).mean()
        ratios.append(d_other / d_same if d_same > 0 else np.nan)
    r = np.asarray(ratios, dtype=np.float64)
    return (float(np.nanmedian(r)) if np.isfinite(r).any() else float("nan")), r


# ------------------------------------------------------------------------------------ sharpness


def _perturbed(model: nn.Module, kernels_only: bool) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    """A copy of ``model``, its original state and the names of the parameters to perturb."""
    net = copy.deepcopy(model)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    names = [n for n, p in net.named_parameters() if p.requires_grad and (not kernels_only or p.ndim > 1)]
    return net, state, names


def _bisect(evaluate: Callable[[float], float], *, high: float, steps: int, target: float) -> tuple[float, float]:
    """The reference's bisection: m = (h + l)/2; accuracy(m) < target -> h = m, else l = m."""
    h, low, m, acc = high, 0.0, high, float("nan")
    for _ in range(steps):
        m = (h + low) / 2.0
        acc = evaluate(m)
        if h - low < 1e-5 or abs(acc - target) < 5e-3:
            break
        h, low = (m, low) if acc < target else (h, m)
    return m, acc


def _below_target(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_stats: bool, target: float,
                  batch_size: int) -> Sharpness | None:
    acc = accuracy(model, x, y, batch_stats=batch_stats, batch_size=batch_size)
    if acc >= target:
        return None
    return Sharpness(float("nan"), acc, f"training accuracy {acc:.3f} is below the target {target:g} before any "
                                        "perturbation; train longer or lower analysis.sharpness_target")


def sharpness_random(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, kernels_only: bool, batch_stats: bool,
                     samples: int, draws: int, steps: int, seed: int, target: float = 0.9, high: float = 2.0,
                     batch_size: int = 512) -> Sharpness:
    """σ′ (``kernels_only=False, batch_stats=False``) or σ″ (both True); see the module docstring.

    x : (N, *in_shape) normalised training inputs, y : (N,) training targets. Each accuracy estimate
    uses a fresh random subset of ``samples`` of them and a fresh noise draw.
    """
    if (skip := _below_target(model, x, y, batch_stats, target, batch_size)) is not None:
        return skip
    net, state, names = _perturbed(model, kernels_only)
    params = dict(net.named_parameters())
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    def evaluate(m: float) -> float:
        total = 0.0
        for _ in range(draws):
            net.load_state_dict(state)
            with torch.no_grad():
                for n in names:
                    w = state[n]
                    noise = torch.randn(w.shape, generator=gen, dtype=w.dtype)
                    params[n].add_(noise * m * (w.abs() + EPS_WEIGHT))
            sub = torch.from_numpy(rng.choice(len(x), min(samples, len(x)), replace=False))
            total += accuracy(net, x[sub], y[sub], batch_stats=batch_stats, batch_size=batch_size)
        return total / draws

    m, acc = _bisect(evaluate, high=high, steps=steps, target=target)
    return Sharpness(m, acc)


def sharpness_worstcase(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, kernels_only: bool, batch_stats: bool,
                        samples: int, ascent_steps: int, steps: int, seed: int, target: float = 0.9, high: float = 0.25,
                        lr: float = 1.0, ascent_batch: int = 128, batch_size: int = 512) -> Sharpness:
    """α′ (``kernels_only=False, batch_stats=False``) or α″ (both True); see the module docstring.

    At each scale m the weights start from the original ones and take ``ascent_steps`` projected
    gradient-ascent steps on random batches of ``ascent_batch`` training samples; the accuracy is then
    measured on a random subset of ``samples``.
    """
    if (skip := _below_target(model, x, y, batch_stats, target, batch_size)) is not None:
        return skip
    net, state, names = _perturbed(model, kernels_only)
    params = dict(net.named_parameters())
    rng = np.random.default_rng(seed)
    slow = math.ceil(0.6 * ascent_steps)  # reference: rate x0.1 from epoch 3 of 5

    def evaluate(m: float) -> float:
        net.load_state_dict(state)
        box = {n: m * (state[n].abs() + EPS_WEIGHT) for n in names}
        with _mode(net, batch_stats):
            for t in range(ascent_steps):
                b = torch.from_numpy(rng.choice(len(x), min(ascent_batch, len(x)), replace=False))
                loss = F.cross_entropy(net(x[b]), y[b])
                grads = torch.autograd.grad(loss, [params[n] for n in names])
                with torch.no_grad():
                    for n, g in zip(names, grads, strict=True):
                        p = params[n]
                        p.add_(g, alpha=lr if t < slow else 0.1 * lr)
                        p.copy_(torch.maximum(torch.minimum(p, state[n] + box[n]), state[n] - box[n]))
        sub = torch.from_numpy(rng.choice(len(x), min(samples, len(x)), replace=False))
        return accuracy(net, x[sub], y[sub], batch_stats=batch_stats, batch_size=batch_size)

    m, acc = _bisect(evaluate, high=high, steps=steps, target=target)
    return Sharpness(m, acc)
