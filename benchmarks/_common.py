"""Helpers shared by the benchmarks: timing, synthetic images, environment line and tables.

The benchmarks are run as scripts (``python benchmarks/snapshot.py``); this module is imported
from the same folder, so it is not part of the ``backend`` package.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
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


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count only when asked (``--threads``); the default is torch's own
    choice (one per core), which is what ``clusterscope train`` uses too."""
    if threads:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds of wall-clock time: what the targets are about
    cpu: float  # seconds of CPU time of this process, all threads together

    @property
    def busy(self) -> float:
        """CPU time over wall time per torch thread: near 1.0 when this process had the cores to
        itself, well below it when other processes competed for them (the wall time is then inflated)."""
        return self.cpu / max(self.wall, 1e-9) / torch.get_num_threads()


def timed(fn: Callable[[], Any]) -> Timing:
    """Wall-clock and process CPU seconds of one call of ``fn``, after a garbage collection so that a
    collection triggered by the previous measurement does not land in this one."""
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fn()
    return Timing(time.perf_counter() - wall0, time.process_time() - cpu0)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def environment() -> str:
    return (f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table; floats are printed with 3 decimals."""
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
