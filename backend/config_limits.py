"""The allowed range of every numeric configuration value (docs/config.md, section "Ranges").

Every int and float key of the run configuration has an entry here, and a test keeps it so: a
value outside its range (a seed of 2**64, ``model.width=1e12``, ``train.lr=inf``) is refused before
anything is built, with the house message (key, allowed range, value received, what to do) instead
of an overflow or an out-of-memory traceback later. :mod:`backend.config` applies these bounds
first; its own rules (open intervals, cross-key rules) then refine them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from backend.errors import ConfigError

SEED = (0, 2**32 - 1)  # numpy, torch and scikit-learn all accept this range
EPOCH_MAX = 100_000
BIG = 10_000_000

LIMITS: dict[str, tuple[float, float]] = {
    "data.image_size": (4, 512), "data.channels": (1, 3), "data.test_fraction": (0.0, 1.0),
    "data.synthclust.dim": (1, 100_000), "data.synthclust.classes": (2, 1000),
    "data.synthclust.clusters_per_class": (1, 1000), "data.synthclust.active_per_centroid": (1, 100_000),
    "data.synthclust.train_per_cluster": (1, 1_000_000), "data.synthclust.test_per_cluster": (1, 1_000_000),
    "data.synthclust.noise": (0.0, 1e6), "data.synthclust.test_noise": (0.0, 1e6), "data.synthclust.seed": SEED,
    "data.train_per_label": (0, BIG), "data.subset_seed": SEED,
    "model.depth": (1, 1000), "model.width": (1, 65_536), "model.stages": (1, 6), "model.convs_per_stage": (1, 64),
    "model.width_factor": (1e-3, 64.0), "model.dropout": (0.0, 1.0), "model.input_dropout": (0.0, 1.0),
    "train.lr": (0.0, 100.0), "train.momentum": (0.0, 1.0), "train.weight_decay": (0.0, 10.0),
    "train.batch_size": (1, 1_048_576), "train.epochs": (1, EPOCH_MAX), "train.lr_factor": (0.0, 1000.0),
    "train.early_stop_loss": (0.0, 1000.0), "train.divergence_patience": (0, EPOCH_MAX), "train.seed": SEED,
    "train.layca_alpha": (-1.0, 1.0), "train.labels.relabel_to": (0, BIG), "train.labels.relabel_from": (1, EPOCH_MAX),
    "train.labels.random_epochs": (0, EPOCH_MAX), "train.labels.random_seed": SEED,
    "snapshots.probe_train": (0, BIG), "snapshots.probe_test": (0, BIG), "snapshots.probe_seed": SEED,
    "snapshots.batch_size": (1, 1_048_576),
    "dynamics.every": (1, 1_000_000_000), "dynamics.probe_size": (1, 1_000_000), "dynamics.probe_seed": SEED,
    "dynamics.units": (0, 1_000_000),
    "analysis.pca_components": (2, 10_000), "analysis.n_neighbors": (2, 1000), "analysis.min_dist": (0.0, 1.0),
    "analysis.umap_epochs": (10, 100_000), "analysis.cluster_dims": (2, 1000), "analysis.cluster_epochs": (0, 100_000),
    "analysis.min_cluster_size": (0, BIG), "analysis.min_samples": (1, BIG), "analysis.trust_k": (1, 1000),
    "analysis.trust_samples": (10, BIG), "analysis.hap_quantile": (0.5, 1.0), "analysis.k_c1": (1, BIG),
    "analysis.k_c3": (1, BIG), "analysis.k_c2": (0, 10_000), "analysis.k_c4": (0, 10_000),
    "analysis.layer_top_k": (1, BIG), "analysis.c4_max_per_class": (2, BIG), "analysis.max_samples": (10, BIG),
    "analysis.seed": SEED, "analysis.cka_batch": (0, 1_000_000), "analysis.cka_max_samples": (0, BIG),
    "analysis.cka_max_epochs": (0, 100_000), "analysis.c0_pairs": (1, 100_000), "analysis.sharpness_samples": (10, BIG),
    "analysis.sharpness_draws": (1, 1000), "analysis.sharpness_steps": (1, 64), "analysis.sharpness_ascent_steps": (1, 100_000),
    "analysis.sharpness_target": (0.0, 1.0),
}
HINTS = {
    "train.lr": "Typical values are 0.01 to 0.1 for sgd, 1e-4 to 1e-3 for adam.",
    "train.epochs": "The thesis trains for at most a few hundred epochs.",
    "model.width": "Hidden layers of a few hundred units are typical; this many would not fit in memory.",
}


def numeric_keys(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the int and float fields of a config dataclass and its sections."""
    keys = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[operator]
        if dataclasses.is_dataclass(default):
            keys += numeric_keys(type(default), f"{prefix}{f.name}.")
        elif f.type in ("int", "float", int, float):
            keys.append(prefix + f.name)
    return keys


def check_limits(cfg: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first numeric value of ``cfg`` outside its range (or not finite)."""
    for key in numeric_keys(type(cfg), prefix):
        value: Any = cfg
        for part in key.removeprefix(prefix).split("."):
            value = getattr(value, part)
        lo, hi = LIMITS[key]
        kind = "an integer" if isinstance(value, int) else "a finite number"
        if not (math.isfinite(value) and lo <= value <= hi):
            hint = HINTS.get(key, "Choose a value in that range (docs/config.md lists every range).")
            raise ConfigError(f"{key} must be {kind} in [{_num(lo)}, {_num(hi)}]; got {value!r}. {hint}")


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"
