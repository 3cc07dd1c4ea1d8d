"""Benchmark: aligned 2-D layouts across epochs, our init + Procrustes against umap-learn's AlignedUMAP.

The issue asks for an aligned mode that keeps a layer's layouts stable across epochs, by
``umap.AlignedUMAP`` or by initialising each epoch from the previous one and aligning with
Procrustes, "the better by measurement". This script measures both on the same inputs (each
epoch's PCA-50 of the preprocessed layer, built as the pipeline builds it) with the pipeline's
parameters (``AnalysisConfig``: 30 neighbours, cosine, min_dist 0.1, 200 epochs, seed 0):

* **init+Procrustes** (ours, ``analysis.aligned = true``): per epoch a k-NN graph, a seeded 2-D
  UMAP initialised from the previous epoch's layout (spectral for the first), then
  :func:`backend.analysis.embed.align_to` (rotation/reflection onto the previous layout).
* **AlignedUMAP**: ``umap.AlignedUMAP(...).fit(inputs, relations=identity)``, all epochs at once,
  same neighbours, metric, min_dist, epochs and seed (its defaults otherwise: regularisation
  0.01, window 3).
* **independent** (reference, ``analysis.aligned = false``): per epoch a spectral-initialised fit,
  no alignment; and **independent+Procrustes**: the same layouts rotated onto the previous one.

For each: wall and CPU time (median of ``--repeats`` runs in alternating order; seeded fits are
single-threaded, so CPU time is the steadier figure on a shared machine); trustworthiness of every
epoch's layout (scikit-learn, k=10, cosine, against the PCA-50 input, as the pipeline records it); and stability between consecutive epochs:
*displacement* = mean distance a sample moves after each layout is centred and scaled to unit RMS
radius (what an animation shows), and *disparity* = ``scipy.spatial.procrustes`` disparity (shape
change after the best rotation and scaling; 0 = same shape). Lower is steadier; but a layout that
never moves is not the goal, so read stability with trustworthiness.

Data: a synthetic drifting sequence (clusters that separate as "training" goes on; the default), or
a real run's layer with ``--store DIR --run RUN --layer LAYER`` (e.g. the demo store). Prints a table
and ``RATIO`` lines; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from backend.analysis import embed
from backend.analysis.snapshot import representation
from backend.config import AnalysisConfig

try:  # run as a script: benchmarks/ is on sys.path
    from _common import environment, table
except ModuleNotFoundError:  # run as ``python -m benchmarks.aligned``
    from benchmarks._common import environment, table


def drifting_sequence(n: int, epochs: int, *, dim: int = 256, clusters: int = 30, classes: int = 6, seed: int = 0
                      ) -> list[np.ndarray]:
    """``epochs`` snapshots of ``n`` samples whose cluster structure emerges over the epochs: sample i
    has fixed noise and a fixed cluster; epoch t scales the cluster centres by t / (epochs - 1)
    and adds a little fresh noise, like a layer that learns to separate its classes."""
    rng = np.random.default_rng(seed)
    per_class = clusters // classes
    centre = np.repeat(rng.normal(0.0, 1.0, (classes, dim)), per_class, axis=0) + rng.normal(0.0, 0.6, (clusters, dim))
    fine = np.arange(n) % clusters
    base = rng.normal(0.0, 1.0, (n, dim))
    out = []
    for t in range(epochs):
        s = 0.3 + 1.7 * t / max(epochs - 1, 1)
        out.append((s * centre[fine] + base + rng.normal(0.0, 0.3, (n, dim))).astype(np.float32))
    return out


def load_real(root: str, run_id: str, layer: str | None, max_epochs: int | None) -> tuple[str, list[int], list[np.ndarray]]:
    from backend.store import RunStore

    store = RunStore(root)
    snaps = store.snapshots(run_id)
    layer = layer or str(snaps["layer"].iloc[-1])
    epochs = sorted(int(e) for e in snaps.loc[snaps["layer"] == layer, "epoch"])
    if max_epochs:
        epochs = epochs[:max_epochs]
    return layer, epochs, [store.read_activations(run_id, layer, e)[1] for e in epochs]


def normalised(layout: np.ndarray) -> np.ndarray:
    c = layout - layout.mean(axis=0)
    return c / np.sqrt((c**2).sum(axis=1).mean())


def stability(layouts: list[np.ndarray]) -> tuple[float, float]:
    """(mean displacement in units of the layout's RMS radius, mean Procrustes disparity) over consecutive epochs."""
    from scipy.spatial import procrustes

    disp, dis = [], []
    for a, b in zip(layouts[:-1], layouts[1:], strict=True):
        disp.append(float(np.linalg.norm(normalised(b) - normalised(a), axis=1).mean()))
        dis.append(float(procrustes(a.astype(np.float64), b.astype(np.float64))[2]))
    return float(np.mean(disp)), float(np.mean(dis))


def ours(inputs: list[np.ndarray], a: AnalysisConfig, *, init: bool, align: bool) -> list[np.ndarray]:
    layouts: list[np.ndarray] = []
    for p in inputs:
        g = embed.knn_graph(p, n_neighbors=a.n_neighbors, metric=a.metric, seed=a.seed)
        prev = layouts[-1] if layouts else None
        lay = embed.umap_embed(p, g, n_components=2, min_dist=a.min_dist, metric=a.metric, seed=a.seed,
                               init=prev if (init and prev is not None) else "spectral", n_epochs=a.umap_epochs)
        layouts.append(embed.align_to(prev, lay) if (align and prev is not None) else lay)
    return layouts


def aligned_umap(inputs: list[np.ndarray], a: AnalysisConfig) -> list[np.ndarray]:
    import umap

    n = inputs[0].shape[0]
    relations = [{i: i for i in range(n)} for _ in inputs[1:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = umap.AlignedUMAP(n_neighbors=a.n_neighbors, min_dist=a.min_dist, metric=a.metric, n_epochs=a.umap_epochs,
                                 random_state=a.seed).fit(inputs, relations=relations)
    return [np.asarray(e, dtype=np.float32) for e in model.embeddings_]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t, c = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - t, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--store", default=None, help="a run store; with --run, measure a real run's layer instead of synthetic data")
    p.add_argument("--run", default=None, help="run id in --store")
    p.add_argument("--layer", default=None, help="layer of --run (default: the last one)")
    p.add_argument("--max-epochs", type=int, default=None, help="use only the first N snapshot epochs of --run")
    p.add_argument("--n", type=int, default=2000, help="synthetic samples per epoch")
    p.add_argument("--epochs", type=int, default=8, help="synthetic epochs")
    p.add_argument("--methods", default="ours,aligned_umap,independent", help="comma-separated subset")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per method (alternating order); times are medians")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print("ClusterScope benchmark: aligned layouts across epochs (init + Procrustes vs AlignedUMAP)")
    print(environment())
    import umap

    print(f"umap-learn {umap.__version__}", flush=True)
    a = AnalysisConfig(seed=args.seed)
    if args.store and args.run:
        layer, epochs, raw = load_real(args.store, args.run, args.layer, args.max_epochs)
        what = f"run {args.run!r}, layer {layer!r}, epochs {epochs}"
    else:
        raw = drifting_sequence(args.n, args.epochs, seed=args.seed)
        what = f"synthetic drifting sequence, {args.epochs} epochs"
    inputs = [embed.pca_reduce(representation(v, a), n_components=a.pca_components, seed=a.seed) for v in raw]
    print(f"{what}: {len(inputs)} snapshots of {raw[0].shape[0]:,} x {raw[0].shape[1]} -> PCA {inputs[0].shape[1]}", flush=True)

    # numba compiles the NN-descent, layout and aligned-layout code on first use: warm both paths up on a small slice
    small = [x[: min(len(x), 300)] for x in inputs[:3]]
    warm = AnalysisConfig(seed=args.seed, umap_epochs=11, n_neighbors=10)
    t0 = time.perf_counter()
    ours(small, warm, init=True, align=True)
    if "aligned_umap" in args.methods:
        aligned_umap(small, warm)
    print(f"warm-up (numba compile, not counted): {time.perf_counter() - t0:.0f} s", flush=True)

    methods: dict[str, Callable[[], list[np.ndarray]]] = {}
    wanted = {m.strip() for m in args.methods.split(",")}
    if "ours" in wanted:
        methods["init+Procrustes (ours)"] = lambda: ours(inputs, a, init=True, align=True)
    if "aligned_umap" in wanted:
        methods["AlignedUMAP"] = lambda: aligned_umap(inputs, a)
    indep: list[np.ndarray] = []
    if "independent" in wanted:
        def run_indep() -> list[np.ndarray]:
            indep[:] = ours(inputs, a, init=False, align=False)
            return list(indep)

        methods["independent (aligned=false)"] = run_indep
    rows, results = [], {}
    walls: dict[str, list[float]] = {name: [] for name in methods}
    cpus: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(args.repeats):  # alternate the order, so a busy spell does not hit one method only
        for name, fn in (list(methods.items()) if r % 2 == 0 else list(methods.items())[::-1]):
            layouts, wall, cpu = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
            results[name] = (layouts, statistics.median(walls[name]), statistics.median(cpus[name]))
            print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU (load {os.getloadavg()[0]:.1f})", flush=True)
    if indep:  # rotating the independent layouts costs nothing measurable: reuse them
        rot = [indep[0]]
        for lay in indep[1:]:
            rot.append(embed.align_to(rot[-1], lay))
        results["independent+Procrustes"] = (rot, results["independent (aligned=false)"][1], results["independent (aligned=false)"][2])

    for name, (layouts, wall, cpu) in results.items():
        trust = [embed.trustworthiness(x, lay, k=a.trust_k, metric=a.metric, max_samples=a.trust_samples, seed=a.seed)
                 for x, lay in zip(inputs, layouts, strict=True)]
        disp, dis = stability(layouts)
        results[name] = (layouts, wall, cpu, float(np.mean(trust)), float(np.min(trust)), disp, dis)
        rows.append([name, f"{wall:.1f}", f"{cpu:.1f}", f"{np.mean(trust):.4f}", f"{np.min(trust):.4f}", f"{disp:.3f}", f"{dis:.3f}"])
    print(f"\n{what}")
    print(table(["method", "wall s", "CPU s", "trust mean", "trust min", "displacement", "disparity"], rows))
    o, u = results.get("init+Procrustes (ours)"), results.get("AlignedUMAP")
    if o and u:
        print(f"RATIO aligned time AlignedUMAP/ours = {u[1] / o[1]:.2f} (CPU {u[2] / o[2]:.2f}); trust mean ours-AlignedUMAP "
              f"{o[3] - u[3]:+.4f} (min {o[4] - u[4]:+.4f}); displacement ours/AlignedUMAP {o[5] / u[5]:.2f}; "
              f"disparity ours/AlignedUMAP {o[6] / u[6]:.2f}", flush=True)


if __name__ == "__main__":
    main()
