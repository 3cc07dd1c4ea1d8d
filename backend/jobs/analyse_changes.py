"""The run-level "what changed" step of `clusterscope analyze` (issue 17, SCIENCE.md section 7):
per layer, the neighbourhood change of every embedded probe sample between consecutive recorded epochs,
stored as ``analysis/changes/<layer>/epoch=NNNN.parquet`` (docs/store.md).

A file is redone when the analysis parameters that shape it, or the previous epoch it compares with,
changed (its hash covers both). The neighbours of each epoch are searched once per layer (exactly), in
the space of the analysis's neighbour graph (``analysis.change_space = "pca"``: its first ``pca_components`` PCA
components of the analysed matrix) or in the full analysed matrix (``"full"``), over the samples the analysis embeds.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from backend.analysis.changes import knn_indices, neighbourhood_change
from backend.config import AnalysisConfig
from backend.errors import ClusterScopeError, StoreError
from backend.store import RunStore

TABLE = "changes"
CHANGE_KEYS = ("change_space",)  # only the changes depend on these: left out of the snapshots' hash (analyse.params_of)


def _tag(phash: str, previous: int, a: AnalysisConfig) -> str:
    own = ",".join(f"{k}={getattr(a, k)}" for k in CHANGE_KEYS)
    return hashlib.sha256(f"{phash}:{previous}:{own}".encode()).hexdigest()[:16]


def run_changes(store: RunStore, run_id: str, params: AnalysisConfig, ptag: tuple[str, str],
                errors: dict[str, str]) -> None:
    """Write the neighbourhood change of every (layer, epoch) with a previous recorded epoch that is missing
    or stale, over the probe samples the analysis embeds (``analysis.max_samples``). A pair with a snapshot that
    failed its analysis (in ``errors`` as "layer@epoch") is skipped; other failures go to ``errors``."""
    from backend.analysis.labels import probe_labels
    from backend.data import stratified_indices

    samples = store.read_samples(run_id, columns=["sample_id", "split", "label", "superclass"])
    keep = stratified_indices(probe_labels(samples, store.read_run(run_id)).fine, params.max_samples, seed=params.seed)
    ids = samples["sample_id"].to_numpy()[keep]
    snaps = store.snapshots(run_id)
    for layer in sorted(set(snaps["layer"])):
        epochs = sorted(int(e) for e in snaps.loc[snaps["layer"] == layer, "epoch"])
        cache: dict[int, np.ndarray | None] = {}
        for prev, epoch in zip(epochs, epochs[1:], strict=False):
            tag = _tag(ptag[1], prev, params)
            if f"{layer}@{prev}" in errors or f"{layer}@{epoch}" in errors:  # reported once, as the snapshot's error
                store.analysis.remove(run_id, TABLE, layer, epoch)
                continue
            if store.analysis.params_hash(run_id, TABLE, layer, epoch) == tag:
                continue
            try:
                before = _neighbours(store, run_id, layer, prev, params, keep, cache)
                after = _neighbours(store, run_id, layer, epoch, params, keep, cache)
            except (ClusterScopeError, StoreError, ValueError) as exc:  # ValueError: snapshot.AnalysisError
                errors[f"{layer}@{epoch} changes"] = f"run {run_id!r}, layer {layer!r}, epoch {epoch}: neighbourhood change: {exc}"
                store.analysis.remove(run_id, TABLE, layer, epoch)
                continue
            frame = pd.DataFrame({"sample_id": ids, "previous_epoch": prev,
                                  "neighbour_change": neighbourhood_change(before, after).astype(np.float32)})
            store.analysis.write(run_id, TABLE, frame, params=ptag[0], params_hash=tag, layer=layer, epoch=epoch)
            cache.pop(prev, None)  # each epoch's neighbours serve two pairs at most


def _neighbours(store: RunStore, run_id: str, layer: str, epoch: int, a: AnalysisConfig, keep: np.ndarray,
                cache: dict[int, Any]) -> np.ndarray:
    from backend.analysis.snapshot import check_snapshot, representation

    if epoch not in cache:
        _, values = store.read_activations(run_id, layer, epoch)
        check_snapshot(values[keep], n_neighbors=a.n_neighbors)
        x = representation(values[keep], a)
        if a.change_space == "pca":  # the space of the analysis's own neighbour graph (backend.analysis.snapshot)
            from backend.analysis.embed import pca_reduce

            x = pca_reduce(x, n_components=a.pca_components, seed=a.seed)
        cache[epoch] = knn_indices(x, k=a.n_neighbors, metric=a.metric)
    return cache[epoch]
