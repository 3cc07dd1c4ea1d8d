"""Label schedules: which targets the training split is trained on at each epoch ([train.labels]).

Two interventions, both keyed on the fine labels (SynthClust clusters, the hidden subclasses):

- **random pre-training** (SCIENCE.md section 5, finding 9, "pre-training on randomly relabelled
  clusters"): for epochs 1 .. ``random_epochs`` every fine label is trained as one random target,
  drawn once from ``random_seed`` (uniform over the targets, so a cluster may keep its true class);
  afterwards the true targets;
- **a planted relabelling** (issue 17's check): from epoch ``relabel_from`` on, the training examples
  of the fine labels in ``relabel`` are trained as target ``relabel_to``.

Only the training split's targets change; evaluation, snapshots and predictions use the true targets.
Pure: numpy in, numpy out; the trainer asks for the targets of each epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.config import LabelScheduleConfig
from backend.errors import ConfigError


class LabelSchedule:
    """The training targets per epoch for one training split.

    fine : ndarray (n_train,) of fine labels; true : ndarray (n_train,) of the true targets.
    """

    def __init__(self, cfg: LabelScheduleConfig, *, fine: np.ndarray, true: np.ndarray, n_fine: int,
                 n_targets: int) -> None:
        bad = [v for v in cfg.relabel if v >= n_fine]
        if bad:
            raise ConfigError(f"train.labels.relabel names fine label(s) {bad}, but this data set's fine labels are "
                              f"0 .. {n_fine - 1}; use labels in that range.")
        if cfg.relabel and cfg.relabel_to >= n_targets:
            raise ConfigError(f"train.labels.relabel_to must be a target in [0, {n_targets - 1}]; got {cfg.relabel_to}.")
        self.cfg = cfg
        self.fine = np.asarray(fine, dtype=np.int64)
        self.true = np.asarray(true, dtype=np.int64)
        rng = np.random.default_rng(cfg.random_seed)
        self.random_targets = rng.integers(0, n_targets, size=n_fine) if cfg.random_epochs else None  # per fine label

    @property
    def active(self) -> bool:
        return bool(self.cfg.relabel) or self.cfg.random_epochs > 0

    def phase(self, epoch: int) -> tuple[bool, bool]:
        """(random, relabelled) in force during training epoch ``epoch`` (1-based)."""
        return (epoch <= self.cfg.random_epochs, bool(self.cfg.relabel) and epoch >= self.cfg.relabel_from)

    def targets(self, phase: tuple[bool, bool]) -> np.ndarray:
        """The (n_train,) int64 targets trained on in ``phase``: random ones first, the relabelling on top."""
        random, relabelled = phase
        y = self.random_targets[self.fine] if random and self.random_targets is not None else self.true.copy()
        if relabelled:
            y = np.where(np.isin(self.fine, self.cfg.relabel), self.cfg.relabel_to, y)
        return y.astype(np.int64)

    def record(self) -> dict[str, Any]:
        """run.json ``label_schedule``: what was trained on when (the random draw included)."""
        c = self.cfg
        return {"relabel": list(c.relabel), "relabel_to": c.relabel_to if c.relabel else None,
                "relabel_from": c.relabel_from if c.relabel else None, "random_epochs": c.random_epochs,
                "random_seed": c.random_seed,
                "random_targets": None if self.random_targets is None else [int(v) for v in self.random_targets],
                "evaluated_against": "true targets"}
