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


def cluster_genealogy(store: RunStore, run_id: str, *, layer: str | None = None, epoch: int | None = None,
                      across: str = "epochs", threshold: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cluster genealogy (:func:`backend.analysis.genealogy.genealogy`) of ``layer`` over its analysed epochs
    (``across="epochs"``), or of the analysed layers in forward order at ``epoch`` (``across="layers"``).

    Returns (nodes, links, points); points (``stage``, ``sample_id``, ``cluster``) lets a caller list a node's samples
    (:func:`backend.analysis.genealogy.cluster_members`). Stages without analysed points are left out.
    """
    from backend.analysis.genealogy import genealogy
    from backend.analysis.labels import probe_labels

    if across not in ("epochs", "layers") or (across == "epochs" and layer is None) or (across == "layers" and epoch is None):
        raise StoreError(f"a genealogy runs across 'epochs' of a layer or across 'layers' at an epoch; got across={across!r}, "
                         f"layer={layer!r}, epoch={epoch!r}.")
    info = store.run_info(run_id)
    snaps = store.snapshots(run_id)
    if across == "epochs":
        pairs = [(layer, int(e)) for e in sorted(snaps.loc[snaps["layer"] == layer, "epoch"])]
    else:
        pairs = [(lay, int(epoch or 0)) for lay in info.layers if ((snaps["layer"] == lay) & (snaps["epoch"] == epoch)).any()]
    frames = []
    for lay, e in pairs:
        if store.analysis.path(run_id, "points", lay, e).is_file():
            pts = store.analysis.read(run_id, "points", lay, e, columns=["sample_id", "cluster"])
            frames.append(pts.assign(stage=e if across == "epochs" else lay))
    if not frames:
        raise StoreError(f"run {run_id!r} has no analysed clusters for this genealogy; run `clusterscope analyze {run_id}`.")
    points = pd.concat(frames, ignore_index=True)
    samples = store.read_samples(run_id, columns=["sample_id", "split", "label", "superclass"])
    lab = probe_labels(samples, info.raw)
    labels = pd.DataFrame({"sample_id": samples["sample_id"], "class": lab.classes,
                           "subclass": lab.subclass if lab.subclass is not None else -1})
    ds = info.dataset
    names = list(ds.get("label_names") or [])
    sup = ds.get("superclass_names")
    class_names = dict(enumerate(sup if lab.subclass is not None and sup else names))
    stages = list(dict.fromkeys(points["stage"]))
    nodes, links = genealogy(stages, points, labels, threshold=threshold, class_names=class_names,
                             subclass_names=dict(enumerate(names)) if lab.subclass is not None else None)
    return nodes, links, points
