"""Read models for "what changed, and when" (issue 17, SCIENCE.md section 7): per-sample training events
from the stored predictions, and the stored neighbourhood change and cluster genealogy of a layer.

Training events are computed on read (decided: the predictions are a few small files per run, the
computation is a handful of vectorised passes, and a derived file would go stale when a run is resumed);
:func:`training_events` costs about one Parquet read per recorded epoch. :mod:`backend.api` re-exports these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.analysis.events import cartography_regions, flips_at
from backend.analysis.events import training_events as _events
from backend.errors import StoreError
from backend.store import RunStore


def prediction_history(store: RunStore, run_id: str) -> tuple[list[int], np.ndarray, dict[str, np.ndarray]]:
    """``(epochs, sample_ids, arrays)``: the recorded epochs with predictions, the probe's sample ids (N,) and
    ``prediction``, ``correct``, ``true_probability`` as (E, N) arrays, rows aligned on ``sample_ids``."""
    epochs = [e for e in store.run_info(run_id).recorded_epochs if store.predictions_path(run_id, e).is_file()]
    if not epochs:
        raise StoreError(f"run {run_id!r} has no recorded predictions yet; training events need at least one snapshot.")
    frames = [store.read_predictions(run_id, e).set_index("sample_id") for e in epochs]
    ids = frames[0].index.to_numpy(dtype=np.int64)
    cols = ("prediction", "correct", "true_probability")
    arrays = {c: np.stack([f[c].reindex(ids).to_numpy() for f in frames]) for c in cols}
    return epochs, ids, arrays


def training_events(store: RunStore, run_id: str) -> pd.DataFrame:
    """One row per probe sample: ``sample_id``, the events of :func:`backend.analysis.events.training_events`
    (counted over the recorded epochs, the initialisation left out) and ``region`` (cartography)."""
    epochs, ids, a = prediction_history(store, run_id)
    table = _events(epochs, a["prediction"], a["correct"].astype(bool), a["true_probability"].astype(float))
    table.insert(0, "sample_id", ids)
    table["region"] = cartography_regions(table["confidence"].to_numpy(), table["variability"].to_numpy())
    return table


def prediction_flips(store: RunStore, run_id: str, epoch: int) -> pd.DataFrame:
    """The samples whose prediction at recorded ``epoch`` differs from the previous recorded epoch's:
    ``sample_id``, ``previous_epoch``, ``previous``, ``prediction``, ``correct``."""
    epochs, ids, a = prediction_history(store, run_id)
    flipped = flips_at(epochs, a["prediction"], epoch)
    t = epochs.index(epoch)
    prev = a["prediction"][t - 1] if t else a["prediction"][t]
    return pd.DataFrame({"sample_id": ids[flipped], "previous_epoch": epochs[t - 1] if t else -1,
                         "previous": prev[flipped], "prediction": a["prediction"][t][flipped],
                         "correct": a["correct"][t][flipped].astype(bool)})


def neighbour_change(store: RunStore, run_id: str, layer: str, epoch: int) -> pd.DataFrame:
    """analysis/changes/<layer>/epoch=NNNN.parquet: ``sample_id``, ``previous_epoch``, ``neighbour_change`` per
    embedded probe sample; empty (same columns) at a layer's first recorded epoch or before `clusterscope analyze`."""
    if not store.analysis.path(run_id, "changes", layer, epoch).is_file():
        return pd.DataFrame({"sample_id": pd.Series(dtype="int64"), "previous_epoch": pd.Series(dtype="int32"),
                             "neighbour_change": pd.Series(dtype="float32")})
    return store.analysis.read(run_id, "changes", layer, epoch, columns=["sample_id", "previous_epoch", "neighbour_change"])
