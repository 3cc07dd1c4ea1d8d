"""Activation snapshots: find a model's probe-able layers and record their pre-activations.

A snapshot (SCIENCE.md section 2) runs the model in eval mode (BN running statistics, dropout
off), without augmentation, over the fixed probe set, and records for every probe-able layer the
**pre-activation**: the input of the ReLU, read by a forward pre-hook. Conv layers are reduced per
channel by global max pooling over H x W (the thesis's choice) or, as an option, mean pooling; the
post-ReLU value of a max-pooled channel is then ``max(pre, 0)`` because ReLU is monotone.

:class:`SnapshotCallback` is the bridge to the store: the training loop only calls it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.errors import ConfigError


@dataclass(frozen=True)
class ProbeLayer:
    name: str  # stable, human-readable: module path, plus _k for the k-th extra call of a module
    module_path: str
    call: int  # which call of the module within one forward pass (0 for most models)
    units: int  # channels (conv) or features (linear)
    kind: str  # "conv" (reduced by pooling) or "linear"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "units": self.units, "kind": self.kind, "module": self.module_path, "call": self.call}


def probe_layers(model: nn.Module, in_shape: tuple[int, ...]) -> list[ProbeLayer]:
    """Every ReLU call of one forward pass, in execution order (SCIENCE.md section 2, "Which layers").

    Found by one forward pass of two zero inputs in eval mode; the model's mode is restored.
    """
    relus: dict[nn.Module, str] = {m: path for path, m in model.named_modules() if isinstance(m, nn.ReLU)}
    calls: list[tuple[nn.Module, tuple[int, ...]]] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        calls.append((module, tuple(args[0].shape)))

    handles = [m.register_forward_pre_hook(hook) for m in relus]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((2, *in_shape), device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    seen: dict[nn.Module, int] = defaultdict(int)
    layers = []
    for module, shape in calls:
        k = seen[module]
        seen[module] += 1
        path = relus[module]
        if len(shape) not in (2, 3, 4):
            continue  # e.g. a ReLU on a 5-D tensor: no agreed reduction, so not probe-able
        units = shape[1] if len(shape) in (2, 4) else shape[-1]
        layers.append(ProbeLayer(path if k == 0 else f"{path}_{k}", path, k, int(units), "conv" if len(shape) == 4 else "linear"))
    return layers


def select_layers(layers: Sequence[ProbeLayer], names: Sequence[str]) -> list[ProbeLayer]:
    """The layers named in ``names`` (all when empty); an unknown name is a :class:`ConfigError`."""
    if not names:
        return list(layers)
    by_name = {layer.name: layer for layer in layers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            f"snapshots.layers names unknown layer(s) {unknown}; this model's probe-able layers are: "
            f"{', '.join(by_name)}."
        )
    return [layer for layer in layers if layer.name in set(names)]


def _reducer(reduction: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def reduce(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (B, C, H, W) -> (B, C)
            return x.amax(dim=(2, 3)) if reduction == "max" else x.mean(dim=(2, 3))
        if x.dim() == 3:  # (B, T, F) token sequences -> (B, F)
            return x.amax(dim=1) if reduction == "max" else x.mean(dim=1)
        return x.detach().clone()  # (B, F): a copy, since an in-place ReLU may overwrite x

    return reduce


class ActivationRecorder:
    """Context manager that records the pre-activations of ``layers`` during forward passes.

    >>> with ActivationRecorder(model, layers) as rec:
    ...     model(x)
    >>> rec.result()  # {layer name: ndarray (n_samples, units) float32}
    """

    def __init__(self, model: nn.Module, layers: Sequence[ProbeLayer], reduction: str = "max") -> None:
        self.model = model
        self.layers = list(layers)
        self.reduce = _reducer(reduction)
        self._wanted = {(layer.module_path, layer.call): layer.name for layer in self.layers}
        self._chunks: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in self.layers}
        self._counts: dict[str, int] = defaultdict(int)
        self._handles: list[Any] = []

    def __enter__(self) -> ActivationRecorder:
        paths = {layer.module_path for layer in self.layers}
        self._handles.append(self.model.register_forward_pre_hook(lambda m, a: self._counts.clear()))
        for path, module in self.model.named_modules():
            if path in paths:
                self._handles.append(module.register_forward_pre_hook(self._make_hook(path)))
        return self

    def _make_hook(self, path: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            call = self._counts[path]
            self._counts[path] += 1
            name = self._wanted.get((path, call))
            if name is not None:
                self._chunks[name].append(self.reduce(args[0]).float().cpu())

        return hook

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def result(self) -> dict[str, np.ndarray]:
        return {name: torch.cat(chunks).numpy() for name, chunks in self._chunks.items() if chunks}


def record(model: nn.Module, batches: Iterable[torch.Tensor], layers: Sequence[ProbeLayer],
           reduction: str = "max", outputs: list[torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over ``batches`` and return each layer's (n_samples, units) array.

    If ``outputs`` is a list, the model's outputs (logits) are appended to it, batch by batch.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), ActivationRecorder(model, layers, reduction) as rec:
            for xb in batches:
                out = model(xb)
                if outputs is not None:
                    outputs.append(out.float().cpu())
        return rec.result()
    finally:
        model.train(was_training)


def default_schedule(epochs: int, *, max_regular: int = 10) -> tuple[int, ...]:
    """Epoch 0, a roughly logarithmic set of early epochs, then every few epochs, and the last.

    Early epochs are round(2^(k/2)) up to a quarter of the run; then every ceil(epochs/10) epochs.
    For 20 epochs: 0, 1, 2, 3, 4, 6, 8, 10, 12, ..., 20. For 250: 0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 25,
    32, 45, 50, 75, 100, ..., 250.
    """
    early = {round(2 ** (k / 2)) for k in range(0, 2 * int(math.log2(max(epochs, 1))) + 1)}
    early = {e for e in early if e <= max(epochs // 4, 4)}
    step = max(1, math.ceil(epochs / max_regular))
    regular = set(range(step, epochs + 1, step))
    return tuple(sorted({0, epochs} | {e for e in early | regular if 0 < e <= epochs}))


class SnapshotCallback:
    """Records snapshots at the scheduled epochs (and at an early-stop epoch) and hands them on.

    ``sink(epoch, model, {layer: values}, logits)`` receives each snapshot (logits: (n_probe,
    n_outputs) float32); the runner's sink writes Parquet files and checkpoints through the store,
    so this module never touches the disk.
    """

    def __init__(self, layers: Sequence[ProbeLayer], probe_x: torch.Tensor, *, epochs: Sequence[int],
                 reduction: str, batch_size: int,
                 sink: Callable[[int, nn.Module, dict[str, np.ndarray], np.ndarray], None]) -> None:
        self.layers = list(layers)
        self.probe_x = probe_x  # (n_probe, *in_shape), normalised, on the CPU
        self.epochs = set(epochs)
        self.reduction = reduction
        self.batch_size = batch_size
        self.sink = sink

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float], *, final: bool) -> None:
        if epoch not in self.epochs and not final:
            return
        device = next(model.parameters()).device
        batches = (self.probe_x[i:i + self.batch_size].to(device) for i in range(0, len(self.probe_x), self.batch_size))
        outputs: list[torch.Tensor] = []
        acts = record(model, batches, self.layers, self.reduction, outputs)
        self.sink(epoch, model, acts, torch.cat(outputs).numpy())
