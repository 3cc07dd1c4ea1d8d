"""Benchmark: training with training-dynamics recording every 10 iterations against training without it.

Target (issue 7): on the SynthClust setting, training with ``[dynamics]`` recording every 10
iterations costs at most 1.3x training without it.

Both sides run :meth:`backend.training.trainer.Trainer.fit` from identical models (same seed) on the
same data: ``record`` with a :class:`backend.training.dynamics.DynamicsRecorder` (every 10 steps, a
600-sample stratified probe batch, the first 50 units: the ``[dynamics]`` defaults) whose sink writes
every epoch's recordings through :meth:`backend.store.RunStore.write_dynamics` into a temporary store,
``plain`` without it. Each fit includes the per-epoch test evaluation, as in a run; neither side
writes snapshots, checkpoints or metrics (the same for both).

Settings (SynthClust, 2 classes x 15 clusters in R^500, noise 0.4, one hidden layer of 1000 ReLUs
without biases, Layca-SGD at lr 3^-3, as in the thesis, SCIENCE.md section 4):

* ``full-batch``: the thesis's full-batch training (here 100 training examples per cluster, 3,000
  in all, so that a sample takes seconds, not minutes): one step per epoch, so a recording every
  10 epochs.
* ``batch-100``: ``configs/synthclust_mlp.toml``'s mini-batches of 100 (30 steps per epoch, 3
  recordings per epoch). Here the probe pass is no longer small next to a step: its cost is about
  probe_size / (every x batch_size) of the training compute (600 / 1,000), so expect ~1.5x; halve
  ``dynamics.probe_size`` or double ``dynamics.every`` to halve the overhead.

Sides alternate after one warm-up each (see ``_common.paired``); medians are compared. Timings are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from backend.config import ModelConfig, SynthClustConfig, TrainConfig
from backend.data import stratified_indices
from backend.data.builtin import synthclust
from backend.store import RunStore
from backend.training.dynamics import DynamicsRecorder
from backend.training.models import build_model
from backend.training.snapshots import probe_layers
from backend.training.trainer import Trainer, to_tensor_data

try:  # run as a script: benchmarks/ is on sys.path
    from _common import add_common_args, apply_threads, environment, median, paired, table
except ModuleNotFoundError:  # run as ``python -m benchmarks.dynamics``
    from benchmarks._common import add_common_args, apply_threads, environment, median, paired, table

TARGET = 1.3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--repeats", type=int, default=3, help="timed pairs per setting")
    p.add_argument("--epochs", type=int, default=20, help="full-batch epochs per timed fit (batch-100: a tenth)")
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--probe-size", type=int, default=600)
    p.add_argument("--units", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 pair, a third of the epochs")
    args = p.parse_args()
    apply_threads(args.threads)
    budget = args.budget if args.budget is not None else (20 if args.quick else 170)
    deadline = time.monotonic() + budget
    repeats, epochs = (1, max(3, args.epochs // 3)) if args.quick else (args.repeats, args.epochs)
    print(environment())

    data = synthclust(SynthClustConfig(train_per_cluster=100, test_per_cluster=40))
    train = to_tensor_data(data.train.x, data.targets(data.train, "superclass"), data.mean, data.std)
    test = to_tensor_data(data.test.x, data.targets(data.test, "superclass"), data.mean, data.std)
    idx = stratified_indices(data.train.label, args.probe_size, seed=0)
    mcfg = ModelConfig(name="mlp", depth=1, width=1000, batch_norm=False, bias=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        (store.root / "bench").mkdir()
        for name, batch, n_epochs in (("full-batch", len(train), epochs), ("batch-100", 100, max(1, epochs // 10))):
            tcfg = TrainConfig(optimizer="layca-sgd", lr=3 ** -3, batch_size=batch, epochs=n_epochs, seed=args.seed,
                               device="cpu")

            def fit(record: bool, tcfg: TrainConfig = tcfg) -> int:
                model = build_model(mcfg, data.input_shape, 2, seed=args.seed)
                callbacks = []
                if record:
                    sink = lambda epoch, recs: store.write_dynamics("bench", epoch, recs, data.train.sample_id[idx])  # noqa: E731
                    callbacks.append(DynamicsRecorder(probe_layers(model, data.input_shape), train.x[idx], train.y[idx],
                                                      every=args.every, units=args.units, sink=sink))
                trainer = Trainer(model, train, test, tcfg, device=torch.device("cpu"), callbacks=callbacks)
                trainer.fit()
                return trainer.epoch

            fit(True), fit(False)  # warm-up
            pairs = paired(lambda: fit(True), lambda: fit(False), repeats=repeats, max_wait=args.max_wait,
                           retries=args.retries, deadline=deadline)
            rec, plain = median([t.wall for t in pairs.a]), median([t.wall for t in pairs.b])
            steps = n_epochs * -(-len(train) // batch)
            rows.append((name, batch, steps, -(-steps // args.every), rec, plain, rec / plain,
                         median([t.cpu for t in pairs.a]) / median([t.cpu for t in pairs.b])))
            for note in pairs.notes(args.max_wait, repeats):
                print(note)
    print(table(["setting", "batch", "steps", "recordings", "record s", "plain s", "ratio (wall)", "ratio (cpu)"], rows))
    for name, *_, ratio, cpu_ratio in rows:
        print(f"RATIO dynamics[{name}] record/plain = {ratio:.3f} (cpu {cpu_ratio:.3f}; target <= {TARGET} on the "
              f"thesis's full-batch setting){'' if ratio <= TARGET else '  ABOVE TARGET'}")


if __name__ == "__main__":
    main()
