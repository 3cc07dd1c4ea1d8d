"""Benchmark: one snapshot's analysis on the CPU path and on a GPU (``analysis.device``), in one run.

Issue 18's GPU target: the analysis of one 100,000 x 512 snapshot at least 10x faster on a GPU than on
the CPU path, with results within the tolerances tests/test_accel.py states. This script times
:func:`backend.analysis.snapshot.analyze_snapshot` on the synthetic clustered snapshot of
benchmarks/analysis.py with ``--devices`` in turn (numba warmed up first on a small snapshot), and
prints the speed-up and how far the GPU's results are from the CPU's: the layer row's scores (class
and subclass purity, ARI, trustworthiness, c1..c4) and the ARI between the two runs' HDBSCAN labels.

    python benchmarks/device.py --n 100000 --devices cpu,cuda    # on a machine with a GPU
    python benchmarks/device.py --n 3000 --devices cpu,auto      # smoke run on a CPU-only machine

Not yet run on a GPU (docs/config.md, "Devices"). Prints ``RATIO`` lines, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import clustered_values

from backend.analysis.labels import Labels
from backend.analysis.snapshot import analyze_snapshot
from backend.config import AnalysisConfig

SCORES = ("class_purity", "subclass_purity", "ari_class", "ari_subclass", "trust_umap", "trust_pca", "c1", "c2", "c3", "c4")


def run(values: np.ndarray, fine: np.ndarray, sup: np.ndarray, device: str):
    labels = Labels(sup, fine, sup, fine, np.ones(len(values), dtype=bool))
    params = dataclasses.replace(AnalysisConfig(), device=device, max_samples=len(values))
    t0 = time.perf_counter()
    result = analyze_snapshot(values, sample_ids=np.arange(len(values)), labels=labels, params=params, depth=0)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="samples of the 512-unit snapshot")
    ap.add_argument("--devices", default="cpu,cuda", help="analysis.device values, the first the reference")
    args = ap.parse_args()
    from sklearn.metrics import adjusted_rand_score

    devices = args.devices.split(",")
    small = clustered_values(2000, seed=1)
    for device in devices:  # numba compiles (and CUDA initialises) outside the timings
        run(*small, device)
    values, fine, sup = clustered_values(args.n)
    results = {device: run(values, fine, sup, device) for device in devices}
    ref_t, ref = results[devices[0]]
    for device, (took, res) in results.items():
        diffs = {k: round(float(res.layer[k]) - float(ref.layer[k]), 4) for k in SCORES if k in res.layer}
        agree = adjusted_rand_score(ref.points["cluster"], res.points["cluster"])
        print(f"{device}: {took:.1f} s; scores minus {devices[0]}'s: {diffs}; HDBSCAN labels' ARI with {devices[0]}'s "
              f"{agree:.3f}", flush=True)
        print(f"RATIO device {devices[0]}/{device} = {ref_t / took:.2f} (target >= 10 for cpu/cuda at 100,000 x 512)")


if __name__ == "__main__":
    main()
