"""Pipeline stage: c0 and the sharpness baselines of a run, from its checkpoints and training data.

Writes ``analysis/baselines.parquet`` (one row per epoch: the last checkpoint epoch, or every one
with ``analysis.baselines_over_training``) through the store. The file carries the hash of the
baseline parameters and of the epochs it covers, so a re-analysis redoes it only when those change;
changing a baseline parameter never redoes the snapshots (see :data:`BASELINE_KEYS`). A failure
(data set or checkpoint unreadable, a forward pass that fails) becomes one entry of the analysis
report, not a crash of the analysis. Definitions: :mod:`backend.analysis.baselines`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from backend import schema
from backend.config import AnalysisConfig
from backend.errors import ClusterScopeError
from backend.store import RunStore

# The [analysis] keys that only the baselines use: left out of the snapshots' parameter hash.
BASELINE_KEYS = ("baselines", "baselines_over_training", "c0_pairs", "sharpness_samples", "sharpness_draws",
                 "sharpness_steps", "sharpness_ascent_steps", "sharpness_target")
BASELINES_VERSION = 1  # bump when a code change changes the values: stored files are then redone
POOL = 10_000  # [P] training samples (seeded draw) held in memory; every subset and pair is drawn from them
SHARPNESS = {  # column -> (perturbation, kernels only and batch statistics)
    "sigma_prime": ("random", False), "sigma_dprime": ("random", True),
    "alpha_prime": ("worstcase", False), "alpha_dprime": ("worstcase", True),
}

SMALL_MODEL = 1_000_000  # parameters

Progress = Callable[[int, int, str], None]


def baseline_params(a: AnalysisConfig, info: dict[str, Any], epochs: list[int]) -> tuple[str, str]:
    """JSON of what shapes the baselines, and its hash (the epochs covered included)."""
    p = {k: getattr(a, k) for k in BASELINE_KEYS} | {"seed": a.seed, "version": BASELINES_VERSION,
                                                     "target": (info.get("dataset") or {}).get("target"),
                                                     "epochs": epochs}
    text = json.dumps(p, sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()[:16]


def run_baselines(store: RunStore, run_id: str, info: dict[str, Any], a: AnalysisConfig, errors: dict[str, str], *,
                  progress: Progress | None = None) -> None:
    """Compute and store the baselines when missing or stale; failures go into ``errors["baselines"]``."""
    epochs = store.checkpoint_epochs(run_id)
    if not a.baselines or not epochs:  # no checkpoints (snapshots.checkpoints = false): nothing to measure
        return
    chosen = epochs if a.baselines_over_training else epochs[-1:]
    text, phash = baseline_params(a, info, chosen)
    if store.analysis.params_hash(run_id, "baselines") == phash:
        return
    try:
        model, inputs = _model_and_data(info, a.seed)
        rows = []
        with _threads(model):
            for i, epoch in enumerate(chosen):
                model.load_state_dict(store.load_checkpoint(run_id, epoch))
                rows.append(baselines_row(model, inputs, a, epoch=epoch, progress=progress, step=(i, len(chosen))))
    except (ClusterScopeError, RuntimeError, ValueError) as exc:
        errors["baselines"] = f"run {run_id!r}: c0 and the sharpness baselines failed ({type(exc).__name__}: {exc})"
        store.analysis.remove(run_id, "baselines")  # values of other parameters would mislead
        return
    store.analysis.write(run_id, "baselines", pd.DataFrame(rows, columns=schema.BASELINES_SCHEMA.names),
                         params=text, params_hash=phash)


@contextmanager
def _threads(model: Any) -> Iterator[None]:
    """One torch thread for small models (< SMALL_MODEL parameters), restored afterwards: their forward passes
    are too short to share, and on a busy 2-core machine two threads made the digits baselines 20x slower."""
    import torch

    before = torch.get_num_threads()
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _model_and_data(info: dict[str, Any], seed: int) -> tuple[Any, dict[str, Any]]:
    """The run's model (CPU, weights still to load) and a seeded pool of its normalised training data."""
    from backend.config import RunConfig, from_dict
    from backend.data import load_dataset
    from backend.training.models import build_model
    from backend.training.trainer import to_tensor_data

    cfg = from_dict(RunConfig, info.get("config") or {})
    data = load_dataset(cfg.data)
    target = cfg.data.target
    model = build_model(cfg.model, data.input_shape, data.num_targets(target), seed=cfg.train.seed)
    n = len(data.train)
    idx = np.sort(np.random.default_rng(seed).choice(n, min(n, POOL), replace=False))
    split = data.train.subset(idx)
    tensors = to_tensor_data(split.x, data.targets(split, target), data.mean, data.std)
    hierarchical = target == "superclass" and data.has_superclasses
    return model, {"x": tensors.x, "y": tensors.y, "fine": split.label, "hierarchical": hierarchical,
                   "batch_size": cfg.train.batch_size}


def baselines_row(model: Any, inputs: dict[str, Any], a: AnalysisConfig, *, epoch: int,
                  progress: Progress | None = None, step: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """One row of BASELINES_SCHEMA for the model's current weights; see the module docstring."""
    from backend.analysis import baselines as b

    start = time.perf_counter()
    x, y, bs = inputs["x"], inputs["y"], inputs["batch_size"]
    row: dict[str, Any] = {"epoch": epoch}
    reasons = []
    done, total = step[0] * 5, step[1] * 5
    if progress:
        progress(done, total, f"baselines @ epoch {epoch}: c0")
    if inputs["hierarchical"]:
        row["c0"], ratios = b.c0(model, x, superclass=y.numpy(), subclass=inputs["fine"], pairs=a.c0_pairs, seed=a.seed)
        row["c0_subclasses"] = int(np.isfinite(ratios).sum())
    else:
        row |= {"c0": float("nan"), "c0_subclasses": 0}
        reasons.append("c0 needs hierarchical labels: a data set with superclasses, trained on them (data.target=superclass)")
    for k, (name, (kind, double)) in enumerate(SHARPNESS.items(), start=1):
        if progress:
            progress(done + k, total, f"baselines @ epoch {epoch}: {name}")
        common: dict[str, Any] = {"kernels_only": double, "batch_stats": double, "samples": a.sharpness_samples,
                  "steps": a.sharpness_steps, "seed": a.seed + k, "target": a.sharpness_target}
        if kind == "random":
            s = b.sharpness_random(model, x, y, draws=a.sharpness_draws, batch_size=bs, **common)
        else:
            s = b.sharpness_worstcase(model, x, y, ascent_steps=a.sharpness_ascent_steps, ascent_batch=bs, **common)
        row[name], row[f"{name}_accuracy"] = s.scale, s.accuracy
        if s.reason:
            reasons.append(f"{name}: {s.reason}")
    if progress:
        progress(done + 5, total, f"baselines @ epoch {epoch}: done")
    return row | {"reason": "; ".join(dict.fromkeys(reasons)), "seconds": time.perf_counter() - start}
