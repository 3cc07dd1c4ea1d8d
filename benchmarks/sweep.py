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

The sides alternate (sequential first, then sweep, ...) ``--repeats`` times. Targets (issue 16):

* ``RATIO W workers / 1 worker`` = median(one-worker wall) / median(sweep wall): how the sweep scales
  with workers on one machine; target >= 0.85 x W (1.7 for W = 2);
* ``RATIO sweep / sequential`` = median(sequential wall) / median(sweep wall): a sweep is never
  slower than the same runs one after another in one process; target >= 1.0.

Also printed: the ratio without Ray's start-up (measured separately), the share of time this
process waited for a CPU (other jobs), and the **projection** for W workers on W machines from the
one-worker sweep's own figures: Ray's start-up s0, a worker's first-trial overhead (imports, numba
compilation) s1 = first trial - median trial, and the median seconds per run t:
wall(W) = s0 + s1 + ceil(N / W) x t, speed-up(W) = wall(1) / wall(W). The ceiling is the tail (the
last round of runs leaves machines idle); s0 + s1 are paid once per sweep (in parallel on every
machine), so the curve bends once ceil(N / W) x t is no longer large beside them. Prints timings,
ratios (``grep ^RATIO``) and the projection, and asserts nothing.
"""

from __future__ import annotations

import argparse
import math
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


def on_ray(sweep: Sweep, root: Path, workers: int, seconds: list[list[float]] | None = None) -> None:
    """The sweep on a local Ray; its trials' seconds, largest first (a worker's first trial pays its imports), appended to ``seconds``."""
    report = api.run_sweep(sweep, api.open_store(root), workers=workers, progress=False)
    if report.failed:
        raise RuntimeError(report.summary())
    if seconds is not None:
        seconds.append([r.seconds for r in sorted(report.results, key=lambda r: -r.seconds)])


def projection(runs: int, startup: float, trials: list[float], workers: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> str:
    """wall(W) = s0 + s1 + ceil(N / W) x t for one worker per machine, from one worker's trial times."""
    t = median(trials[1:]) if len(trials) > 1 else trials[0]
    first = max(trials[0] - t, 0.0)  # the one worker's first trial: imports and numba compilation
    lines = [f"PROJECTION W workers on W machines: Ray start-up s0 = {startup:.1f} s, a worker's first-trial overhead "
             f"s1 = {first:.1f} s, t = {t:.1f} s per run (median of {len(trials)} trials on one worker)"]
    for n in sorted({runs, 12, 100}):
        one = startup + first + n * t
        rows = [[w, startup + first + math.ceil(n / w) * t, one / (startup + first + math.ceil(n / w) * t)] for w in workers]
        lines += [f"{n} runs:", table(["W", "wall s", "speed-up vs 1 worker"], rows)]
    return "\n".join(lines)


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
    seq, ray_side, one, one_trials = [], [], [], []
    try:
        for r in range(args.repeats):
            seq.append(timed(lambda r=r: sequential(sweep, work / f"seq-{r}")))
            print(f"sequential {r + 1}: {seq[-1].wall:.1f} s (waited for a CPU {seq[-1].wait_share:.0%})", flush=True)
            ray_side.append(timed(lambda r=r: on_ray(sweep, work / f"ray-{r}", args.workers)))
            print(f"sweep      {r + 1}: {ray_side[-1].wall:.1f} s", flush=True)
            if not args.no_one_worker:
                one.append(timed(lambda r=r: on_ray(sweep, work / f"one-{r}", 1, one_trials)))
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
    if one:
        print(f"RATIO {args.workers} workers / 1 worker = {o / w:.2f} (target >= 0.85 x {args.workers} = "
              f"{0.85 * args.workers:.2f})")
    print(f"RATIO sweep / sequential = {s / w:.2f} (target >= 1.0)")
    print(f"RATIO sweep / sequential without Ray start-up = {s / (w - startup):.2f}")
    if one_trials:
        print(projection(args.runs, startup, one_trials[len(one_trials) // 2]))


if __name__ == "__main__":
    main()
