"""Benchmark: the cost of one activation snapshot against a bare forward pass over the same images.

Target (issue): a snapshot of a VGG-style model over a 5,000-image 32x32 probe set costs at most
1.5x a bare forward pass over the same images (same batch size, eval mode, ``torch.no_grad``).

"Snapshot" is what a run does at a snapshot epoch, minus the checkpoint: the runner's
:class:`~backend.training.snapshots.SnapshotCallback` slices the probe set into batches and calls
:func:`~backend.training.snapshots.record` (forward pre-hooks on every ReLU, per-channel pooling,
copies to NumPy), and its sink writes every layer's activations as Parquet through
:meth:`backend.store.RunStore.write_activations` (atomic temp file + fsync + rename) into a
temporary store folder, plus the predictions file where the callback passes the logits and the
store has ``write_predictions``, as the runner's sink does. "Forward" is ``model(x)`` over the
same batches, eval mode, no_grad.

Both are measured in the same process, each warmed up once, then alternated (forward, snapshot,
snapshot, forward, ...) ``--repeats`` times; the medians are compared. A pair disturbed by other
processes (see ``--max-wait``) is measured again while the ``--budget`` lasts, and past the
budget no further pair is started. Timings are printed, never
asserted. Run ``python benchmarks/snapshot.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend.config import ModelConfig
from backend.store import RunStore
from backend.training.models import build_model
from backend.training.snapshots import SnapshotCallback, probe_layers

try:  # run as a script: benchmarks/ is on sys.path
    from _common import add_common_args, apply_threads, environment, median, paired, random_images, table, timed
except ModuleNotFoundError:  # run as ``python -m benchmarks.snapshot``
    from benchmarks._common import add_common_args, apply_threads, environment, median, paired, random_images, table, timed

TARGET = 1.5
RUN_ID = "bench-snapshot"
IN_SHAPE = (3, 32, 32)
NUM_CLASSES = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run (~20 s): 1,000 images, 2 repeats")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats of each side (default 3, quick 2)")
    p.add_argument("--images", type=int, default=None, help="probe-set size (default 5000, quick 1000)")
    p.add_argument("--batch-size", type=int, default=512, help="forward batch size of both sides (snapshots.batch_size default)")
    p.add_argument("--stages", type=int, default=4, help="VGG stages")
    p.add_argument("--convs-per-stage", type=int, default=2, help="VGG convolutions per stage")
    p.add_argument("--width-factor", type=float, default=1.0, help="VGG width factor (32*2^s channels per stage times this)")
    p.add_argument("--reduction", choices=("max", "mean"), default="max", help="snapshots.reduction")
    p.add_argument("--store", type=Path, default=None,
                   help="store folder to write into (default: a new temporary folder, deleted afterwards); "
                        "choose one on the disk your runs use, since fsync cost depends on it")
    add_common_args(p)
    args = p.parse_args(argv)
    args.budget = args.budget if args.budget is not None else (20.0 if args.quick else 170.0)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.images = args.images or (1000 if args.quick else 5000)
    return args


def main(argv: list[str] | None = None) -> float:
    started = time.monotonic()
    args = parse_args(argv)
    apply_threads(args.threads)
    device = torch.device("cpu")
    cfg = ModelConfig(name="vgg", stages=args.stages, convs_per_stage=args.convs_per_stage, width_factor=args.width_factor)
    model = build_model(cfg, IN_SHAPE, NUM_CLASSES, seed=args.seed).to(device)
    layers = probe_layers(model, IN_SHAPE)
    probe = random_images(args.images, seed=args.seed)
    probe_x = probe.x  # (n, 3, 32, 32) float32, normalised, as StoreCallbacks gives it to SnapshotCallback
    sample_ids = np.arange(args.images, dtype=np.int64)
    n_params = sum(t.numel() for t in model.parameters())

    print("ClusterScope benchmark: snapshot vs bare forward pass")
    print(environment())
    print(f"model: vgg stages={args.stages} convs_per_stage={args.convs_per_stage} width_factor={args.width_factor} "
          f"({n_params:,} parameters), {len(layers)} probe layers, {sum(la.units for la in layers)} units in all")
    print(f"probe set: {args.images} random 32x32x3 images, batch size {args.batch_size}, reduction {args.reduction!r}, "
          f"{args.repeats} repeats")

    tmp_root = None
    if args.store is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="clusterscope-bench-"))
    store = RunStore(args.store or tmp_root)
    print(f"store: {store.root}")

    model.eval()

    def forward() -> None:
        # The same batches SnapshotCallback makes, with nothing recorded.
        with torch.no_grad():
            for i in range(0, len(probe_x), args.batch_size):
                model(probe_x[i:i + args.batch_size].to(device))

    current: dict[str, float] = {}  # the snapshot being timed: record and write seconds
    per_layer: dict[str, float] = {}

    def sink(epoch: int, _model: nn.Module, acts: dict[str, np.ndarray], logits: np.ndarray | None = None) -> None:
        # What the runner's StoreCallbacks._write_snapshot does with a snapshot, minus the checkpoint
        # and the run.json update: one activations file per layer and, where the callback hands over
        # the logits and the store writes them, the predictions file.
        entered = time.perf_counter()
        current["record"] = entered - current["start"]
        for layer, values in acts.items():
            t0 = time.perf_counter()
            store.write_activations(RUN_ID, layer, epoch, sample_ids, values, reduction=args.reduction)
            per_layer[layer] = time.perf_counter() - t0
        current["write"] = time.perf_counter() - entered
        current["predictions"] = 0.0
        if logits is not None and hasattr(store, "write_predictions"):
            t0 = time.perf_counter()
            store.write_predictions(RUN_ID, epoch, sample_ids, logits, probe.y.numpy())
            current["predictions"] = time.perf_counter() - t0

    callback = SnapshotCallback(layers, probe_x, epochs=(), reduction=args.reduction, batch_size=args.batch_size, sink=sink)
    epoch_counter = iter(range(10**6))

    def snapshot() -> tuple[float, float, dict[str, float]]:
        current.clear()
        per_layer.clear()
        current["start"] = time.perf_counter()
        callback.on_epoch_end(next(epoch_counter), model, {}, final=True)
        return current["record"], current["write"], dict(per_layer), current["predictions"]

    try:
        # Warm-up: one full pass of each (allocator, oneDNN kernels, pyarrow/zstd, folder creation).
        warm_forward, warm_snapshot = timed(forward), timed(snapshot)
        print(f"warm-up: forward {warm_forward.wall:.2f} s, snapshot {warm_snapshot.wall:.2f} s (not counted)", flush=True)
        pairs = paired(forward, snapshot, repeats=args.repeats, max_wait=args.max_wait, retries=args.retries,
                       deadline=started + args.budget)
        fwd, snap = pairs.a, pairs.b

        # Sanity check: the last snapshot wrote every layer with the right shape.
        last_epoch = next(epoch_counter) - 1
        for layer in layers:
            ids, values = store.read_activations(RUN_ID, layer.name, last_epoch)
            assert values.shape == (args.images, layer.units) and ids.shape == (args.images,), (layer.name, values.shape)
        disk = {la.name: store.activation_path(RUN_ID, la.name, last_epoch).stat().st_size for la in layers}
    finally:
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)

    rec = [t.value[0] for t in snap]
    write = [t.value[1] for t in snap]
    preds = [t.value[3] for t in snap]
    rows = [[r + 1, fwd[r].wall, snap[r].wall, rec[r], write[r], snap[r].wall / fwd[r].wall,
             f"{fwd[r].wait_share:.0%}/{snap[r].wait_share:.0%}"] for r in range(len(fwd))]
    m_fwd, m_snap = median([t.wall for t in fwd]), median([t.wall for t in snap])
    m_rec, m_write = median(rec), median(write)
    rows.append(["median", m_fwd, m_snap, m_rec, m_write, m_snap / m_fwd, ""])
    print()
    print(table(["repeat", "forward s", "snapshot s", "  record s", "  write s", "snapshot/forward", "wait f/s"], rows))
    print("(wait = share of the process's thread time spent waiting for a CPU; high means other processes were busy)")

    print()
    print("breakdown of the snapshot (medians):")
    print(table(
        ["part", "seconds", "share of snapshot", "vs forward"],
        [["record(): forward + hooks + pooling", m_rec, f"{m_rec / m_snap:.1%}", f"{m_rec / m_fwd:.3f}x"],
         ["  of which hooks + pooling + copies", m_rec - m_fwd, f"{(m_rec - m_fwd) / m_snap:.1%}", f"{(m_rec - m_fwd) / m_fwd:+.1%}"],
         ["Parquet writes (all layers)", m_write, f"{m_write / m_snap:.1%}", f"{m_write / m_fwd:+.1%}"],
         ["predictions file (if written)", median(preds), f"{median(preds) / m_snap:.1%}", f"{median(preds) / m_fwd:+.1%}"]],
    ))
    print("(the hooks line is record minus the separately timed forward pass, so it carries the noise of both)")
    print()
    print("Parquet writes per layer (medians):")
    print(table(["layer", "units", "file MB", "write ms"],
                [[la.name, la.units, f"{disk[la.name] / 1e6:.2f}", f"{1e3 * median([t.value[2][la.name] for t in snap]):.1f}"]
                 for la in layers]))
    print()
    print(f"throughput: forward {args.images / m_fwd:,.0f} images/s, snapshot {args.images / m_snap:,.0f} images/s")
    cpu_ratio = median([t.cpu for t in snap]) / median([t.cpu for t in fwd])
    best_ratio = min(t.wall for t in snap) / min(t.wall for t in fwd)
    paired_ratio = median([s.wall / f.wall for s, f in zip(snap, fwd, strict=True)])
    print(f"other estimators: best-of-{len(fwd)} ratio {best_ratio:.2f}, median of paired ratios {paired_ratio:.2f}, "
          f"CPU-time ratio {cpu_ratio:.2f}; wall time of the benchmark {time.monotonic() - started:.0f} s")
    for note in pairs.notes(args.max_wait, args.repeats):
        print(note)
    ratio = m_snap / m_fwd
    print(f"RATIO snapshot/forward = {ratio:.2f} (target <= {TARGET})")
    return ratio


if __name__ == "__main__":
    main()
