"""Analyse a run: every (layer, epoch) snapshot, then the network-level measures, layer rotation and
the baselines (c0 and sharpness, from the checkpoints: backend.jobs.baselines).

Incremental: a (layer, epoch) whose files carry the current parameters' hash is skipped, so
re-running ``clusterscope analyze`` on an analysed run only checks file metadata (and never imports
umap or torch). One process analyses all snapshots, so numba compiles UMAP once per run, not per
snapshot. A snapshot that cannot be analysed (missing or corrupt file, diverged values, a one-unit
layer) is reported by run, layer and epoch in ``analysis/status.json``; the others go on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backend import schema
from backend.analysis.labels import probe_labels
from backend.config import AnalysisConfig
from backend.errors import AnalysisInputError, ClusterScopeError, ConfigError, StoreError
from backend.jobs.analyse_changes import CHANGE_KEYS, run_changes
from backend.jobs.analyse_geometry import CKA_KEYS, cka_of_run, cka_rows, classifier_weights, snapshot_predictions
from backend.jobs.analyse_rotation import run_rotation
from backend.jobs.baselines import BASELINE_KEYS, run_baselines
from backend.store import RunStore

ANALYSIS_VERSION = 7  # bump when a change to the code changes results: stored files are then redone
SNAPSHOT_TABLES = ("points", "neighbours", "units", "unit_stats", "layers", "groups")


@dataclass
class AnalysisReport:
    run_id: str
    analysed: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # "layer@epoch" -> message
    corrupt: list[str] = field(default_factory=list)  # corrupt analysis files found (and recomputed)

    def summary(self) -> str:
        text = (f"run {self.run_id}: {len(self.analysed)} snapshot(s) analysed, {len(self.skipped)} up to date, "
                f"{len(self.errors)} failed")
        text += "".join(f"\n  corrupt, recomputed: {path}" for path in self.corrupt)
        return text + "".join(f"\n  {k}: {v}" for k, v in self.errors.items())


def params_of(a: AnalysisConfig, info: dict[str, Any]) -> tuple[str, str]:
    """JSON of the parameters that shape the results, and its hash (``auto`` and ``device`` do not count: a run
    analysed with ``device = "auto"`` is not redone with ``"cpu"``, which computes the same)."""
    p = {k: v for k, v in asdict(a).items() if k not in ("auto", "device") and k not in BASELINE_KEYS + CHANGE_KEYS + CKA_KEYS}
    p |= {"k_c2": resolved_k(a.k_c2, info), "k_c4": resolved_k(a.k_c4, info), "analysis_version": ANALYSIS_VERSION,
          "target": (info.get("dataset") or {}).get("target")}
    text = json.dumps(p, sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()[:16]


def resolved_k(k: int, info: dict[str, Any]) -> int:
    """k over layers for c2 and c4: 0 means the thesis's choice, 5 for ResNets and 1 otherwise."""
    if k:
        return k
    model = str(((info.get("config") or {}).get("model") or {}).get("name", ""))
    return 5 if "resnet" in model else 1


def _up_to_date(store: RunStore, run_id: str, layer: str, epoch: int, phash: str) -> bool:
    return all(store.analysis.params_hash(run_id, t, layer, epoch) == phash for t in SNAPSHOT_TABLES)


def _subset(n_labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    from backend.data import stratified_indices

    return stratified_indices(n_labels, cap, seed=seed)


@dataclass(frozen=True)
class LayerWork:
    """One layer's share of the analysis (layers are independent; in aligned mode an epoch's fit starts from the last)."""
    layer: str
    depth: int
    epochs: tuple[tuple[int, bool], ...]  # (epoch, stale), in epoch order


Progress = Callable[[int, int, str], None]  # (done, total, what)
LayerRunner = Callable[[RunStore, str, list[LayerWork], AnalysisConfig, tuple[str, str], AnalysisReport, Progress | None], None]


def analyze_run(store: RunStore, run_id: str, params: AnalysisConfig, *,
                progress: Progress | None = None, run_layers: LayerRunner | None = None) -> AnalysisReport:
    """Analyse every snapshot of ``run_id`` that is missing or stale; see the module docstring. ``run_layers``
    analyses the stale layers (default :func:`layers_here`; backend.jobs.analyse_ray: as Ray tasks)."""
    run = store.run_info(run_id)
    info = run.raw  # for the parameters' hash and the probe labels, which take run.json's dict
    snaps = store.snapshots(run_id)
    if snaps.empty:
        raise AnalysisInputError(f"run {run_id!r} has no snapshots to analyse (no files under activations/); "
                                 "train it with snapshots enabled first.")
    try:
        samples = store.read_samples(run_id, columns=["sample_id", "split", "label", "superclass"])
    except StoreError as exc:
        raise AnalysisInputError(f"run {run_id!r} cannot be analysed: {exc}") from None
    ptext, phash = params_of(params, info)
    depth = {name: i for i, name in enumerate(run.layers)}
    layers = sorted(set(snaps["layer"]), key=lambda name: depth.get(name, len(depth)))
    report = AnalysisReport(run_id)
    todo = [(lay, int(e)) for lay in layers for e in sorted(snaps.loc[snaps["layer"] == lay, "epoch"])]
    _find_corrupt(store, run_id, todo, report)
    pending = [(lay, e) for lay, e in todo if not _up_to_date(store, run_id, lay, e, phash)]
    report.skipped = [p for p in todo if p not in pending]
    work = [LayerWork(lay, depth.get(lay, -1), tuple((e, (lay, e) in pending) for lay_, e in todo if lay_ == lay))
            for lay in layers if any(p[0] == lay for p in pending)]
    if work:
        (run_layers or layers_here)(store, run_id, work, params, (ptext, phash), report, progress)
    changed = bool(report.analysed)
    _network_measures(store, run_id, info, samples, params, (ptext, phash), force=changed, report=report)
    run_rotation(store, run_id, (ptext, phash), report.errors)
    fine = probe_labels(samples, info).fine
    embedded = _subset(fine, params.max_samples, params.seed)
    cka_of_run(store, run_id, layers, cka_rows(fine, embedded, params), params, (ptext, phash), of=len(embedded),
               force=changed, errors=report.errors)  # SCIENCE.md 7: CKA between layers and epochs
    run_changes(store, run_id, params, (ptext, phash), report.errors)  # what changed between epochs (issue 17)
    run_baselines(store, run_id, info, params, report.errors, progress=progress)
    store.analysis.write_status(run_id, {"params_hash": phash, "errors": report.errors,
                                         "analysed": len(report.analysed) + len(report.skipped)})
    return report


def layers_here(store: RunStore, run_id: str, work: list[LayerWork], params: AnalysisConfig, ptag: tuple[str, str],
                report: AnalysisReport, progress: Progress | None) -> None:
    """The stale layers one after the other in this process (numba compiles once for the whole run)."""
    inputs, total, done = layer_inputs(store, run_id, params), sum(s for w in work for _, s in w.epochs), itertools.count(1)
    for w in work:
        analyse_layer(store, run_id, w, inputs, params, ptag, report,
                      tick=None if progress is None else lambda what: progress(next(done), total, what))


def layer_inputs(store: RunStore, run_id: str, params: AnalysisConfig) -> tuple[pd.DataFrame, Any, np.ndarray]:
    """What each layer's analysis reads: the probe samples, their labels, the stratified subset."""
    samples = store.read_samples(run_id, columns=["sample_id", "split", "label", "superclass"])
    labels = probe_labels(samples, store.run_info(run_id).raw)
    return samples, labels, _subset(labels.fine, params.max_samples, params.seed)


def analyse_layer(store: RunStore, run_id: str, work: LayerWork, inputs: tuple[pd.DataFrame, Any, np.ndarray],
                  params: AnalysisConfig, ptag: tuple[str, str], report: AnalysisReport, *,
                  tick: Callable[[str], None] | None = None) -> None:
    """The stale epochs of one layer in epoch order, each fit starting from the layout before it (read
    back from the store for an up-to-date epoch); results go to the store and ``report``. One BLAS thread:
    OpenBLAS's last bits depend on its thread count, so the results do not depend on the machine's cores."""
    from threadpoolctl import threadpool_limits

    prev: np.ndarray | None = None
    with threadpool_limits(1, user_api="blas"):
        for epoch, stale in work.epochs:
            prev = (_analyze_one(store, run_id, work.layer, epoch, *inputs, params, work.depth, prev, ptag, report) if stale
                    else _stored_layout(store, run_id, work.layer, epoch))
            if tick and stale:
                tick(f"{work.layer} @ epoch {epoch}")


def _find_corrupt(store: RunStore, run_id: str, todo: list[tuple[str, int]], report: AnalysisReport) -> None:
    """Name what is corrupt instead of passing over it: analysis files (recomputed below, as their hash
    cannot be read) in ``report.corrupt``; recorded activations and checkpoints (which analysis cannot
    redo) in ``report.errors``."""
    for layer, epoch in todo:
        for table in SNAPSHOT_TABLES:
            if (path := store.analysis.unreadable(run_id, table, layer, epoch)) is not None:
                report.corrupt.append(str(path))
    for table in ("network", "rotation"):
        if (path := store.analysis.unreadable(run_id, table)) is not None:
            report.corrupt.append(str(path))
    report.errors.update(store.corrupt_sources(run_id))


def _stored_layout(store: RunStore, run_id: str, layer: str, epoch: int) -> np.ndarray | None:
    try:
        pts = store.analysis.read(run_id, "points", layer, epoch, columns=["umap_x", "umap_y"])
    except StoreError:
        return None
    # pandas hands a two-column block back column-ordered (Fortran order); the layout returned by a
    # fresh fit is row-ordered, and UMAP seeded from the two gives other layouts. C order makes an
    # analysis in parts byte-identical to one made at once.
    return np.ascontiguousarray(pts[["umap_x", "umap_y"]].to_numpy(np.float32))


def _analyze_one(store: RunStore, run_id: str, layer: str, epoch: int, samples: pd.DataFrame, labels: Any,
                 keep: np.ndarray, params: AnalysisConfig, depth: int, prev: np.ndarray | None,
                 ptag: tuple[str, str], report: AnalysisReport) -> np.ndarray | None:
    from backend.analysis.labels import Labels
    from backend.analysis.snapshot import AnalysisError, analyze_snapshot

    key = f"{layer}@{epoch}"
    try:
        ids, values = store.read_activations(run_id, layer, epoch)
        if not np.array_equal(ids, samples["sample_id"].to_numpy()):
            raise AnalysisError("its sample ids do not match samples.parquet; the snapshot is from another probe set.")
        sub = Labels(labels.classes[keep], None if labels.subclass is None else labels.subclass[keep],
                     None if labels.superclass is None else labels.superclass[keep], labels.fine[keep], labels.train[keep])
        weights, why = classifier_weights(store, run_id, layer, epoch, values.shape[1], analysis_input=params.input) \
            if params.geometry else (None, "analysis.geometry = false")
        result = analyze_snapshot(values[keep], sample_ids=ids[keep], labels=sub, params=params, depth=depth, init=prev,
                                  predictions=snapshot_predictions(store, run_id, epoch, ids[keep]), classifier=weights)
    except (AnalysisError, StoreError) as exc:
        report.errors[key] = f"run {run_id!r}, layer {layer!r}, epoch {epoch}: {exc}"
        for table in SNAPSHOT_TABLES:  # results of earlier parameters or data would now mislead
            store.analysis.remove(run_id, table, layer, epoch)
        return None
    text, phash = ptag
    w = store.analysis.write
    # layers last: its presence with the current hash marks the whole snapshot as done
    w(run_id, "points", result.points, params=text, params_hash=phash, layer=layer, epoch=epoch)
    w(run_id, "neighbours", result.neighbours, params=text, params_hash=phash, layer=layer, epoch=epoch)  # for the changes
    w(run_id, "units", result.units, params=text, params_hash=phash, layer=layer, epoch=epoch)
    w(run_id, "unit_stats", result.unit_stats, params=text, params_hash=phash, layer=layer, epoch=epoch)
    w(run_id, "groups", result.groups, params=text, params_hash=phash, layer=layer, epoch=epoch)
    row = pd.DataFrame([result.layer]).assign(nc3_reason=nc3_reason(result.layer, why or result.nc3_reason))
    w(run_id, "layers", row, params=text, params_hash=phash, layer=layer, epoch=epoch)
    report.analysed.append((layer, epoch))
    return result.layout


def nc3_reason(row: dict[str, float], why: str) -> str:
    """Why ``row``'s NC3 is NaN ("" when it is not): ``why`` (:func:`classifier_weights`, else the snapshot's
    ``geometry.nc3_problem``), else the classes'."""
    if np.isfinite(row.get("nc3_class", np.nan)):
        return ""
    return why or "the training probe samples' classes do not match the classifier's outputs (fewer than 2, or ids without a row)"


def _network_measures(store: RunStore, run_id: str, info: dict[str, Any], samples: pd.DataFrame, a: AnalysisConfig,
                      ptag: tuple[str, str], *, force: bool, report: AnalysisReport) -> None:
    """Network-level c1..c4 per epoch (SCIENCE.md 3.1): c1, c3 over all units; c2, c4 top-k over layers.

    Beside c1 and c2, their noise floor (the same measure with subclasses shuffled within
    superclasses, seed ``analysis.seed``), and ``n_units`` (units over all layers, for k's share).
    """
    text, phash = ptag
    if not force and store.analysis.params_hash(run_id, "network") == phash:
        return
    from backend.analysis import measures  # after the up-to-date check: it imports scikit-learn and SciPy
    labels = probe_labels(samples, info)
    t = labels.train if labels.train.any() else np.ones_like(labels.train)
    groups = store.analysis.read_all(run_id, "groups")
    k2, k4 = resolved_k(a.k_c2, info), resolved_k(a.k_c4, info)
    rows = []
    for epoch in sorted(set(store.snapshots(run_id)["epoch"])):
        pres = []
        for layer in [layer["name"] for layer in info.get("layers", [])]:
            try:
                pres.append(store.read_activations(run_id, layer, epoch)[1][t])
            except StoreError:
                continue
        if not pres or any(not np.isfinite(p).all() for p in pres):
            continue
        row = {"epoch": epoch, "c1": np.nan, "c2": np.nan, "c1_shuffled": np.nan, "c2_shuffled": np.nan,
               "k_c1": a.k_c1, "k_c2": k2, "k_c3": a.k_c3, "k_c4": k4, "n_units": sum(p.shape[1] for p in pres)}
        if labels.intraclass:  # trained on superclasses: the fine labels are hidden subclasses (snapshot.Labels)
            sub, sup = labels.subclass[t], labels.superclass[t]  # type: ignore[index]
            row["c1"] = measures.c1(pres, subclass=sub, superclass=sup, k=a.k_c1)
            row["c2"] = _over_layers(groups, epoch, "silhouette", lambda m: measures.c2(m, k=k2))
            # noise floor (SCIENCE.md 3.1, "Invariances"): subclasses shuffled within superclasses, fixed seed
            shuffled = measures.shuffle_within(sub, sup, seed=a.seed)
            row["c1_shuffled"] = measures.c1(pres, subclass=shuffled, superclass=sup, k=a.k_c1)
            row["c2_shuffled"] = _over_layers(groups, epoch, "silhouette_shuffled", lambda m: measures.c2(m, k=k2))
        row["c3"] = measures.c3(pres, classes=labels.classes[t], k=a.k_c3)
        row["c4"] = _over_layers(groups, epoch, "c4_ratio", lambda m: measures.c4(m, k=k4))
        rows.append(row)
    store.analysis.write(run_id, "network", pd.DataFrame(rows, columns=schema.NETWORK_SCHEMA.names),
                         params=text, params_hash=phash)


def _over_layers(groups: pd.DataFrame, epoch: int, kind: str, reduce: Callable[[np.ndarray], float]) -> float:
    g = groups[(groups["epoch"] == epoch) & (groups["kind"] == kind)]
    if g.empty:
        return float("nan")
    matrix = g.pivot_table(index="layer", columns="group", values="value", dropna=False).to_numpy()  # (layers, groups)
    return float(reduce(matrix))


# ------------------------------------------------------------------------------------------ settings and many runs


def analysis_config(store: RunStore, run_id: str, overrides: list[str] | tuple[str, ...] = ()) -> AnalysisConfig:
    """The run's recorded ``[analysis]`` settings (defaults for runs without them) plus overrides."""
    from backend.config import from_dict, parse_override, validate_analysis

    raw = store.run_info(run_id).section("analysis")
    for item in overrides:
        key, value = parse_override(item)
        if not key.startswith("analysis."):
            raise ConfigError(f"override {key!r} must be an analysis key (analysis.<name>=value) here.")
        raw[key.removeprefix("analysis.")] = value
    cfg = from_dict(AnalysisConfig, raw, "analysis.")
    validate_analysis(cfg)
    return cfg


def analyze(store: RunStore, run_id: str, params: AnalysisConfig | None = None, *,
            progress: Callable[[int, int, str], None] | None = None) -> AnalysisReport:
    """:func:`analyze_run` with the run's recorded settings unless ``params`` are given."""
    return analyze_run(store, run_id, params or analysis_config(store, run_id), progress=progress)


def analyze_one(store: RunStore, run_id: str, overrides: tuple[str, ...], *, progress: bool,
                run_layers: LayerRunner | None = None) -> bool:
    """Analyse one run with a tqdm bar; print the summary; return False when a snapshot failed."""
    from tqdm import tqdm

    params = analysis_config(store, run_id, overrides)
    bar = tqdm(desc=f"analyse {run_id}", unit="snapshot", file=sys.stderr, disable=not progress, total=0)

    def tick(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what)
        bar.refresh()

    try:
        report = analyze_run(store, run_id, params, progress=tick, run_layers=run_layers)
    except ClusterScopeError as exc:
        print(f"run {run_id}: {exc}", file=sys.stderr)
        return False
    finally:
        bar.close()
    print(report.summary(), file=sys.stderr)
    return not report.errors


def analyze_runs(store: RunStore, ids: list[str], overrides: tuple[str, ...] = (), *, jobs: int = 1,
                 progress: bool = True) -> bool:
    """Analyse ``ids``; with ``jobs`` > 1 one spawned worker process per run at a time. True if all succeeded."""
    if jobs == 1 or len(ids) == 1:
        return all([analyze_one(store, run_id, overrides, progress=progress) for run_id in ids])
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ok = True
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_analyze_in_worker, str(store.root), run_id, overrides): run_id for run_id in ids}
        for n, future in enumerate(as_completed(futures), start=1):
            summary, run_ok = future.result()
            ok &= run_ok
            print(f"[{n}/{len(ids)}] {summary}", file=sys.stderr)
    return ok


def _analyze_in_worker(root: str, run_id: str, overrides: tuple[str, ...]) -> tuple[str, bool]:
    """One run in a worker process (numba compiles once per worker, not per run)."""
    store = RunStore(root)
    try:
        report = analyze_run(store, run_id, analysis_config(store, run_id, overrides))
    except ClusterScopeError as exc:
        return f"run {run_id}: {exc}", False
    return report.summary(), not report.errors
