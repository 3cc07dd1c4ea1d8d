"""Neuron-level training dynamics (SCIENCE.md 3.4): pre-activations and derivative signs on a probe batch.

Every ``every`` optimizer steps, before the step, :class:`DynamicsRecorder` runs one forward and one
backward pass of the model on a fixed batch of training samples and records, per probe sample and
chosen unit:

- the **pre-activation** (the ReLU's input, read after batch norm; conv channels max-pooled over
  H x W, as in snapshots);
- the **sign of dLoss/d(activation)**, the derivative of that sample's loss with respect to the
  unit's activation (the ReLU's output; for a conv channel the sum over H x W, i.e. the derivative
  for a shift of the whole feature map). -1 means raising the activation lowers the sample's loss.
- each probe sample's loss.

The pass uses the model in eval mode (batch-norm running statistics, dropout off; SCIENCE.md
section 2), so samples do not interact and the gradient of the summed loss with respect to sample
i's activation is that of sample i's own loss: one backward pass gives every per-sample sign
(batch-mean scaling would not change a sign either). Gradients are taken with
``torch.autograd.grad`` on the activations only, so parameters' ``.grad``, the optimizer state,
batch-norm statistics and every random generator are untouched: recording does not change the
training trajectory.

The recorder buffers one epoch of recordings and hands them to ``sink`` at the epoch's end; the
runner's sink writes them through the store, so this module never touches the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.training.snapshots import ProbeLayer


class _Capture:
    """Forward hooks on the chosen ReLU calls: keep each call's input (pre) and output (activation)."""

    def __init__(self, model: nn.Module, layers: Sequence[ProbeLayer]) -> None:
        self.wanted = {(layer.module_path, layer.call): layer.name for layer in layers}
        self.paths = {layer.module_path for layer in layers}
        self.model = model
        self.counts: dict[str, int] = {}
        self.pre: dict[str, torch.Tensor] = {}
        self.act: dict[str, torch.Tensor] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        self.handles.append(self.model.register_forward_pre_hook(lambda m, a: self.counts.clear()))
        for path, module in self.model.named_modules():
            if path in self.paths:
                self.handles.append(module.register_forward_hook(self._hook(path)))
        return self

    def _hook(self, path: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            call = self.counts.get(path, 0)
            self.counts[path] = call + 1
            name = self.wanted.get((path, call))
            if name is not None:
                self.pre[name] = args[0]
                self.act[name] = out

        return hook

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


Units = int | Mapping[str, np.ndarray]  # the first N units of every layer (0 = all), or each layer's unit indices


def unit_indices(units: Units, layer: str, n_units: int) -> np.ndarray:
    """The indices of the units recorded in ``layer`` (of ``n_units``): ascending int64."""
    if isinstance(units, Mapping):
        return np.asarray(units[layer], dtype=np.int64) if layer in units else np.arange(n_units)
    return np.arange(n_units if units <= 0 else min(units, n_units))


def probe_pass(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: Sequence[ProbeLayer], units: Units
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """One eval-mode forward+backward pass on (x, y).

    x : (n, *in_shape) on the model's device; y : (n,) int64 targets; units : see :func:`unit_indices`.
    Returns ``(pre, sign, loss)``: pre[layer] float32 (n, u) pre-activations of the chosen u units,
    sign[layer] int8 (n, u) sign of dLoss_i/d(activation), loss float32 (n,) per-sample cross-entropy.
    The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), _Capture(model, layers) as cap:
            out = model(x)
            losses = F.cross_entropy(out, y, reduction="none")  # (n,)
            names = [layer.name for layer in layers if layer.name in cap.act]
            acts = [cap.act[n] for n in names]
            grads = torch.autograd.grad(losses.sum(), acts, allow_unused=True) if acts else []
    finally:
        model.train(was_training)
    pre_out, sign_out = {}, {}
    for name, a, g in zip(names, acts, grads, strict=True):
        pre = cap.pre[name].detach()
        g = torch.zeros_like(a) if g is None else g
        if pre.dim() == 4:  # (n, C, H, W): max-pooled pre-activation, summed derivative
            pre, g = pre.amax(dim=(2, 3)), g.sum(dim=(2, 3))
        elif pre.dim() == 3:  # (n, T, F) token sequences
            pre, g = pre.amax(dim=1), g.sum(dim=1)
        idx = torch.from_numpy(unit_indices(units, name, pre.shape[1])).to(pre.device)
        pre_out[name] = pre[:, idx].float().cpu().numpy()
        sign_out[name] = torch.sign(g[:, idx]).to(torch.int8).cpu().numpy()
    return pre_out, sign_out, losses.detach().float().cpu().numpy()


class DynamicsRecorder:
    """Batch and epoch callback: records every ``every`` steps, flushes each epoch's recordings to ``sink``.

    ``sink(epoch, records)`` receives a list of dicts with keys step, pre, sign, loss (see
    :func:`probe_pass`) and units ({layer: the recorded units' indices}), only for epochs with at
    least one recording.
    """

    def __init__(self, layers: Sequence[ProbeLayer], probe_x: torch.Tensor, probe_y: torch.Tensor, *, every: int, units: Units,
                 sink: Callable[[int, list[dict[str, Any]]], None]) -> None:
        self.layers = list(layers)
        self.probe_x = probe_x  # (n_probe, *in_shape), normalised, CPU
        self.probe_y = probe_y  # (n_probe,) int64 training targets
        self.every = every
        self.units = units
        self.sink = sink
        self._device: torch.device | None = None
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        self.records: list[dict[str, Any]] = []

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._device != device or self._x is None or self._y is None:
            self._device, self._x, self._y = device, self.probe_x.to(device), self.probe_y.to(device)
        return self._x, self._y

    def on_batch_start(self, step: int, epoch: int, model: nn.Module) -> None:
        if step % self.every:
            return
        x, y = self._on(next(model.parameters()).device)
        pre, sign, loss = probe_pass(model, x, y, self.layers, self.units)
        chosen = {layer.name: unit_indices(self.units, layer.name, layer.units) for layer in self.layers}
        self.records.append({"step": step, "pre": pre, "sign": sign, "loss": loss, "units": chosen})

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float], *, final: bool) -> None:
        if self.records:
            records, self.records = self.records, []
            self.sink(epoch, records)
