"""The run-level part of the representation geometry (SCIENCE.md 7): linear CKA between every two layers
at each epoch and between every two epochs of each layer, written to ``analysis/cka.parquet``; the
network's predictions aligned with a snapshot's rows, for NC4 (:func:`snapshot_predictions`); and the
classifier's weights for NC3 of the layer that feeds it (:func:`classifier_weights`).

The per-snapshot measures (neural collapse, k-NN accuracy, probe, TwoNN) are computed with the rest of a
snapshot (backend.analysis.snapshot, step 8). CKA compares snapshots, so it runs once per run, after them:
on a stratified subset of the snapshots' samples (at most ``analysis.cka_max_samples`` [P], ``analysis.seed``:
its pairs grow as E·L(L−1)/2 + L·E(E−1)/2 with the run, so each pair is kept cheap), on X as SCIENCE.md 7
defines it (post-ReLU unless ``analysis.input = "pre"``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from backend import schema
from backend.config import AnalysisConfig
from backend.errors import StoreError
from backend.store import RunInfo, RunStore


def snapshot_predictions(store: RunStore, run_id: str, epoch: int, sample_ids: np.ndarray) -> np.ndarray | None:
    """The predicted class of each of ``sample_ids`` at ``epoch`` (predictions/epoch=NNNN.parquet), or None
    when the file is absent, unreadable or lacks one of the samples (NC4 is then NaN)."""
    try:
        table = store.read_predictions(run_id, epoch)
    except StoreError:
        return None
    pred = pd.Series(table["prediction"].to_numpy(np.int64), index=table["sample_id"].to_numpy(np.int64))
    ids = np.asarray(sample_ids, np.int64)
    if not np.isin(ids, pred.index).all():
        return None
    return pred.loc[ids].to_numpy()


CLASSIFIER_KEY = "classifier.weight"  # the final nn.Linear of ClusterScope's models (backend/training/models.py)


def classifier_input_layer(info: RunInfo) -> str | None:
    """The probe layer (backend.training.snapshots) whose values feed the final linear classifier of the run's
    model, from its config: mlp ``fc<depth>.relu``, vgg ``conv<stages>_<convs_per_stage>.relu`` (then global max
    pooling), resnet ``stage3.block<n>.relu2`` (then global average pooling); None for any other model (a
    torchvision model, or an import whose architecture is not one of ours): its classifier is not identified."""
    m = info.section("model")
    name = info.model_name or m.get("name")
    try:
        if name == "mlp":
            return f"fc{int(m['depth'])}.relu"
        if name == "vgg":
            return f"conv{int(m['stages'])}_{int(m['convs_per_stage'])}.relu"
        if name == "resnet":
            return f"stage3.block{(int(m['depth']) - 2) // 6}.relu2"
    except (KeyError, TypeError, ValueError):
        return None
    return None


def classifier_input_mismatch(info: RunInfo, analysis_input: str) -> str:
    """"" when X as the analysis takes it from the layer that feeds the classifier (the recorded pre-activations x,
    pooled per channel by ``snapshots.reduction`` for conv layers, then max(x, 0) unless ``analysis.input = "pre"``)
    is exactly what the classifier receives (backend/training/models.py, in eval mode: dropout off); else why NC3
    cannot be measured on it: what the classifier receives, what was recorded, and the setting that would match.
    Without that equality NC3 compares the weights with other features and cannot reach 0 under full collapse.

    mlp: max(x, 0), or x with ``model.activation = "linear"``; vgg: the global max over the feature map of max(x, 0),
    equal to max(max(x), 0) (ReLU is monotone), so ``snapshots.reduction = "max"`` with post-ReLU; resnet: the
    global average of max(x, 0), which neither max(x) nor mean(x) recovers (a ReLU does not commute with a mean).
    """
    m = info.section("model")
    name = info.model_name or m.get("name")
    post = analysis_input == "post_relu"
    if name == "mlp":
        linear = m.get("activation", "relu") == "linear"
        if linear != post:
            return ""
        gets = "its values x unchanged (model.activation = \"linear\": no ReLU)" if linear else "max(x, 0) (ReLU)"
        took = "max(x, 0)" if post else "x"
        fix = "analysis.input = \"pre\"" if linear else "analysis.input = \"post_relu\""
        return (f"the classifier receives the last hidden layer's {gets} but the analysis takes {took} "
                f"(analysis.input = \"{analysis_input}\"); analyse with {fix} to measure NC3")
    reduction = str(info.section("snapshots").get("reduction", "max"))
    pooled = f"{reduction}(x) over each channel's feature map (snapshots.reduction = \"{reduction}\")"
    took = f"max({reduction}(x), 0)" if post else f"{reduction}(x)"
    recorded = f"the snapshots record {pooled} and the analysis takes {took} (analysis.input = \"{analysis_input}\")"
    if name == "vgg":
        if reduction == "max" and post:
            return ""
        return (f"the classifier receives the global max pooling of max(x, 0), i.e. max(max(x), 0), but {recorded}; "
                "record with snapshots.reduction = \"max\" and analyse with analysis.input = \"post_relu\" to measure NC3")
    return (f"the classifier receives the global average pooling of max(x, 0), mean(max(x, 0)), but {recorded}; no "
            "setting records it (neither pooling of the pre-activations gives it), so NC3 is not measured for the resnet")


def classifier_weights(store: RunStore, run_id: str, layer: str, epoch: int, units: int, *,
                       analysis_input: str) -> tuple[np.ndarray | None, str]:
    """(W, "") with W (n_classes, units) the classifier's weights at ``epoch``, for NC3 of ``layer`` (SCIENCE.md 7:
    the last layer only); else (None, why NC3 is NaN): ``layer`` does not feed the classifier, the model's
    classifier is not identified, the analysed values are not the classifier's input (:func:`classifier_input_mismatch`;
    ``analysis_input`` is ``analysis.input``), no checkpoint of ``epoch`` (or an unreadable one), or a width mismatch.
    The checkpoint is read as the store reads every one: ``torch.load(weights_only=True)``, never unpickled."""
    info = store.run_info(run_id)
    feeding = classifier_input_layer(info)
    if feeding is None:
        return None, (f"the classifier of model {info.model_name or 'unknown'!r} is not identified (NC3 is computed for "
                      "ClusterScope's mlp, vgg and resnet)")
    if layer != feeding:
        return None, f"NC3 is defined for the layer that feeds the classifier ({feeding}) only"
    if why := classifier_input_mismatch(info, analysis_input):
        return None, why
    if epoch not in store.checkpoint_epochs(run_id):
        return None, f"no checkpoint of epoch {epoch} (checkpoints/epoch={epoch:04d}.pt: snapshots.checkpoints = false, or not imported)"
    try:
        state = store.load_checkpoint(run_id, epoch)
    except StoreError:  # its text names the file's absolute path, and this reason is stored and shown in a page
        return None, (f"the checkpoint of epoch {epoch} (checkpoints/epoch={epoch:04d}.pt) cannot be read: the file is corrupt "
                      "or not a weights-only state dict; replace it, or remove it to analyse without NC3 at that epoch")
    w = state.get(CLASSIFIER_KEY)
    if w is None or not hasattr(w, "numpy") or w.ndim != 2:
        return None, f"the checkpoint of epoch {epoch} has no 2-D {CLASSIFIER_KEY!r}"
    if int(w.shape[1]) != units:
        return None, f"the classifier takes {int(w.shape[1])} inputs but layer {layer!r} has {units} units"
    return w.detach().cpu().numpy().astype(np.float64), ""


# only CKA depends on these: left out of the snapshots' hash (analyse.params_of)
CKA_KEYS = ("cka_max_samples", "cka_max_epochs", "cka_debiased")


def cka_rows(fine: np.ndarray, keep: np.ndarray, a: AnalysisConfig) -> np.ndarray:
    """The rows (of samples.parquet) CKA compares: a seeded stratified subset (by fine label) of at most
    ``analysis.cka_max_samples`` of the embedded samples ``keep`` (all of them with 0), ascending."""
    from backend.data import stratified_indices

    cap = a.cka_max_samples or len(keep)
    return keep[stratified_indices(fine[keep], cap, seed=a.seed)]


def cka_of_run(store: RunStore, run_id: str, layers: list[str], keep: np.ndarray, a: AnalysisConfig,
               ptag: tuple[str, str], *, of: int, force: bool, errors: dict[str, str]) -> None:
    """Write ``analysis/cka.parquet`` (schema.CKA_SCHEMA) unless it is up to date with these parameters and
    snapshots; nothing (and a stale file removed) with ``analysis.geometry = false``.

    layers : the recorded layers in network order; keep : the row indices of the samples CKA compares
    (:func:`cka_rows`: at most ``analysis.cka_max_samples`` of the ``of`` embedded ones). Its parameters JSON
    adds :data:`CKA_KEYS`, ``cka_samples`` (len(keep)) and ``cka_of`` for the page's "CKA on N of M samples".
    A snapshot that cannot be read or holds non-finite values is left out, and named in ``errors["cka"]`` unless
    ``errors`` already names it (as ``"layer@epoch"``, the snapshot analysis's own report).
    """
    text, phash = ptag
    snaps = store.snapshots(run_id)
    own = ",".join(f"{k}={getattr(a, k)}" for k in CKA_KEYS)
    tag = f"{phash}:{len(snaps)}:{int(snaps['epoch'].max()) if len(snaps) else -1}:{own}"
    if not a.geometry:
        store.analysis.remove(run_id, "cka")
        return
    if not force and store.analysis.params_hash(run_id, "cka") == tag:
        return
    pairs = {(str(r.layer), int(r.epoch)) for r in snaps.itertuples()}
    epochs = sorted({e for _, e in pairs})
    bad: list[str] = []
    rows = [_layer_block(store, run_id, [lay for lay in layers if (lay, e) in pairs], e, keep, a, bad) for e in epochs]
    rows += [_epoch_block(store, run_id, lay, [e for e in epochs if (lay, e) in pairs], keep, a, bad) for lay in layers]
    bad = [key for key in bad if key not in errors]  # the snapshot's own error already names it
    if bad:
        errors["cka"] = f"run {run_id!r}: CKA leaves out snapshot(s) {', '.join(sorted(set(bad)))} (unreadable or non-finite)."
    table = pd.concat([r for r in rows if not r.empty], ignore_index=True) if any(not r.empty for r in rows) \
        else schema.CKA_SCHEMA.empty_table().to_pandas()
    own_params = {k: getattr(a, k) for k in CKA_KEYS} | {"cka_samples": int(len(keep)), "cka_of": int(of)}
    store.analysis.write(run_id, "cka", table, params=json.dumps(json.loads(text) | own_params, sort_keys=True), params_hash=tag)


def _values(store: RunStore, run_id: str, layer: str, epoch: int, keep: np.ndarray, a: AnalysisConfig,
            bad: list[str]) -> np.ndarray | None:
    try:
        values = store.read_activations(run_id, layer, epoch)[1][keep]
    except StoreError:
        bad.append(f"{layer}@{epoch}")
        return None
    if not np.isfinite(values).all():
        bad.append(f"{layer}@{epoch}")
        return None
    return np.maximum(values, 0.0) if a.input == "post_relu" else values


def _matrix_rows(kind: str, keys: list[tuple[str, int]], reps: list[np.ndarray], a: AnalysisConfig) -> pd.DataFrame:
    from backend.analysis.geometry import cka_matrix

    m = cka_matrix(reps, batch_size=a.cka_batch, seed=a.seed, debiased=a.cka_debiased)
    rows: list[dict[str, Any]] = [{"kind": kind, "layer_a": ka[0], "epoch_a": ka[1], "layer_b": kb[0], "epoch_b": kb[1],
                                   "cka": float(m[i, j])} for i, ka in enumerate(keys) for j, kb in enumerate(keys)]
    return pd.DataFrame(rows, columns=schema.CKA_SCHEMA.names)


def _layer_block(store: RunStore, run_id: str, layers: list[str], epoch: int, keep: np.ndarray, a: AnalysisConfig,
                 bad: list[str]) -> pd.DataFrame:
    """Every two layers at ``epoch`` (kind 'layer')."""
    got = [(lay, _values(store, run_id, lay, epoch, keep, a, bad)) for lay in layers]
    ok = [(lay, v) for lay, v in got if v is not None]
    return _matrix_rows("layer", [(lay, epoch) for lay, _ in ok], [v for _, v in ok], a)


def cka_epoch_grid(epochs: list[int], cap: int) -> list[int]:
    """[P] The epochs of a layer whose every two CKA compares: all of them up to ``cap`` (``analysis.cka_max_epochs``;
    0 = no cap), else ``cap`` evenly spaced ones, the first and the last included."""
    if not cap or len(epochs) <= cap:
        return list(epochs)
    return [epochs[i] for i in np.unique(np.round(np.linspace(0, len(epochs) - 1, cap)).astype(int))]


def _epoch_block(store: RunStore, run_id: str, layer: str, epochs: list[int], keep: np.ndarray, a: AnalysisConfig,
                 bad: list[str]) -> pd.DataFrame:
    """Every two epochs of :func:`cka_epoch_grid` (kind 'epoch'), and every other epoch against the last included
    (and itself), so each epoch against the last stays complete while the pairs grow linearly past the cap."""
    from backend.analysis.geometry import cka_matrix

    grid = cka_epoch_grid(epochs, a.cka_max_epochs)
    got = [(e, _values(store, run_id, layer, e, keep, a, bad)) for e in grid]
    ok = [(e, v) for e, v in got if v is not None]
    frames = [_matrix_rows("epoch", [(layer, e) for e, _ in ok], [v for _, v in ok], a)]
    if not ok:
        return frames[0]
    last, rep = ok[-1]
    for e in (e for e in epochs if e not in grid):
        v = _values(store, run_id, layer, e, keep, a, bad)
        if v is not None:
            m = cka_matrix([v, rep], batch_size=a.cka_batch, seed=a.seed, debiased=a.cka_debiased)
            frames.append(pd.DataFrame([("epoch", layer, e, layer, b, float(m[0, j])) for j, b in enumerate((e, last))]
                                       + [("epoch", layer, last, layer, e, float(m[1, 0]))], columns=schema.CKA_SCHEMA.names))
    return pd.concat(frames, ignore_index=True)
