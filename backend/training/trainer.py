"""The training loop. It knows nothing about files: callbacks record snapshots and save state.

Determinism (CPU): the model is initialised on the CPU from ``train.seed``; at every epoch the
shuffling, the augmentation and every dropout mask are drawn from CPU generators reseeded from
``(seed, epoch)``, and the learning rate is a function of the epoch. The same seed therefore gives
bit-identical runs on the same machine, software versions and thread count, and a resumed run
repeats the uninterrupted one exactly. On a GPU the same data order, augmentation and dropout masks
are used; only floating-point rounding differs (cuDNN is put in deterministic mode).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.config import TrainConfig
from backend.errors import ConfigError
from backend.training.models import Dropout


class Schedule(Protocol):
    """The training targets per epoch (:class:`backend.training.labels.LabelSchedule`)."""

    def phase(self, epoch: int) -> Any: ...
    def targets(self, phase: Any) -> np.ndarray: ...


class Callback(Protocol):
    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float], *, final: bool) -> None: ...


class BatchCallback(Protocol):
    """Optional: called before every optimizer step; ``step`` counts the steps already taken in the run."""

    def on_batch_start(self, step: int, epoch: int, model: nn.Module) -> None: ...


@dataclass(frozen=True)
class TensorData:
    """Normalised inputs and integer targets of one split, on the CPU or on the device."""

    x: torch.Tensor  # (N, *in_shape) float32, normalised
    y: torch.Tensor  # (N,) int64 targets (fine labels or superclasses)
    pad_fill: torch.Tensor | None = None  # (C,) normalised value of a black pixel, for crop padding

    def __len__(self) -> int:
        return int(self.y.shape[0])


def to_tensor_data(x: np.ndarray, y: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> TensorData:
    """uint8 images (N, C, H, W) -> normalised float32; float vectors (N, D) pass through."""
    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    if xt.dtype != torch.uint8:
        return TensorData(xt.float(), yt)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return TensorData((xt.float() / 255.0 - m) / s, yt, (-m / s).view(-1))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; anything else must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but no CUDA GPU is available here; use train.device=\"auto\" or \"cpu\".")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device is 'mps' but Apple MPS is not available here; use train.device=\"auto\" or \"cpu\".")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate during ``epoch`` (1-based): multiplied by lr_factor after each epoch in lr_steps."""
    return cfg.lr * cfg.lr_factor ** sum(1 for s in cfg.lr_steps if s < epoch)


def augment(x: torch.Tensor, gen: torch.Generator, pad_fill: torch.Tensor | None) -> torch.Tensor:
    """Per-sample random shifts (crop of a padded image) and, for colour images, horizontal flips.

    Padding is H//8 pixels (1 for 8x8 digits, 4 for 32x32), filled with black. x : (B, C, H, W).
    """
    if x.dim() != 4:
        raise ConfigError("train.augment is for image data sets only; set train.augment=false.")
    b, c, h, w = x.shape
    p = max(1, h // 8)
    fill = pad_fill.to(x.device).view(1, c, 1, 1) if pad_fill is not None else 0.0
    padded = F.pad(x - fill, (p, p, p, p)) + fill  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)).to(x.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(w)).to(x.device)  # (B, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if c == 3:
        flip = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
        out = torch.where(flip, out.flip(-1), out)
    return out.contiguous()


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer.startswith("layca-"):
        from backend.training.layca import Layca

        return Layca.for_model(model, base=cfg.optimizer.removeprefix("layca-"), lr=cfg.lr, alpha=cfg.layca_alpha,
                               momentum=cfg.momentum)
    groups = decay_groups(model, cfg.weight_decay, cfg.weight_decay_style)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(groups, lr=cfg.lr)


def decay_groups(model: nn.Module, weight_decay: float, style: str) -> list[dict[str, Any]]:
    """Parameter groups with their weight decay (an L2 term in the gradient, before momentum or Adam).

    ``torch``: ``weight_decay * w`` on every parameter, biases and batch norm included (PyTorch's
    convention). ``keras_l2``: ``2 * weight_decay * w`` on conv and linear kernels only, nothing on the
    rest: the gradient of Keras's ``kernel_regularizer=l2(weight_decay)``, which the thesis used, so its
    weight-decay values (SCIENCE.md section 4, e.g. 4e-5) mean here what they meant there.
    """
    if style == "torch":
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    from backend.training.layca import kernels as kernels_of

    kernel_ids = {id(p) for _, p in kernels_of(model)}  # conv and linear weights, as layer rotation counts them
    kernels = [p for p in model.parameters() if id(p) in kernel_ids]
    others = [p for p in model.parameters() if id(p) not in kernel_ids]
    return [g for g in ({"params": kernels, "weight_decay": 2.0 * weight_decay}, {"params": others, "weight_decay": 0.0})
            if g["params"]]


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData, device: torch.device, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode on ``data``."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(data), batch_size):
        xb, yb = data.x[i:i + batch_size].to(device), data.y[i:i + batch_size].to(device)
        out = model(xb)
        loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(len(data), 1)
    return loss_sum / n, correct / n


class Trainer:
    """Trains ``model`` on ``train`` and evaluates on ``test``, calling ``callbacks`` after each epoch.

    Epoch 0 is the initialisation: both splits evaluated in eval mode. For epochs >= 1 the train
    row holds the running mean loss and accuracy of the epoch's mini-batches (with augmentation and
    dropout, as in Keras and the thesis); the test row is a full eval-mode pass.
    """

    def __init__(self, model: nn.Module, train: TensorData, test: TensorData, cfg: TrainConfig, *,
                 device: torch.device, callbacks: Sequence[Callback] = (), labels: Schedule | None = None) -> None:
        if device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.model = model.to(device)
        self.cfg = cfg
        self.device = device
        self.train_data = train
        self.test_data = test
        self.callbacks = list(callbacks)
        self.batch_callbacks = [cb for cb in self.callbacks if hasattr(cb, "on_batch_start")]
        self.optimizer = make_optimizer(self.model, cfg)
        self.epoch = 0
        self.stopped_early = False
        self.nonfinite_epochs = 0  # epochs in a row whose train or test loss was NaN or infinite
        self.diverged = False  # set once they exceed cfg.divergence_patience: training stops
        self.resumed = False  # set by load_state_dict: epoch 0 (the initialisation) is then already recorded
        # Small data sets live on the device once; larger ones travel one batch at a time.
        on_device = device.type != "cpu" and train.x.numel() * 4 < 2 * 1024**3
        self._x = train.x.to(device) if on_device else train.x
        self._y = train.y.to(device) if on_device else train.y
        self.labels = labels  # None: train on train.y at every epoch
        self._phase: Any = None
        self._y_phase = self._y

    def _train_targets(self, epoch: int) -> torch.Tensor:
        """The targets trained on during ``epoch``: ``train.y`` unless a label schedule says otherwise."""
        if self.labels is None:
            return self._y
        phase = self.labels.phase(epoch)
        if phase != self._phase:
            self._phase = phase
            self._y_phase = torch.from_numpy(self.labels.targets(phase)).to(self._y.device)
        return self._y_phase

    # ------------------------------------------------------------ state for resuming
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "stopped_early": self.stopped_early, "nonfinite_epochs": self.nonfinite_epochs,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.stopped_early = bool(state.get("stopped_early", False))
        self.nonfinite_epochs = int(state.get("nonfinite_epochs", 0))
        self.resumed = True

    # ------------------------------------------------------------ loop
    def fit(self) -> None:
        """Train from ``self.epoch`` to ``cfg.epochs``, until the early stop, or until the loss has been
        non-finite for more than ``cfg.divergence_patience`` epochs in a row (``self.diverged``).

        A fresh trainer first evaluates the initialisation as epoch 0; a resumed one (even from a
        state saved at epoch 0) does not, so a resume never records epoch 0 twice.
        """
        if not self.resumed:
            train_loss, train_acc = evaluate(self.model, self.train_data, self.device)
            test_loss, test_acc = evaluate(self.model, self.test_data, self.device)
            self._end_epoch(0, train_loss, train_acc, test_loss, test_acc, final=False)
        while self.epoch < self.cfg.epochs and not self.stopped_early and not self.diverged:
            epoch = self.epoch + 1
            train_loss, train_acc = self.train_epoch(epoch)
            test_loss, test_acc = evaluate(self.model, self.test_data, self.device)
            self.stopped_early = 0 < train_loss < self.cfg.early_stop_loss
            finite = math.isfinite(train_loss) and math.isfinite(test_loss)
            self.nonfinite_epochs = 0 if finite else self.nonfinite_epochs + 1
            self.diverged = self.nonfinite_epochs > self.cfg.divergence_patience
            final = epoch == self.cfg.epochs or self.stopped_early or self.diverged
            self._end_epoch(epoch, train_loss, train_acc, test_loss, test_acc, final=final)

    def _end_epoch(self, epoch: int, train_loss: float, train_acc: float, test_loss: float, test_acc: float,
                   *, final: bool) -> None:
        self.epoch = epoch
        metrics = {"epoch": epoch, "lr": lr_at(self.cfg, max(epoch, 1)), "train_loss": train_loss,
                   "train_accuracy": train_acc, "test_loss": test_loss, "test_accuracy": test_acc}
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, self.model, metrics, final=final)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(cfg, epoch)
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        for k, m in enumerate(m for m in self.model.modules() if isinstance(m, Dropout)):
            m.generator.manual_seed(epoch_seed(cfg.seed, epoch, k + 1))
        n = len(self.train_data)
        perm = torch.randperm(n, generator=gen).to(self._x.device)
        y_all = self._train_targets(epoch)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        first_step = (epoch - 1) * -(-n // cfg.batch_size)  # steps taken before this epoch
        for i in range(0, n, cfg.batch_size):
            for cb in self.batch_callbacks:
                cb.on_batch_start(first_step + i // cfg.batch_size, epoch, self.model)
            idx = perm[i:i + cfg.batch_size]
            xb, yb = self._x[idx], y_all[idx]
            if cfg.augment:
                xb = augment(xb, gen, self.train_data.pad_fill)
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            out = self.model(xb)
            loss = F.cross_entropy(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(yb)  # kept on the device: no sync per batch
            correct += (out.detach().argmax(1) == yb).sum()
        return float(loss_sum) / n, int(correct) / n
