"""Benchmark: one run's analysis spread over Ray (`clusterscope analyze RUN --ray`), 1 against 2 workers.

    python benchmarks/analysis_ray.py            # an 8-layer synthclust MLP, 3,000 probe samples, 3 snapshot epochs
    python benchmarks/analysis_ray.py --quick    # 1,000 probe samples, 2 snapshot epochs (a smoke run)

A real run is trained first (our trainer; an MLP of ``--depth`` ReLU layers on synthclust), then
its analysis is made from scratch, each time on a fresh copy of the unanalysed run and in a new
process (so each pays its imports, Ray's start-up and numba's compilation, as the command does):

* **one process**: ``analyze_run`` as ``clusterscope analyze RUN`` (two UMAP fits side by side);
* **Ray, W workers** (W = 1, 2): ``analyze_run`` with :func:`backend.jobs.analyse_ray.ray_layers` on a
  local Ray with W CPUs, as ``clusterscope analyze RUN --ray --workers W``: one layer per task and
  CPU, one thread each. With W = 1 the same process analyses a second copy once the first is done
  (workers warm): that pass is the pure layer work L, and the first pass's extra is the workers'
  warm-up w (process start, imports, numba's compilation).

Printed: wall times, ``RATIO`` lines (1 worker / 2 workers, target >= 1.7; one process / 2 workers),
whether every analysis table of the Ray runs equals the one-process run's bit for bit, and the
arithmetic for N machines: T(N) = F + w + max(L / N, the longest layer), with F the serial part
(start-up, Ray's start, the driver's run-level steps). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import environment, median, table

from backend.store import RunStore

TARGET = 1.7
RUN = "deep"


# ------------------------------------------------------------------------------------------ the child


def child(mode: str, root: str, warm_root: str | None) -> None:
    """Analyse the run under ``root`` (mode ``process`` or a worker count); print one JSON line of phases."""
    t0 = time.perf_counter()
    from backend.jobs.analyse import analysis_config, analyze_run, layers_here
    from backend.jobs.analyse_ray import ray_layers
    from backend.jobs.sweep import ray_session

    out: dict[str, float] = {"imports": time.perf_counter() - t0}

    def timing(runner, key):  # the runner's time is the layer phase; the rest of analyze_run is the driver's
        def run(*args):
            t = time.perf_counter()
            runner(*args)
            out[key] = time.perf_counter() - t
        return run

    def analyse(where: str, runner, key: str) -> None:
        store = RunStore(where)
        t = time.perf_counter()
        report = analyze_run(store, RUN, analysis_config(store, RUN), run_layers=timing(runner, key))
        out[f"{key}_total"] = time.perf_counter() - t
        if report.errors:
            out["errors"] = len(report.errors)

    if mode == "process":
        analyse(root, layers_here, "layers")
    else:
        t = time.perf_counter()
        with ray_session(None, int(mode)) as ray:
            out["ray_start"] = time.perf_counter() - t
            runner = ray_layers(ray)
            analyse(root, runner, "layers")
            if warm_root:
                analyse(warm_root, runner, "warm")
    print(json.dumps(out))


# ------------------------------------------------------------------------------------------ the parent


def train(root: Path, args: argparse.Namespace) -> RunStore:
    from backend import api
    from backend.config import load_config

    per_cluster = args.samples // (10 * 4)
    cfg = load_config(None, (
        f'run_id="{RUN}"', 'data.name="synthclust"', 'data.target="superclass"', "data.synthclust.classes=10",
        "data.synthclust.clusters_per_class=4", f"data.synthclust.train_per_cluster={per_cluster}",
        f"data.synthclust.test_per_cluster={max(per_cluster // 4, 5)}", 'model.name="mlp"', f"model.depth={args.depth}",
        f"model.width={args.width}", f"train.epochs={args.epochs}", 'train.device="cpu"',
        f"snapshots.epochs={list(range(args.epochs + 1))}", f"snapshots.probe_train={per_cluster * 40}",
        f"snapshots.probe_test={max(per_cluster // 4, 5) * 40}", "analysis.auto=false",
    ))
    store = api.open_store(root)
    api.train(cfg, store, progress=False)
    return store


def fresh_copy(base: RunStore, where: Path) -> Path:
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(base.run_dir(RUN), where / RUN, ignore=shutil.ignore_patterns("analysis"))
    return where


def run_child(mode: str, root: Path, warm: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(root)] + ([str(warm)] if warm else [])
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"child {mode} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out |= {"wall": wall - out.get("warm_total", 0.0), "load": (load0, os.getloadavg()[0])}  # the warm pass aside
    print(f"  {mode:>7}: {out['wall']:.1f} s (load {load0:.1f} -> {os.getloadavg()[0]:.1f}) {json.dumps(out)}", flush=True)
    return out


def tables_equal(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    def tables(root: Path) -> dict[str, object]:
        out = {}
        for path in sorted((root / RUN / "analysis").rglob("*.parquet")):
            t = pq.read_table(path)
            out[str(path.relative_to(root))] = t.drop_columns(["seconds"]) if "seconds" in t.column_names else t
        return out

    ta, tb = tables(a), tables(b)
    return sorted(ta) == sorted(tb) and all(ta[k].equals(tb[k]) and ta[k].schema.metadata == tb[k].schema.metadata for k in ta)


def layer_seconds(root: Path) -> dict[str, float]:
    layers = RunStore(root).analysis.read_all(RUN, "layers", columns=["layer", "seconds"])
    return {str(k): float(v) for k, v in layers.groupby("layer", sort=False)["seconds"].sum().items()}


def arithmetic(one: dict, two: dict, per_layer: dict[str, float]) -> None:
    """Amdahl with a tail: T(N) = F + w + max(L / N, longest layer)."""
    wall1 = one["wall"]
    fixed = wall1 - one["layers"]  # imports, Ray's start-up, the driver's own steps (and process start)
    work = one["warm"]  # the layer phase with warm workers: the work itself
    warm_up = one["layers"] - work
    longest = max(per_layer.values()) / sum(per_layer.values()) * work
    driver = one["layers_total"] - one["layers"]
    rest = fixed - one["imports"] - one["ray_start"] - driver
    print(f"\nF (serial) = {fixed:.1f} s: imports {one['imports']:.1f} s + Ray start {one['ray_start']:.1f} s + the driver's "
          f"checks and run-level steps {driver:.1f} s + the rest (interpreter start, torch import, Ray's shutdown) {rest:.1f} s")
    print(f"w (a worker's warm-up: start, imports, numba compilation, once per worker, in parallel) = {warm_up:.1f} s")
    print(f"L (the layers' work with warm workers, 1 CPU) = {work:.1f} s over {len(per_layer)} layers; longest layer "
          f"{longest:.1f} s ({max(per_layer, key=per_layer.get)})")
    rows = []
    for n in (1, 2, 4, 8, 16, 32):
        t = fixed + warm_up + max(work / n, longest)
        rows.append([n, t, wall1 / t, f"{fixed / t:.0%}"])
    print(table(["workers N", "T(N) s", "speed-up T(1)/T(N)", "serial share F/T(N)"], rows))
    print(f"predicted T(2) {rows[1][1]:.1f} s against measured {two['wall']:.1f} s; the limit (N >= {len(per_layer)}: one layer "
          f"per worker) is {wall1 / (fixed + warm_up + longest):.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="1,000 probe samples, 1 training epoch (2 snapshot epochs)")
    p.add_argument("--samples", type=int, default=None, help="probe samples, about (default 3000; quick 1000)")
    p.add_argument("--depth", type=int, default=8, help="ReLU layers of the MLP (>= 8 for the issue's target)")
    p.add_argument("--width", type=int, default=64, help="units per layer")
    p.add_argument("--epochs", type=int, default=None, help="training epochs; snapshots at 0..epochs (default 2; quick 1)")
    p.add_argument("--repeats", type=int, default=1, help="measurements of each side (alternated)")
    p.add_argument("--no-process", action="store_true", help="skip the one-process analysis")
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] if len(args.child) > 2 else None)
        return
    args.samples = args.samples or (1000 if args.quick else 3000)
    args.epochs = args.epochs or (1 if args.quick else 2)
    print("ClusterScope benchmark: one run's layers as Ray tasks (clusterscope analyze --ray)")
    print(environment(), f"load average {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="clusterscope-bench-analysis-ray-"))
    try:
        t = time.perf_counter()
        base = train(work / "base", args)
        snaps = base.snapshots(RUN)
        print(f"trained {RUN}: {len(set(snaps['layer']))} layers x {len(set(snaps['epoch']))} epochs = {len(snaps)} snapshots, "
              f"{len(base.read_samples(RUN, columns=['sample_id']))} probe samples ({time.perf_counter() - t:.0f} s)", flush=True)
        modes = (["1", "2"] if args.no_process else ["process", "1", "2"])
        results: dict[str, list[dict]] = {m: [] for m in modes}
        for r in range(args.repeats):
            for m in (modes if r % 2 == 0 else modes[::-1]):
                warm = fresh_copy(base, work / "warm") if m == "1" else None
                results[m].append(run_child(m, fresh_copy(base, work / m), warm))
        walls = {m: median([x["wall"] for x in results[m]]) for m in modes}
        print(table(["analysis", "wall s (median)"], [[m if m == "process" else f"Ray, {m} worker(s)", w] for m, w in walls.items()]))
        print(f"RATIO 1 worker / 2 workers = {walls['1'] / walls['2']:.2f} (target >= {TARGET})")
        if "process" in walls:
            print(f"RATIO one process / 2 workers = {walls['process'] / walls['2']:.2f}")
            same = all(tables_equal(work / "process", work / m) for m in ("1", "2", "warm"))
            print(f"every analysis table of the Ray runs equals the one-process run's, bit for bit: {'yes' if same else 'NO'}")
        arithmetic(results["1"][-1], results["2"][-1], layer_seconds(work / "warm"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
