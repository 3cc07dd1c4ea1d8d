"""Helpers shared by the benchmarks: timing, synthetic images, environment line and tables.

The benchmarks are run as scripts (``python benchmarks/snapshot.py``); this module is imported
from the same folder, so it is not part of the ``backend`` package.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from backend.training.trainer import TensorData, to_tensor_data

# CIFAR-10-like channel statistics: the normalisation is what matters, not the exact values.
IMAGE_MEAN = (0.49, 0.48, 0.45)
IMAGE_STD = (0.25, 0.24, 0.26)


def random_images(n: int, *, seed: int, num_classes: int = 10, shape: tuple[int, int, int] = (3, 32, 32)) -> TensorData:
    """``n`` uniformly random uint8 images and labels from ``torch.manual_seed(seed)``, normalised
    by :func:`backend.training.trainer.to_tensor_data` exactly as a run normalises its data."""
    torch.manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8).numpy()
    y = torch.randint(0, num_classes, (n,)).numpy()
    return to_tensor_data(x, y, IMAGE_MEAN, IMAGE_STD)


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N); default: leave torch's choice (one per core), as `clusterscope train` does. "
                        "1 is far less sensitive to other processes on a shared machine")
    p.add_argument("--max-wait", type=float, default=0.05,
                   help="remeasure a pair when a side spent more than this share of its thread time waiting for a CPU")
    p.add_argument("--retries", type=int, default=2, help="remeasurements allowed per pair")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds after the start past which no pair is remeasured and no further pair is started "
                        "(when not given: 170, with --quick 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random data and of the models")


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count only when asked (``--threads``); the default is torch's own
    choice (one per core), which is what ``clusterscope train`` uses too."""
    if threads:
        torch.set_num_threads(threads)


def _sched() -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable but waiting for a CPU), summed over this process's
    threads, from Linux's /proc/self/task/*/schedstat; None where that is not available."""
    run = wait = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat") as fh:
                fields = fh.read().split()
        except OSError:  # a thread that ended meanwhile
            continue
        run, wait = run + int(fields[0]), wait + int(fields[1])
    return run / 1e9, wait / 1e9


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds of wall-clock time: what the targets are about
    cpu: float  # seconds of CPU time of this process, all threads together
    waited: float | None  # thread-seconds this process was runnable but had no CPU (Linux only)
    value: Any = None  # what the timed function returned

    @property
    def wait_share(self) -> float:
        """Share of this process's thread time spent waiting for a CPU: about 0 on a quiet machine,
        large when other processes competed for the cores (the wall time is then inflated, and with
        several torch threads far more than in proportion). NaN where not measurable."""
        if self.waited is None:
            return float("nan")
        return self.waited / max(self.waited + self.cpu, 1e-9)

    def per(self, k: int) -> Timing:
        """This timing divided by ``k`` (a block of ``k`` epochs -> one epoch)."""
        return Timing(self.wall / k, self.cpu / k, None if self.waited is None else self.waited / k, self.value)


def timed(fn: Callable[[], Any]) -> Timing:
    """Wall-clock, CPU and run-queue wait seconds of one call of ``fn``, after a garbage collection
    so that a collection triggered by the previous measurement does not land in this one."""
    gc.collect()
    s0 = _sched()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    value = fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    s1 = _sched()
    waited = s1[1] - s0[1] if s0 is not None and s1 is not None else None
    return Timing(wall, cpu, waited, value)


@dataclass(frozen=True)
class Pairs:
    """What :func:`paired` measured. Unpacks as ``a, b, disturbed`` as well (what it used to return)."""

    a: list[Timing]  # per repeat, each divided by ``per``
    b: list[Timing]
    disturbed: int  # kept pairs still over max_wait
    skipped: int = 0  # repeats not measured because the budget ran out

    def __iter__(self) -> Iterator[Any]:
        return iter((self.a, self.b, self.disturbed))

    def notes(self, max_wait: float, repeats: int) -> list[str]:
        out = []
        if self.disturbed:
            out.append(contention_note(self.disturbed, max_wait))
        if self.skipped:
            out.append(f"NOTE: only {repeats - self.skipped} of {repeats} pairs measured: the --budget ran out.")
        return out


def contention_note(disturbed: int, max_wait: float) -> str:
    """A warning about ``disturbed`` pairs, or an empty string when there are none."""
    if not disturbed:
        return ""
    return (f"WARNING: {disturbed} kept pair(s) spent over {max_wait:.0%} of their thread time waiting for a CPU: "
            "other processes were busy, so these timings (and ratios) are unreliable. Rerun on a quiet machine, "
            "or with --threads 1, which suffers much less from competing processes.")


def paired(a: Callable[[], Any], b: Callable[[], Any], *, repeats: int, per: int = 1, max_wait: float, retries: int,
           deadline: float) -> Pairs:
    """Up to ``repeats`` pairs of timings of ``a`` and ``b``, in the order ab, ba, ab, ... so that
    slow drifts hit both sides alike.

    A pair in which either side spent more than ``max_wait`` of its thread time waiting for a CPU
    (another process was busy) is measured again, up to ``retries`` times and only while another
    attempt would end before ``deadline`` (a time.monotonic() value); the least disturbed attempt
    is kept. Once ``deadline`` has passed, no further pair is started (at least one is always
    measured), which bounds the run time on a busy machine, where everything runs many times slower.
    """
    out_a: list[Timing] = []
    out_b: list[Timing] = []
    disturbed = 0
    for r in range(repeats):
        if r > 0 and time.monotonic() > deadline:
            return Pairs(out_a, out_b, disturbed, repeats - r)
        best: tuple[float, Timing, Timing] | None = None
        for attempt in range(retries + 1):
            if r % 2 == 0:
                ta = timed(a)
                tb = timed(b)
            else:
                tb = timed(b)
                ta = timed(a)
            worst = max(ta.wait_share, tb.wait_share)
            if best is None or worst < best[0]:
                best = (worst, ta, tb)
            if not worst > max_wait or attempt == retries or time.monotonic() + ta.wall + tb.wall > deadline:
                break  # quiet enough (or not measurable), or out of tries, or another try would end past the deadline
            print(f"  (pair {r + 1}: {worst:.0%} of thread time spent waiting for a CPU; measuring again)", flush=True)
        assert best is not None
        disturbed += best[0] > max_wait
        out_a.append(best[1].per(per))
        out_b.append(best[2].per(per))
    return Pairs(out_a, out_b, disturbed, 0)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def environment() -> str:
    return (f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table; floats are printed with 4 significant digits."""
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
