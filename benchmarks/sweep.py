"""Throughput of a local sweep on Ray against the same runs one after another in one process.

    python benchmarks/sweep.py                 # 6 digits-VGG runs of 8 epochs, trained and analysed
    python benchmarks/sweep.py --quick         # 4 runs of 3 epochs, training only (~1 min)

Both sides train (and, unless --no-analyze, analyse) the same runs into fresh temporary stores:

* **sequential**: ``api.train`` then ``api.analyze`` for every run in this process, with torch's
  default threads (one per core), as ``clusterscope train`` does one run after another;
* **sweep**: ``run_sweep`` on a local Ray with ``--workers`` CPUs (one run per CPU, one torch thread
  each), including Ray's start-up, as ``clusterscope sweep`` does.

* **one worker** (unless ``--no-one-worker``): the same sweep with ``--workers 1``: Ray's one worker
  process trains and analyses the runs one after another, one CPU (one torch thread, one numba
  thread) per run. Its ratio to the sweep is how the sweep scales with workers, which the target's
  baseline does not show once one process already uses both cores.

The sides alternate (sequential first, then sweep, ...) ``--repeats`` times; the ratio is
median(sequential wall time) / median(sweep wall time), i.e. how many times more runs per hour the
sweep trains. Target: >= 1.6 with 2 workers on 2 cores. Also printed: the ratio without Ray's
start-up (measured separately), the ratio to one worker, and the share of time this process waited
for a CPU (other jobs). Prints timings and ratios (``grep ^RATIO``) and asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import environment, median, table, timed

from backend import api
from backend.jobs.sweep_spec import Sweep, expand, sweep_from_dict


def bench_sweep(runs: int, epochs: int, analyze: bool) -> Sweep:
    """``runs`` small digits VGGs (configs/digits_vgg.toml's model) differing in learning rate."""
    lrs = [round(0.005 * 1.6 ** i, 5) for i in range(runs)]
    base = {"data": {"name": "digits", "target": "superclass"},
            "model": {"name": "vgg", "stages": 2, "convs_per_stage": 2, "width_factor": 0.5},
            "train": {"epochs": epochs, "batch_size": 64, "device": "cpu"},
            "snapshots": {"epochs": [0, epochs]}}  # initialisation and end: 8 snapshots to analyse per run
    return sweep_from_dict({"sweep": {"name": "bench", "analyze": analyze, "retries": 0}, "base": base,
                            "grid": {"train.lr": lrs}})


def sequential(sweep: Sweep, root: Path) -> None:
    store = api.open_store(root)
    for trial in expand(sweep):
        api.train(trial.config, store, progress=False)
        if sweep.analyze:
            api.analyze(store, trial.run_id)


def on_ray(sweep: Sweep, root: Path, workers: int) -> None:
    report = api.run_sweep(sweep, api.open_store(root), workers=workers, progress=False)
    if report.failed:
        raise RuntimeError(report.summary())


def ray_startup(workers: int) -> float:
    """Seconds to start and stop a local Ray with ``workers`` CPUs and run one empty task."""
    import logging

    import ray

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray.get(ray.remote(lambda: None).remote())
    ray.shutdown()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=6, help="runs in the sweep (default 6)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    p.add_argument("--workers", type=int, default=2, help="Ray CPUs, one run each (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="pairs of measurements (default 1)")
    p.add_argument("--no-analyze", action="store_true", help="train only")
    p.add_argument("--no-one-worker", action="store_true", help="skip the one-worker sweep")
    p.add_argument("--quick", action="store_true", help="4 runs of 3 epochs, training only")
    args = p.parse_args()
    if args.quick:
        args.runs, args.epochs, args.no_analyze = 4, 3, True
    sweep = bench_sweep(args.runs, args.epochs, not args.no_analyze)
    print(f"# {environment()}")
    print(f"# {args.runs} digits-VGG runs x {args.epochs} epochs, {'train only' if args.no_analyze else 'train + analyse'}, "
          f"{args.workers} Ray workers, {args.repeats} pair(s)")
    work = Path(tempfile.mkdtemp(prefix="cs-bench-sweep-"))
    seq, ray_side, one = [], [], []
    try:
        for r in range(args.repeats):
            seq.append(timed(lambda r=r: sequential(sweep, work / f"seq-{r}")))
            print(f"sequential {r + 1}: {seq[-1].wall:.1f} s (waited for a CPU {seq[-1].wait_share:.0%})", flush=True)
            ray_side.append(timed(lambda r=r: on_ray(sweep, work / f"ray-{r}", args.workers)))
            print(f"sweep      {r + 1}: {ray_side[-1].wall:.1f} s", flush=True)
            if not args.no_one_worker:
                one.append(timed(lambda r=r: on_ray(sweep, work / f"one-{r}", 1)))
                print(f"one worker {r + 1}: {one[-1].wall:.1f} s", flush=True)
        startup = ray_startup(args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s, w = median([t.wall for t in seq]), median([t.wall for t in ray_side])
    rows = [["sequential (1 process)", s, args.runs * 3600 / s], ["sweep (Ray, incl. start-up)", w, args.runs * 3600 / w],
            ["sweep minus Ray start-up", w - startup, args.runs * 3600 / (w - startup)]]
    if one:
        o = median([t.wall for t in one])
        rows.append(["sweep, 1 worker (Ray, incl. start-up)", o, args.runs * 3600 / o])
    print(table(["side", "wall s", "runs/hour"], rows))
    print(f"Ray start-up alone: {startup:.1f} s")
    print(f"RATIO sweep throughput / sequential = {s / w:.2f} (target >= 1.6)")
    print(f"RATIO without Ray start-up = {s / (w - startup):.2f}")
    if one:
        print(f"RATIO sweep with {args.workers} workers / with 1 worker = {o / w:.2f} (how the sweep scales with workers)")


if __name__ == "__main__":
    main()
