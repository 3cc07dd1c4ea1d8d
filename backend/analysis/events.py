"""Training events per sample, from the predictions recorded at the snapshot epochs (SCIENCE.md section 7).

- **prediction flip**: the predicted class differs from the one at the previous *recorded* epoch;
- **forgetting event** (Toneva et al., ICLR 2019): correct at one recorded epoch, wrong at the next;
- **dataset cartography** (Swayamdipta et al., EMNLP 2020): confidence = mean over epochs of the
  true-class probability, variability = its standard deviation (population std, as the paper's code),
  correctness = the share of epochs predicted right.

Snapshots cover a subset of the epochs, so every number here is **counted over the recorded epochs
only**: a flip and its undoing between two snapshots are never seen. [P] The initialisation (epoch 0)
is left out by default (``include_init``): an untrained network's guesses are not events of training.

Pure functions: arrays in, arrays and DataFrames out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend.errors import ClusterScopeError

REGIONS = ("easy-to-learn", "ambiguous", "hard-to-learn", "unknown")


def _check(epochs: np.ndarray, *arrays: np.ndarray) -> None:
    for a in arrays:
        if a.ndim != 2 or a.shape != arrays[0].shape or a.shape[0] != len(epochs):
            raise ClusterScopeError(f"training events need arrays of shape (n_epochs={len(epochs)}, n_samples); "
                                    f"got {a.shape}.")
    if np.any(np.diff(epochs) <= 0):
        raise ClusterScopeError(f"training events need strictly increasing epochs; got {epochs.tolist()}.")


NEVER = np.iinfo(np.int64).max  # no flip (yet): the identity of the minimum over the transitions


def training_events(epochs: Sequence[int], prediction: np.ndarray, correct: np.ndarray, true_probability: np.ndarray,
                    *, include_init: bool = False) -> pd.DataFrame:
    """Per-sample events over the recorded epochs.

    epochs : (E,) increasing recorded epochs; prediction : (E, N) int; correct : (E, N) bool;
    true_probability : (E, N) float (NaN where the store lacks it: a version-2 run).

    Returns one row per sample (the columns' order of the inputs): ``flips`` (prediction flips),
    ``first_flip_epoch`` and ``last_flip_epoch`` (the epoch the new prediction first shows; -1 when none),
    ``forgetting`` (correct -> wrong transitions), ``first_learned_epoch`` (first correct epoch, -1 never),
    ``confidence``, ``variability``, ``correctness`` and ``n_epochs`` (the recorded epochs counted).
    """
    ep = np.asarray(epochs, dtype=np.int64)
    pred, ok, prob = np.asarray(prediction), np.asarray(correct, dtype=bool), np.asarray(true_probability, float)
    _check(ep, pred, ok, prob)
    keep = ep > 0 if not include_init else np.ones(len(ep), dtype=bool)
    ep, pred, ok, prob = ep[keep], pred[keep], ok[keep], prob[keep]
    n = pred.shape[1]
    flip = pred[1:] != pred[:-1]  # (E-1, N): flip into epoch ep[t+1]
    forget = ok[:-1] & ~ok[1:]
    later = ep[1:, None]
    with np.errstate(invalid="ignore"):
        conf = prob.mean(axis=0) if len(ep) else np.full(n, np.nan)
        var = prob.std(axis=0) if len(ep) else np.full(n, np.nan)
    return pd.DataFrame({
        "flips": flip.sum(axis=0).astype(np.int32),
        "first_flip_epoch": np.where(flip.any(axis=0), np.where(flip, later, NEVER).min(axis=0, initial=NEVER), -1),
        "last_flip_epoch": np.where(flip, later, -1).max(axis=0, initial=-1),
        "forgetting": forget.sum(axis=0).astype(np.int32),
        "first_learned_epoch": np.where(ok.any(axis=0), ep[np.argmax(ok, axis=0)] if len(ep) else -1, -1),
        "confidence": conf, "variability": var,
        "correctness": ok.mean(axis=0) if len(ep) else np.full(n, np.nan),
        "n_epochs": np.full(n, len(ep), dtype=np.int32),
    })


def cartography_regions(confidence: np.ndarray, variability: np.ndarray, *, ambiguous_quantile: float = 2 / 3,
                        confidence_threshold: float = 0.5) -> np.ndarray:
    """[P] Swayamdipta et al.'s three regions, with explicit thresholds (the paper reads them off its map):
    the samples whose variability is at or above its ``ambiguous_quantile`` (the top third by default) are
    *ambiguous*; of the rest, confidence >= ``confidence_threshold`` is *easy-to-learn*, below it
    *hard-to-learn*. NaN coordinates (a version-2 run) give *unknown*. Returns (N,) strings from REGIONS."""
    if not 0.0 < ambiguous_quantile < 1.0:
        raise ClusterScopeError(f"ambiguous_quantile must be in (0, 1); got {ambiguous_quantile}.")
    conf, var = np.asarray(confidence, float), np.asarray(variability, float)
    known = np.isfinite(conf) & np.isfinite(var)
    out = np.full(len(conf), "unknown", dtype=object)
    if not known.any():
        return out
    cut = np.quantile(var[known], ambiguous_quantile)
    out[known] = np.where(var[known] >= cut, "ambiguous",
                          np.where(conf[known] >= confidence_threshold, "easy-to-learn", "hard-to-learn"))
    return out


def flips_at(epochs: Sequence[int], prediction: np.ndarray, epoch: int) -> np.ndarray:
    """(N,) bool: whose prediction at recorded ``epoch`` differs from the previous recorded epoch's
    (all False at the first recorded epoch)."""
    ep = list(epochs)
    if epoch not in ep:
        raise ClusterScopeError(f"epoch {epoch} is not a recorded epoch; recorded: {ep}.")
    t = ep.index(epoch)
    pred = np.asarray(prediction)
    return np.zeros(pred.shape[1], dtype=bool) if t == 0 else pred[t] != pred[t - 1]
