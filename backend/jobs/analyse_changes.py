"""The run-level "what changed" step of `clusterscope analyze` (issue 17, SCIENCE.md section 7):
per layer, the neighbourhood change of every embedded probe sample between consecutive recorded epochs,
stored as ``analysis/changes/<layer>/epoch=NNNN.parquet`` (docs/store.md).

A file is redone when the analysis parameters that shape it, or the previous epoch it compares with,
changed (its hash covers both). Which neighbours (``analysis.change_space``, [P]):

- ``"pca"`` (default): each snapshot's neighbours in the analysis's own k-NN graph, the one UMAP, k-NN accuracy
  and TwoNN use (NN-descent on the first ``pca_components`` PCA components of the analysed matrix: approximate,
  exact below 4,096 samples; ``backend.analysis.embed.knn_graph``). The snapshot analysis stores them
  (``analysis/neighbours/``), so this step reads two small tables per pair and searches nothing: an epoch added
  later, or layers analysed as Ray tasks, find the earlier epoch's neighbours there.
- ``"full"``: an exact search (``backend.analysis.changes.knn_indices``) in the whole analysed matrix, each
  snapshot read again: the definition of SCIENCE.md 7 to the letter, at the cost of a search per epoch.

Both take the k = ``n_neighbors`` - 1 nearest other samples, over the samples the analysis embeds.
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
    ids = samples["sample_id"].to_numpy(np.int64)[keep]
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
                before = _neighbours(store, run_id, layer, prev, params, (keep, ids), ptag[1], cache)
                after = _neighbours(store, run_id, layer, epoch, params, (keep, ids), ptag[1], cache)
            except (ClusterScopeError, StoreError, ValueError) as exc:  # ValueError: snapshot.AnalysisError
                errors[f"{layer}@{epoch} changes"] = f"run {run_id!r}, layer {layer!r}, epoch {epoch}: neighbourhood change: {exc}"
                store.analysis.remove(run_id, TABLE, layer, epoch)
                continue
            frame = pd.DataFrame({"sample_id": ids, "previous_epoch": prev,
                                  "neighbour_change": neighbourhood_change(before, after).astype(np.float32)})
            store.analysis.write(run_id, TABLE, frame, params=ptag[0], params_hash=tag, layer=layer, epoch=epoch)
            cache.pop(prev, None)  # each epoch's neighbours serve two pairs at most


def _neighbours(store: RunStore, run_id: str, layer: str, epoch: int, a: AnalysisConfig,
                rows: tuple[np.ndarray, np.ndarray], phash: str, cache: dict[int, Any]) -> np.ndarray:
    """The sample ids of each embedded sample's k = n_neighbors - 1 nearest others at ``epoch``: (n, k), one row
    per embedded sample. rows : (the embedded samples' row indices in samples.parquet, their sample ids)."""
    if epoch not in cache:
        keep, ids = rows
        cache[epoch] = _stored(store, run_id, layer, epoch, ids, phash) if a.change_space == "pca" \
            else ids[knn_indices(_full_space(store, run_id, layer, epoch, a, keep), k=a.n_neighbors - 1, metric=a.metric)]
    return cache[epoch]


def _stored(store: RunStore, run_id: str, layer: str, epoch: int, ids: np.ndarray, phash: str) -> np.ndarray:
    """The neighbours the snapshot analysis stored from its graph (analysis/neighbours/), checked to be of this
    analysis (parameters' hash) and of these samples."""
    if store.analysis.params_hash(run_id, "neighbours", layer, epoch) != phash:
        raise StoreError(f"analysis/neighbours of epoch {epoch} is missing or from other analysis parameters; "
                         f"run `clusterscope analyze {run_id}` again.")
    table = store.analysis.read(run_id, "neighbours", layer, epoch, columns=["sample_id", "neighbours"])
    if not np.array_equal(table["sample_id"].to_numpy(np.int64), ids):
        raise StoreError(f"analysis/neighbours of epoch {epoch} holds other samples than the analysis embeds; "
                         f"run `clusterscope analyze {run_id}` again.")
    return np.stack(table["neighbours"].to_list()).astype(np.int64)


def _full_space(store: RunStore, run_id: str, layer: str, epoch: int, a: AnalysisConfig, keep: np.ndarray) -> np.ndarray:
    """The whole analysed matrix of the embedded samples (``change_space = "full"``), read again from the snapshot."""
    from backend.analysis.snapshot import check_snapshot, representation

    _, values = store.read_activations(run_id, layer, epoch)
    check_snapshot(values[keep], n_neighbors=a.n_neighbors)
    return representation(values[keep], a)
