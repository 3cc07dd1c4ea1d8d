"""Benchmark: the cost of `clusterscope analyze` against UMAP itself and against the naive recipe.

Targets (issue), each measured and printed, never asserted:

1. The whole per-(layer, epoch) analysis of a 10,000 x 512 snapshot (both embeddings, clusters,
   all scores, writes) costs at most 1.5x one warm ``umap.UMAP().fit`` (default parameters) on
   the same PCA-50 input; on clustered synthetic data and on a real snapshot (a synthclust MLP
   of width 512 trained by our trainer). "Ours" is :func:`backend.jobs.analyse.analyze_run`
   on a run folder holding exactly that one snapshot (reads, analysis, writes, network measures),
   numba already warm; the time of :func:`~backend.analysis.snapshot.analyze_snapshot` alone is
   printed beside it. A separate pass times each step (PCA, kNN, UMAP 2-D, UMAP 10-D, HDBSCAN,
   trustworthiness, measures, writes) by calling the functions of ``backend.analysis`` directly.
2. Against the naive recipe (a fresh ``umap.UMAP(n_components=2)`` fit on the raw activations plus
   ``hdbscan.HDBSCAN`` on the 2-D output, one new Python process per snapshot), analysing all
   snapshots of a run with ``clusterscope analyze`` is at least 3x faster at a trustworthiness
   no more than 0.02 lower. Both layouts are scored the same way: scikit-learn's trustworthiness,
   k=10, against the raw activation matrix (Euclidean), on the same seeded subset of <= 2,000
   samples; the score against the post-ReLU values (cosine) is printed beside it.
3. Peak memory of the analysis of one 50,000 x 512 snapshot under 3 GB (``--n3 100000``: 100,000 x 512
   under 6 GB, issue 18): ``analyze_run`` in a child process, peak RSS (VmHWM, and the child's own
   ``resource.getrusage`` maximum beside it); with the default stratified cap (``analysis.max_samples``,
   100,000) and, when the snapshot is larger, with all points (under ``--all-timeout``).
   Part 1 with ``--n1 100000`` is issue 18's time target (at most 1.5x one warm UMAP fit).
4. ``clusterscope analyze`` on an already analysed run (the run of part 2) in under 3 s.
5. All of issue 17 together (SCIENCE.md 7: neural collapse, k-NN, probe, TwoNN per snapshot; CKA per run; the
   neighbourhood change between epochs) adds at most 30 % to the analysis of one 10,000 x 512 snapshot:
   ``analyze_run`` of a ``--epochs5``-epoch run (3) with ``analysis.geometry = true`` and the change step, against
   ``false`` without the change step, alternated, on the synthetic snapshot of part 1 (fresh noise per epoch) with a
   train/test split and predictions (so every measure runs); both sides analyse the same snapshots, so the ratio
   is per snapshot. The geometry step, one change pair and one CKA pair are timed on their own beside it.

Run ``python benchmarks/analysis.py --help`` for the options; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from backend.config import AnalysisConfig, load_config
from backend.store import RunStore

try:  # run as a script: benchmarks/ is on sys.path
    from _common import environment, table, timed
except ModuleNotFoundError:  # run as ``python -m benchmarks.analysis``
    from benchmarks._common import environment, table, timed

TARGET_UMAP_RATIO = 1.5
TARGET_SPEEDUP = 3.0
TARGET_TRUST_DROP = 0.02
TARGET_PEAK_GB = 3.0  # up to 50,000 points (issue 7)
TARGET_PEAK_GB_100K = 6.0  # 100,000 points (issue 18)
TARGET_NOOP_S = 3.0
TARGET_GEOMETRY_SHARE = 0.30
LAYER = "fc1.relu"  # layer name of the synthetic runs

# The naive recipe, run as `python -c NAIVE ACTIVATIONS.parquet OUT.npy MIN_CLUSTER_SIZE` in a new process.
NAIVE = """
import sys
import numpy as np, pandas as pd, umap, hdbscan
df = pd.read_parquet(sys.argv[1])
x = df.drop(columns="sample_id").to_numpy()
emb = umap.UMAP(n_components=2).fit_transform(x)
labels = hdbscan.HDBSCAN(min_cluster_size=int(sys.argv[3])).fit_predict(emb)
np.save(sys.argv[2], emb)
"""

# Part 3's child: analyse one run, print JSON (its own peak RSS as a cross-check).
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from backend.jobs.analyse import analyze_run
from backend.config import AnalysisConfig
from backend.store import RunStore
store, run_id = RunStore(sys.argv[1]), sys.argv[2]
report = analyze_run(store, run_id, AnalysisConfig(max_samples=int(sys.argv[3])))
layers = store.analysis.read_all(run_id, "layers")
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
import resource
print(json.dumps({"ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "wall": time.perf_counter() - t0, "errors": report.errors, "n_points": int(layers["n_points"].sum()),
                  "snapshot_s": float(layers["seconds"].sum()), "vmhwm_kb": int(hwm[0].split()[1]) if hwm else None}))
"""


# ------------------------------------------------------------------------------------------ helpers


def loadavg() -> float:
    return os.getloadavg()[0]


def clustered_values(n: int, *, dim: int = 512, clusters: int = 100, classes: int = 10, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, fine, superclass): ``n`` samples from ``clusters`` Gaussian clusters in ``dim``-D,
    ``clusters / classes`` clusters per class (cluster centres scattered around class centres).
    Values play the role of pre-activations: about half of each unit is negative."""
    rng = np.random.default_rng(seed)
    per_class = clusters // classes
    centre = np.repeat(rng.normal(0.0, 1.0, (classes, dim)), per_class, axis=0) + rng.normal(0.0, 0.7, (clusters, dim))
    fine = np.arange(n, dtype=np.int64) % clusters
    values = (centre[fine] + rng.normal(0.0, 1.5, (n, dim))).astype(np.float32)
    return values, fine, fine // per_class


def write_synthetic_run(store: RunStore, run_id: str, values: np.ndarray, fine: np.ndarray, sup: np.ndarray,
                        epochs: tuple[int, ...] = (0,), test_every: int = 0) -> None:
    """A run folder with run.json, samples.parquet (empty thumbnails) and one activation file per epoch;
    every ``test_every``-th sample in the test split (0: all training samples)."""
    n = len(values)
    split = np.where(np.arange(n) % test_every == 0, "test", "train") if test_every else np.full(n, "train")
    store.create_run(run_id, {"status": "complete", "dataset": {"name": "synthetic", "target": "superclass"},
                              "layers": [{"name": LAYER, "units": int(values.shape[1])}], "config": {}})
    ids = np.arange(n, dtype=np.int64)
    samples = pa.table({
        "sample_id": ids, "split": split, "label": fine.astype(np.int32),
        "label_name": np.array([f"k{k}" for k in fine]), "superclass": sup.astype(np.int32),
        "superclass_name": np.array([f"class {c}" for c in sup]), "thumbnail": pa.array([b""] * n, pa.binary()),
        "file_name": pa.array([None] * n, pa.string()),  # schema version 3: no file names here
    })
    store.write_samples(run_id, samples)
    for e in epochs:
        store.write_activations(run_id, LAYER, e, ids, values, reduction="max")


def train_synthclust(store: RunStore, run_id: str, *, classes: int, clusters_per_class: int, train_per_cluster: int,
                     test_per_cluster: int, probe_train: int, probe_test: int, epochs: int, snapshot_epochs: list[int],
                     width: int = 512) -> str:
    """A real run: a one-hidden-layer MLP of ``width`` units trained by our trainer on synthclust."""
    from backend import api

    cfg = load_config(None, (
        f'run_id="{run_id}"', 'data.name="synthclust"', 'data.target="superclass"',
        f"data.synthclust.classes={classes}", f"data.synthclust.clusters_per_class={clusters_per_class}",
        f"data.synthclust.train_per_cluster={train_per_cluster}", f"data.synthclust.test_per_cluster={test_per_cluster}",
        'model.name="mlp"', f"model.width={width}", "model.depth=1", f"train.epochs={epochs}", 'train.device="cpu"',
        f"snapshots.epochs={snapshot_epochs}", f"snapshots.probe_train={probe_train}", f"snapshots.probe_test={probe_test}",
        "analysis.auto=false",
    ))
    return api.train(cfg, store, progress=False)


def cli_path() -> list[str]:
    exe = Path(sys.executable).parent / "clusterscope"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("clusterscope")
    if found:
        return [found]
    return [sys.executable, "-c", "from backend.cli import cli; cli()"]


def _vmhwm_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of a running process in KiB; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Child:
    wall: float  # seconds from start to exit
    rc: int | None  # exit code; None when killed at the timeout
    out: str  # stdout
    err: str  # stderr
    peak_kb: int  # highest VmHWM seen while polling (every 50 ms), KiB

    @property
    def last_line(self) -> str:
        lines = (self.out + self.err).strip().splitlines()
        return lines[-1] if lines else ""


def run_child(cmd: list[str], *, timeout: float | None = None) -> Child:
    """Run ``cmd`` to its end (or kill it after ``timeout`` s), polling its peak RSS.

    Peak memory is read from /proc/PID/status (VmHWM), not from ``os.wait4``'s ru_maxrss: on
    Linux the latter also keeps the RSS of the forked copy of this (large) process before exec.
    Popen returns only after the exec, so every poll sees the child's own memory."""
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s, b: b.append(s.read()), args=(proc.stdout, out), daemon=True),
               threading.Thread(target=lambda s, b: b.append(s.read()), args=(proc.stderr, err), daemon=True)]
    for r in readers:
        r.start()
    peak, killed = 0, False
    while proc.poll() is None:
        peak = max(peak, _vmhwm_kb(proc.pid))
        if timeout is not None and not killed and time.perf_counter() - t0 > timeout:
            proc.kill()
            killed = True
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    for r in readers:
        r.join(timeout=10)
    child = Child(wall, None if killed else proc.returncode, "".join(out), "".join(err), peak)
    if child.rc not in (0, None):
        print(f"  child failed (exit {child.rc}): {' '.join(cmd[:3])} ...\n{child.err[-2000:]}", flush=True)
    return child


@dataclass
class Summary:
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, target: str, measured: str, goal: str, met: bool | None) -> None:
        self.rows.append([target, measured, goal, "-" if met is None else ("yes" if met else "NO")])


# ------------------------------------------------------------------------------------------ part 1


def snapshot_breakdown(store: RunStore, run_id: str, params: AnalysisConfig) -> tuple[list[tuple[str, float]], float]:
    """Each step of one snapshot's analysis timed on its own (same functions, same order as the pipeline),
    and the seconds of a randomized PCA of the same input (the solver used before), for comparison.
    The "one after the other" step is not part of the analysis (its time is excluded from the sum)."""
    from sklearn.decomposition import PCA

    from backend.analysis import cluster, embed
    from backend.analysis.labels import probe_labels
    from backend.analysis.snapshot import Labels, cluster_epochs, layer_measures, representation, unit_tables
    from backend.jobs.analyse import AnalysisReport, _network_measures, _subset, params_of

    info = store.read_run(run_id)
    epoch = int(store.snapshots(run_id)["epoch"].iloc[0])
    layer = str(store.snapshots(run_id)["layer"].iloc[0])
    steps: list[tuple[str, float]] = []

    def step(name: str, fn: Any) -> Any:
        t = timed(fn)
        steps.append((name, t.wall))
        return t.value

    ids, values = step("read activations", lambda: store.read_activations(run_id, layer, epoch))
    samples = store.read_samples(run_id, columns=["sample_id", "split", "label", "superclass"])
    full = probe_labels(samples, info)
    keep = _subset(full.fine, params.max_samples, params.seed)
    labels = Labels(full.classes[keep], None if full.subclass is None else full.subclass[keep],
                    None if full.superclass is None else full.superclass[keep], full.fine[keep], full.train[keep])
    values, ids = values[keep], ids[keep]
    a = params
    x = step("preprocess (c4, post-ReLU)", lambda: representation(values, a))
    p = step("PCA to 50", lambda: embed.pca_reduce(x, n_components=a.pca_components, seed=a.seed))
    g = step("kNN graph (cosine)", lambda: embed.knn_graph(p, n_neighbors=a.n_neighbors, metric=a.metric, seed=a.seed))
    fits = [{"n_components": a.cluster_dims, "min_dist": 0.0, "n_epochs": cluster_epochs(a)},
            {"n_components": 2, "min_dist": a.min_dist, "n_epochs": a.umap_epochs}]
    space, lay = step(f"UMAP 10-D ({cluster_epochs(a)} ep.) + 2-D ({a.umap_epochs} ep.), two threads",
                      lambda: embed.umap_embed_many(p, g, fits, metric=a.metric, seed=a.seed))
    step("  (the same two fits one after the other)", lambda: embed.umap_embed_many(p, g, fits, metric=a.metric, seed=a.seed,
                                                                                    threads=1))
    mcs = a.min_cluster_size or cluster.auto_min_cluster_size(labels.fine[labels.train])
    cl, _ = step("HDBSCAN (10-D)", lambda: cluster.hdbscan_labels(space, min_cluster_size=mcs, min_samples=a.min_samples))
    step("cluster scores", lambda: cluster.cluster_scores(cl[labels.train], classes=labels.classes[labels.train],
                                                          subclass=None if labels.subclass is None else labels.subclass[labels.train]))

    def trust() -> None:
        embed.trustworthiness(p, lay, k=a.trust_k, metric=a.metric, max_samples=a.trust_samples, seed=a.seed)
        embed.trustworthiness(p, p[:, :2], k=a.trust_k, metric=a.metric, max_samples=a.trust_samples, seed=a.seed)

    step("trustworthiness (UMAP + PCA)", trust)
    _, groups = step("layer measures (c1..c4)", lambda: layer_measures(values, labels, a))
    units, stats, _ = step("unit tables (scores, WTM, stats)", lambda: unit_tables(values, labels, a))
    text, phash = params_of(a, info)
    points = pd.DataFrame({"sample_id": ids, "umap_x": lay[:, 0], "umap_y": lay[:, 1], "pca_x": p[:, 0], "pca_y": p[:, 1],
                           "cluster": cl, "cluster_probability": np.ones(len(cl), np.float32)})
    row = store.analysis.read(run_id, "layers", layer, epoch)

    def writes() -> None:
        w = store.analysis.write
        for name, frame in (("points", points), ("units", units), ("unit_stats", stats), ("groups", groups),
                            ("layers", row.drop(columns=["layer", "epoch"]))):
            w(run_id, name, frame, params=text, params_hash=phash, layer=layer, epoch=epoch)

    step("writes (5 tables)", writes)
    alt = timed(lambda: PCA(n_components=p.shape[1], svd_solver="randomized", random_state=a.seed).fit_transform(x)).wall
    step("network measures (run level)", lambda: _network_measures(store, run_id, info, samples, a, (text, phash),
                                                                   force=True, report=AnalysisReport(run_id)))
    return steps, alt


def part1(args: argparse.Namespace, work: Path, summary: Summary) -> None:
    from backend import api

    store = RunStore(work / "part1")
    n = args.n1
    print(f"\n=== part 1: analysis of one {n:,} x 512 snapshot vs one warm umap.UMAP().fit on its PCA-50 ===", flush=True)
    datasets: list[tuple[str, str]] = []
    if "synthetic" in args.data1 and store.exists("synthetic"):  # --workdir of an earlier run
        datasets.append(("synthetic", "synthetic (100 Gaussian clusters, 10 classes)"))
    elif "synthetic" in args.data1:
        values, fine, sup = clustered_values(n, seed=args.seed)
        write_synthetic_run(store, "synthetic", values, fine, sup)
        datasets.append(("synthetic", "synthetic (100 Gaussian clusters, 10 classes)"))
    if "real" in args.data1 and store.exists("real"):
        datasets.append(("real", f"real (synthclust MLP 1x512, epoch {args.train_epochs})"))
    elif "real" in args.data1:
        t = time.perf_counter()
        cpc = 25 if not args.quick else 15
        classes = 4 if not args.quick else 2
        per = n // (classes * cpc)
        train_synthclust(store, "real", classes=classes, clusters_per_class=cpc, train_per_cluster=per, test_per_cluster=1,
                         probe_train=per * classes * cpc, probe_test=0, epochs=args.train_epochs,
                         snapshot_epochs=[args.train_epochs])
        final = api.read_run(store, "real").get("final") or {}
        print(f"trained the real run (synthclust {classes}x{cpc} clusters, MLP 1x512, {args.train_epochs} epochs) in "
              f"{time.perf_counter() - t:.0f} s; train accuracy {final.get('train_accuracy', float('nan')):.3f}", flush=True)
        datasets.append(("real", f"real (synthclust MLP 1x512, epoch {args.train_epochs})"))

    warm = False
    for run_id, desc in datasets:
        measure_one(store, run_id, desc, args, summary, warm=warm)
        warm = True


def measure_one(store: RunStore, run_id: str, desc: str, args: argparse.Namespace, summary: Summary, *, warm: bool) -> None:
    """Part 1 on one run of one snapshot: warm-up (once per process), alternated timings, breakdown."""
    import umap

    from backend import api
    from backend.analysis import embed
    from backend.analysis.snapshot import representation
    from backend.jobs.analyse import analyze_run

    params = api.analysis_config(store, run_id)
    snap = store.snapshots(run_id).iloc[0]
    _, values = store.read_activations(run_id, snap["layer"], int(snap["epoch"]))
    p = embed.pca_reduce(representation(values, params), n_components=params.pca_components, seed=params.seed)
    print(f"\n[{desc}] snapshot {values.shape[0]:,} x {values.shape[1]}, PCA input {p.shape}", flush=True)

    def baseline() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP().fit(p)

    def ours() -> None:
        report = analyze_run(store, run_id, params)
        if report.errors or len(report.analysed) != 1:
            print(f"  WARNING: analyze_run did not analyse exactly one snapshot: {report.summary()}", flush=True)

    def reset() -> None:
        shutil.rmtree(store.analysis.root(run_id), ignore_errors=True)

    if not warm:  # numba compiles the NN-descent and layout code of each path on first use
        tb = timed(baseline)
        reset()
        to = timed(ours)
        print(f"  warm-up (numba compile, not counted): umap.UMAP().fit {tb.wall:.1f} s, analyze_run {to.wall:.1f} s",
              flush=True)
    base_t: list[float] = []
    ours_t: list[float] = []
    snap_t: list[float] = []
    base_c: list[float] = []
    ours_c: list[float] = []
    for r in range(args.repeats):
        for side in (("b", "o") if r % 2 == 0 else ("o", "b")):
            if side == "b":
                t = timed(baseline)
                base_t.append(t.wall)
                base_c.append(t.cpu)
                print(f"  umap.UMAP().fit      {t.wall:6.1f} s  (CPU {t.cpu:.1f} s; waiting for a CPU {t.wait_share:.0%}, "
                      f"load {loadavg():.1f})", flush=True)
            else:
                reset()
                t = timed(ours)
                ours_t.append(t.wall)
                ours_c.append(t.cpu)
                snap_t.append(float(store.analysis.read_all(run_id, "layers")["seconds"].sum()))
                print(f"  analyze_run          {t.wall:6.1f} s  (CPU {t.cpu:.1f} s; analyze_snapshot {snap_t[-1]:.1f} s; "
                      f"waiting for a CPU {t.wait_share:.0%}, load {loadavg():.1f})", flush=True)
    mb, mo, ms = statistics.median(base_t), statistics.median(ours_t), statistics.median(snap_t)
    best = min(ours_t) / min(base_t)
    paired = statistics.median(o / b for o, b in zip(ours_t, base_t, strict=True))
    cpu_ratio = statistics.median(ours_c) / statistics.median(base_c)
    print(f"  medians: umap fit {mb:.1f} s, analyze_run {mo:.1f} s, analyze_snapshot {ms:.1f} s; "
          f"best-of-{len(base_t)} ratio {best:.2f}, median of paired ratios {paired:.2f}; CPU time "
          f"{statistics.median(ours_c):.1f} s / {statistics.median(base_c):.1f} s = {cpu_ratio:.2f}", flush=True)
    print(f"RATIO part1 [{run_id}] analyze_run/umap_fit = {mo / mb:.2f}  analyze_snapshot/umap_fit = {ms / mb:.2f}  "
          f"(target <= {TARGET_UMAP_RATIO})", flush=True)
    summary.add(f"1. analysis / warm UMAP fit, {run_id} {values.shape[0]:,}x{values.shape[1]}",
                f"{mo / mb:.2f} ({mo:.1f} s / {mb:.1f} s; snapshot alone {ms / mb:.2f}; best-of {best:.2f}; "
                f"paired {paired:.2f}; CPU {cpu_ratio:.2f})",
                f"<= {TARGET_UMAP_RATIO}", mo / mb <= TARGET_UMAP_RATIO)

    if not args.no_breakdown:
        steps, alt = snapshot_breakdown(store, run_id, params)
        total = sum(s for k, s in steps if not k.startswith("  "))
        print(f"  breakdown of one analysis ({run_id}; each step timed on its own, warm):")
        print("    " + table(["step", "seconds", "share"], [[k, v, f"{v / total:.0%}"] for k, v in steps]).replace("\n", "\n    "))
        print(f"    sum {total:.1f} s (baseline umap fit {mb:.1f} s); not counted: the same PCA with "
              f"svd_solver='randomized' takes {alt:.2f} s", flush=True)


# ------------------------------------------------------------------------------------------ part 5


def geometry_step(store: RunStore, run_id: str, a: AnalysisConfig) -> float:
    """Seconds of the per-snapshot geometry step alone (snapshot.py step 8) on the run's first snapshot, on the
    PCA and neighbour graph the analysis builds (not timed)."""
    from backend.analysis import embed
    from backend.analysis.labels import probe_labels
    from backend.analysis.snapshot import representation, snapshot_geometry_of
    from backend.jobs.analyse_geometry import snapshot_predictions

    ids, values = store.read_activations(run_id, LAYER, 0)
    labels = probe_labels(store.read_samples(run_id), store.read_run(run_id))
    p = embed.pca_reduce(representation(values, a), n_components=a.pca_components, seed=a.seed)
    graph = embed.knn_graph(p, n_neighbors=a.n_neighbors, metric=a.metric, seed=a.seed)
    step = snapshot_geometry_of(values, labels, a, snapshot_predictions(store, run_id, 0, ids))
    assert step is not None
    return timed(lambda: step(p, graph)).wall


def write_part5_run(store: RunStore, run_id: str, n: int, epochs: int, seed: int) -> np.ndarray:
    """The synthetic snapshot of part 1 at ``epochs`` epochs (each epoch the same clusters plus fresh noise, so
    neighbourhoods change), every 5th sample a test sample, predictions at each epoch; returns epoch 0's values."""
    values, fine, sup = clustered_values(n, seed=seed)
    write_synthetic_run(store, run_id, values, fine, sup, test_every=5)
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        if e:
            store.write_activations(run_id, LAYER, e, np.arange(n), values + rng.normal(0, 0.5, values.shape).astype(np.float32),
                                    reduction="max")
        logits = np.eye(10)[sup] + rng.normal(0, 0.7, (n, 10))  # ~90 % "correct"
        store.write_predictions(run_id, e, np.arange(n), logits, sup)
    return values


def part5(args: argparse.Namespace, work: Path, summary: Summary) -> None:
    """All of issue 17's analysis together against none of it, per snapshot (benchmarks/README.md, Part 5): an
    E-epoch run of the 10,000 x 512 synthetic snapshot analysed with ``analysis.geometry = true`` (per-snapshot
    geometry, CKA) and the neighbourhood change step, against ``analysis.geometry = false`` without the change
    step. Both sides analyse the same E snapshots, so the ratio is per snapshot: (S + G + (E-1)/E Ch + CKA/E) / S."""
    from dataclasses import replace

    import backend.jobs.analyse as pipeline
    from backend import api
    from backend.analysis.geometry import cka_matrix
    from backend.jobs.analyse import analyze_run
    from backend.jobs.analyse_geometry import cka_rows

    store, run_id, n, epochs = RunStore(work / "part5"), "geometry", args.n1, args.epochs5
    print(f"\n=== part 5: issue 17's share of the analysis of {epochs} snapshots of {n:,} x 512 ===", flush=True)
    if not store.exists(run_id):
        values = write_part5_run(store, run_id, n, epochs, args.seed)
    else:
        values = store.read_activations(run_id, LAYER, 0)[1]
    on = api.analysis_config(store, run_id)
    sides = {"all of it": on, "none of it": replace(on, geometry=False)}
    times: dict[str, list[float]] = {k: [] for k in sides}
    cpus: dict[str, list[float]] = {k: [] for k in sides}
    changes = pipeline.run_changes

    def analyse(name: str) -> Any:
        shutil.rmtree(store.analysis.root(run_id), ignore_errors=True)
        pipeline.run_changes = changes if name == "all of it" else (lambda *a, **k: None)
        try:
            return timed(lambda: analyze_run(store, run_id, sides[name]))
        finally:
            pipeline.run_changes = changes

    t = analyse("all of it")  # numba compiles NN-descent and the layouts: not counted
    print(f"  warm-up analyze_run, all of it: {t.wall:6.1f} s (CPU {t.cpu:.1f} s, load {loadavg():.1f})", flush=True)
    for r in range(args.repeats):
        for name in (list(sides) if r % 2 else list(sides)[::-1]):
            t = analyse(name)
            times[name].append(t.wall)
            cpus[name].append(t.cpu)
            print(f"  analyze_run, {name}: {t.wall:6.1f} s (CPU {t.cpu:.1f} s; waiting for a CPU {t.wait_share:.0%}, "
                  f"load {loadavg():.1f})", flush=True)
    # the parts, each alone, on the store the last "all of it" run would leave: geometry, one change pair, CKA
    analyse("all of it")
    geo_s = float(geometry_step(store, run_id, on))
    for e in range(1, epochs):
        store.analysis.remove(run_id, "changes", LAYER, e)
    errors: dict[str, str] = {}
    ch_s = timed(lambda: changes(store, run_id, on, pipeline.params_of(on, store.read_run(run_id)), errors)).wall / max(epochs - 1, 1)
    from backend.analysis.labels import probe_labels

    rows = cka_rows(probe_labels(store.read_samples(run_id), store.read_run(run_id)).fine, np.arange(n), on)
    x = np.maximum(values[rows], 0)
    pair = (timed(lambda: cka_matrix([x, x[:, ::-1], x[:, 1:]])).wall - timed(lambda: cka_matrix([x])).wall * 3) / 3
    t_on, t_off = statistics.median(times["all of it"]), statistics.median(times["none of it"])
    c_on, c_off = statistics.median(cpus["all of it"]), statistics.median(cpus["none of it"])
    share = t_on / t_off - 1
    per_snapshot = t_off / epochs
    # a run of 4 layers x 14 epochs computes (L - 1)/2 + (E - 1)/2 = 8 CKA pairs per snapshot; this one (E - 1)/2
    long_run = share + (8 - (epochs - 1) / 2) * max(pair, 0.0) / per_snapshot
    print(f"RATIO part5 analysis with/without issue 17 = {t_on / t_off:.2f} ({t_on:.1f} s / {t_off:.1f} s for {epochs} "
          f"snapshots; adds {share:.0%} per snapshot; CPU {c_on:.1f} s / {c_off:.1f} s = +{c_on / c_off - 1:.0%}; target <= "
          f"{TARGET_GEOMETRY_SHARE:.0%})", flush=True)
    print(f"  parts alone: per-snapshot geometry {geo_s:.2f} s; neighbourhood change {ch_s:.3f} s per pair (stored graph "
          f"neighbours, change_space={on.change_space}); one CKA pair on {len(rows):,} samples (cka_max_samples="
          f"{on.cka_max_samples}) {pair:.3f} s; snapshot without issue 17 {per_snapshot:.1f} s", flush=True)
    print(f"  a 4-layer x 14-epoch run computes 8 CKA pairs per snapshot (this run: {(epochs - 1) / 2:.1f}): "
          f"about +{long_run:.0%} per snapshot there", flush=True)
    if errors:
        print(f"  WARNING: the change step reported errors: {errors}", flush=True)
    summary.add(f"5. issue 17's share, {epochs} snapshots of {n:,}x512", f"{share:.0%} ({t_on:.1f} s / {t_off:.1f} s; "
                f"4x14 run ~{long_run:.0%})", f"<= {TARGET_GEOMETRY_SHARE:.0%}", share <= TARGET_GEOMETRY_SHARE)


# ------------------------------------------------------------------------------------------ part 2


def trust_raw(values: np.ndarray, layout: np.ndarray, *, k: int, subset: np.ndarray, metric: str = "euclidean") -> float:
    from sklearn.manifold import trustworthiness

    return float(trustworthiness(values[subset], layout[subset], n_neighbors=k, metric=metric))


def build_part2_run(args: argparse.Namespace, work: Path) -> tuple[RunStore, str]:
    store = RunStore(work / "part2")
    run_id = "multi"
    if not store.exists(run_id):
        t = time.perf_counter()
        cpc, classes = 25, 4
        per = args.n2 // (cpc * classes)
        epochs = args.snapshots2 - 1
        train_synthclust(store, run_id, classes=classes, clusters_per_class=cpc, train_per_cluster=per,
                         test_per_cluster=max(1, per // 4), probe_train=per * cpc * classes, probe_test=0,
                         epochs=epochs, snapshot_epochs=list(range(epochs + 1)))
        snaps = store.snapshots(run_id)
        print(f"trained run {run_id!r} (synthclust {classes}x{cpc}, MLP 1x512, {epochs} epochs): {len(snaps)} snapshots of "
              f"{per * cpc * classes:,} x 512 in {time.perf_counter() - t:.0f} s", flush=True)
    return store, run_id


def part2(args: argparse.Namespace, work: Path, summary: Summary) -> tuple[RunStore, str]:
    print(f"\n=== part 2: `clusterscope analyze` on a run of {args.snapshots2} snapshots vs the naive recipe ===", flush=True)
    store, run_id = build_part2_run(args, work)
    snaps = store.snapshots(run_id)
    shutil.rmtree(store.analysis.root(run_id), ignore_errors=True)
    cmd = cli_path() + ["analyze", run_id, "--store", str(store.root), "--no-progress"]
    load0 = loadavg()
    ours = run_child(cmd)
    ours_wall = ours.wall
    print(f"ours: {' '.join(['clusterscope'] + cmd[1:])}\n  {ours_wall:.1f} s (exit {ours.rc}, peak RSS "
          f"{ours.peak_kb / 1e6:.2f} GB, load {load0:.1f} -> {loadavg():.1f}): {ours.last_line}", flush=True)

    naive_dir = work / "naive"
    naive_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows = []
    naive_total = 0.0
    for snap in snaps.itertuples():
        layer, epoch = snap.layer, int(snap.epoch)
        mcs = int(store.analysis.read(run_id, "layers", layer, epoch)["min_cluster_size"].iloc[0])
        out_npy = naive_dir / f"{layer}-{epoch}.npy"
        load0 = loadavg()
        naive_run = run_child([sys.executable, "-c", NAIVE, str(snap.path), str(out_npy), str(mcs)])
        wall, rc = naive_run.wall, naive_run.rc
        naive_total += wall
        ids, values = store.read_activations(run_id, layer, epoch)
        naive = np.load(out_npy)
        pts = store.analysis.read(run_id, "points", layer, epoch, columns=["sample_id", "umap_x", "umap_y"])
        pos = pd.Series(np.arange(len(ids)), index=ids)[pts["sample_id"].to_numpy()].to_numpy()
        ours_layout = np.full((len(ids), 2), np.nan, np.float32)
        ours_layout[pos] = pts[["umap_x", "umap_y"]].to_numpy()
        subset = np.sort(rng.choice(pos, size=min(len(pos), args.trust_samples), replace=False))
        k = 10
        t_ours = trust_raw(values, ours_layout, k=k, subset=subset)
        t_naive = trust_raw(values, naive, k=k, subset=subset)
        post = np.maximum(values, 0)
        c_ours = trust_raw(post, ours_layout, k=k, subset=subset, metric="cosine")
        c_naive = trust_raw(post, naive, k=k, subset=subset, metric="cosine")
        rows.append([f"{layer}@{epoch}", wall, t_ours, t_naive, t_ours - t_naive, c_ours, c_naive])
        print(f"  naive {layer}@{epoch}: {wall:.1f} s (exit {rc}, load {load0:.1f} -> {loadavg():.1f}); trustworthiness "
              f"raw/euclidean ours {t_ours:.4f} naive {t_naive:.4f}; post-ReLU/cosine ours {c_ours:.4f} naive {c_naive:.4f}",
              flush=True)
    print(table(["snapshot", "naive s", "trust ours", "trust naive", "ours-naive", "cos ours", "cos naive"], rows))
    speedup = naive_total / ours_wall
    mean_o = float(np.mean([r[2] for r in rows]))
    mean_n = float(np.mean([r[3] for r in rows]))
    worst = float(min(r[4] for r in rows))
    print(f"whole run: ours {ours_wall:.1f} s, naive {naive_total:.1f} s ({len(rows)} processes)")
    print(f"RATIO part2 speed-up naive/ours = {speedup:.2f} (target >= {TARGET_SPEEDUP}); trustworthiness mean ours "
          f"{mean_o:.4f}, naive {mean_n:.4f}, difference {mean_o - mean_n:+.4f} (worst snapshot {worst:+.4f}; "
          f"target >= -{TARGET_TRUST_DROP})", flush=True)
    n_pts = int(len(store.read_samples(run_id, columns=["sample_id"])))
    summary.add(f"2. speed-up vs naive, {len(rows)} snapshots of {n_pts:,}x512",
                f"{speedup:.2f}x ({naive_total:.0f} s / {ours_wall:.0f} s)", f">= {TARGET_SPEEDUP}x", speedup >= TARGET_SPEEDUP)
    summary.add("2. trustworthiness ours - naive (k=10, raw)", f"{mean_o - mean_n:+.4f} ({mean_o:.4f} vs {mean_n:.4f}; worst {worst:+.4f})",
                f">= -{TARGET_TRUST_DROP}", mean_o - mean_n >= -TARGET_TRUST_DROP)
    return store, run_id


# ------------------------------------------------------------------------------------------ part 3


def part3(args: argparse.Namespace, work: Path, summary: Summary) -> None:
    n = args.n3
    target_gb = TARGET_PEAK_GB if n <= 50_000 else TARGET_PEAK_GB_100K
    print(f"\n=== part 3: peak memory of the analysis of one {n:,} x 512 snapshot (child process) ===", flush=True)
    store = RunStore(work / "part3")
    values, fine, sup = clustered_values(n, seed=args.seed)
    write_synthetic_run(store, "big", values, fine, sup)
    size = store.activation_path("big", LAYER, 0).stat().st_size
    del values, fine, sup
    print(f"wrote a {n:,} x 512 snapshot ({size / 1e6:.0f} MB on disk)", flush=True)
    default_cap = AnalysisConfig().max_samples
    runs = [("default cap", default_cap, None)]
    if n > default_cap:
        runs.append(("all points", n, args.all_timeout))
    for name, cap, timeout in runs:
        shutil.rmtree(store.analysis.root("big"), ignore_errors=True)
        load0 = loadavg()
        child = run_child([sys.executable, "-c", CHILD, str(store.root), "big", str(cap)], timeout=timeout)
        wall, rc = child.wall, child.rc
        info = json.loads(child.out.strip().splitlines()[-1]) if rc == 0 else {}
        gb = max(child.peak_kb, info.get("vmhwm_kb") or 0) * 1024 / 1e9
        if rc is None:
            print(f"  {name} (max_samples={cap}): killed after {wall:.0f} s (--all-timeout); peak RSS so far {gb:.2f} GB",
                  flush=True)
            summary.add(f"3. peak memory {n:,}x512, {name}", f">{wall:.0f} s: not finished; peak so far {gb:.2f} GB",
                        f"< {target_gb} GB", None)
            continue
        print(f"  {name} (max_samples={cap}): peak RSS {gb:.2f} GB (VmHWM, GB = 1e9 bytes), "
              f"(ru_maxrss {info.get('ru_maxrss_kb', 0) * 1024 / 1e9:.2f} GB), {info.get('n_points')} points embedded; "
              f"process {wall:.0f} s incl. imports and numba compile, "
              f"analyze_snapshot {info.get('snapshot_s', float('nan')):.0f} s (load {load0:.1f} -> {loadavg():.1f})", flush=True)
        if info.get("errors"):
            print(f"  WARNING: the analysis reported errors: {info['errors']}", flush=True)
        summary.add(f"3. peak memory {n:,}x512, {name}", f"{gb:.2f} GB ({wall:.0f} s; analyze_snapshot "
                    f"{info.get('snapshot_s', float('nan')):.0f} s)", f"< {target_gb} GB", gb < target_gb)


# ------------------------------------------------------------------------------------------ part 4


def part4(args: argparse.Namespace, work: Path, summary: Summary, ctx: tuple[RunStore, str] | None) -> None:
    print("\n=== part 4: `clusterscope analyze` on an already analysed run ===", flush=True)
    if ctx is None:
        store, run_id = build_part2_run(args, work)
    else:
        store, run_id = ctx
    cmd = cli_path() + ["analyze", run_id, "--store", str(store.root), "--no-progress"]
    if store.analysis.read_status(run_id).get("analysed") is None:
        first = run_child(cmd)
        print(f"  first analysis (not counted): {first.wall:.1f} s: {first.last_line}", flush=True)
    walls = []
    for _ in range(args.repeats4):
        noop = run_child(cmd)
        walls.append(noop.wall)
        print(f"  {noop.wall:.2f} s (exit {noop.rc}, load {loadavg():.1f}): {noop.last_line}", flush=True)
    med = statistics.median(walls)
    # Where a no-op's time goes: a fresh interpreter importing the CLI, and that plus the measures
    # module (sklearn.metrics, scipy.stats), which the pipeline imports even when nothing is stale.
    imports = {"import backend.cli": [], "import backend.cli, backend.analysis.measures": []}
    for _ in range(args.repeats4):
        for code, out in imports.items():
            out.append(run_child([sys.executable, "-c", code]).wall)
    for code, out in imports.items():
        print(f"  python -c {code!r}: median {statistics.median(out):.2f} s", flush=True)
    print(f"RATIO part4 no-op analyze median {med:.2f} s (target < {TARGET_NOOP_S} s)", flush=True)
    summary.add(f"4. analyze an analysed run ({len(store.snapshots(run_id))} snapshots)", f"{med:.2f} s (median of {len(walls)})",
                f"< {TARGET_NOOP_S:.0f} s", med < TARGET_NOOP_S)


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run (~3-4 min on 2 cores): small sizes, one repeat, parts 1-4")
    p.add_argument("--parts", default="1,2,3,4,5", help="comma-separated parts to run (1: vs UMAP fit, 2: vs naive, "
                                                       "3: peak memory, 4: no-op re-analysis, 5: geometry share)")
    p.add_argument("--data1", default=None, help="part 1 data: synthetic and/or real (default both, quick synthetic)")
    p.add_argument("--n1", type=int, default=None, help="part 1 snapshot size (default 10000, quick 1500)")
    p.add_argument("--repeats", type=int, default=None, help="part 1 timed pairs per data set (default 2, quick 1)")
    p.add_argument("--train-epochs", type=int, default=None, help="epochs of part 1's real run (default 3, quick 1)")
    p.add_argument("--no-breakdown", action="store_true", help="skip part 1's per-step breakdown")
    p.add_argument("--n2", type=int, default=None, help="part 2 probe samples per snapshot (default 5000, quick 1000)")
    p.add_argument("--snapshots2", type=int, default=None, help="part 2 snapshots (epochs 0..N-1; default 6, quick 2)")
    p.add_argument("--trust-samples", type=int, default=2000, help="part 2 trustworthiness subset size")
    p.add_argument("--n3", type=int, default=None, help="part 3 snapshot size (default 50000, quick 2000)")
    p.add_argument("--all-timeout", type=float, default=600.0, help="part 3: kill the all-points analysis after this many s")
    p.add_argument("--repeats4", type=int, default=None, help="part 4 timed calls (default 3, quick 1)")
    p.add_argument("--epochs5", type=int, default=3, help="part 5 snapshot epochs of the one layer (>= 2: one change pair)")
    p.add_argument("--workdir", type=Path, default=None, help="folder for the stores (default: a temporary one, deleted)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    args = p.parse_args(argv)
    q = args.quick
    args.parts = {int(x) for x in args.parts.split(",") if x.strip()}
    args.data1 = {x.strip() for x in (args.data1 or ("synthetic" if q else "synthetic,real")).split(",")}
    args.n1 = args.n1 or (1500 if q else 10000)
    args.repeats = args.repeats or (1 if q else 2)
    args.train_epochs = args.train_epochs or (1 if q else 3)
    args.n2 = args.n2 or (1000 if q else 5000)
    args.snapshots2 = args.snapshots2 or (2 if q else 6)
    args.n3 = args.n3 or (2000 if q else 50000)
    args.repeats4 = args.repeats4 or (1 if q else 3)
    if q:
        args.no_breakdown = True
    return args


def main(argv: list[str] | None = None) -> Summary:
    started = time.monotonic()
    args = parse_args(argv)
    print("ClusterScope benchmark: analysis cost (clusterscope analyze)")
    print(environment())
    import hdbscan  # noqa: F401 - versions for the record
    import numba
    import pynndescent
    import umap

    print(f"umap-learn {umap.__version__}, pynndescent {pynndescent.__version__}, numba {numba.__version__}, "
          f"NUMBA_NUM_THREADS {numba.config.NUMBA_NUM_THREADS}; load average {os.getloadavg()}")
    tmp = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="clusterscope-bench-analysis-")) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)
    summary = Summary()
    ctx = None
    try:
        if 1 in args.parts:
            part1(args, work, summary)
        if 2 in args.parts:
            ctx = part2(args, work, summary)
        if 3 in args.parts:
            part3(args, work, summary)
        if 4 in args.parts:
            part4(args, work, summary, ctx)
        if 5 in args.parts:
            part5(args, work, summary)
    finally:
        if tmp:
            shutil.rmtree(work, ignore_errors=True)
    print("\nsummary")
    print(table(["target", "measured", "target value", "met"], summary.rows))
    print(f"wall time of the benchmark {time.monotonic() - started:.0f} s")
    return summary


if __name__ == "__main__":
    main()
