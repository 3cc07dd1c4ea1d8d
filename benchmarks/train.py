"""Benchmark: our trainer's epoch time against a bare hand-written torch loop.

Target (issue): an epoch of :class:`backend.training.trainer.Trainer` takes at most 1.1x an epoch of
a bare torch loop on the same model and data.

Two comparisons per setting, each against its own bare counterpart:

* ``train_epoch``: ``Trainer.train_epoch(epoch)`` alone (per-epoch reseeding, randperm shuffle,
  forward, cross_entropy, zero_grad, backward, SGD step, running loss/accuracy) against a bare loop
  doing randperm, forward, cross_entropy, zero_grad, backward, step.
* ``fit epoch``: one epoch of ``Trainer.fit()`` (``train_epoch`` + ``evaluate`` on the test split +
  the end-of-epoch bookkeeping, no callbacks) against the bare loop followed by the same
  eval-mode test pass (batches of 1024, summed cross-entropy and accuracy).

Settings: ``vgg`` (a VGG on random 32x32x3 images from ``torch.manual_seed``) and ``mlp-digits``
(the default MLP on scikit-learn's digits, ``backend.data.builtin.digits()``). Both sides get
identical models (same seed), the same data, batch size 128 and SGD with momentum 0.9. Runs
alternate (ours, bare, bare, ours, ...) after one warm-up each, and medians are compared; a pair
disturbed by other processes (see ``--max-wait``) is measured again while the ``--budget`` lasts,
and past the budget no further pair is started.
A "sample" is a block of ``epochs per sample`` epochs, divided by that number, so that the tiny
digits epochs are long enough to time. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backend.config import ModelConfig, TrainConfig
from backend.data.builtin import digits
from backend.training.models import build_model
from backend.training.trainer import TensorData, Trainer, to_tensor_data

try:  # run as a script: benchmarks/ is on sys.path
    from _common import add_common_args, apply_threads, environment, median, paired, random_images, table
except ModuleNotFoundError:  # run as ``python -m benchmarks.train``
    from benchmarks._common import add_common_args, apply_threads, environment, median, paired, random_images, table

TARGET = 1.1
EVAL_BATCH = 1024  # evaluate()'s default, used by fit()


@dataclass(frozen=True)
class Setting:
    name: str
    model: ModelConfig
    train: TensorData
    test: TensorData
    in_shape: tuple[int, ...]
    num_classes: int
    epochs_per_sample: int
    description: str


def vgg_setting(n_train: int, n_test: int, epochs_per_sample: int, seed: int) -> Setting:
    model = ModelConfig(name="vgg", stages=3, convs_per_stage=2, width_factor=0.5)
    train = random_images(n_train, seed=seed)
    test = random_images(n_test, seed=seed + 1)
    return Setting("vgg", model, train, test, (3, 32, 32), 10, epochs_per_sample,
                   f"VGG stages=3 convs_per_stage=2 width_factor=0.5, random 32x32x3 images, {n_train} train / {n_test} test")


def mlp_digits_setting(epochs_per_sample: int) -> Setting:
    data = digits()
    train = to_tensor_data(data.train.x, data.train.label, data.mean, data.std)
    test = to_tensor_data(data.test.x, data.test.label, data.mean, data.std)
    model = ModelConfig(name="mlp")  # depth 2, width 128, batch norm: the digits default
    return Setting("mlp-digits", model, train, test, data.input_shape, 10, epochs_per_sample,
                   f"MLP depth=2 width=128 batch_norm, digits {len(train)} train / {len(test)} test (8x8)")


class BareLoop:
    """The hand-written reference: nothing but what an epoch of SGD needs."""

    def __init__(self, model: nn.Module, train: TensorData, test: TensorData, *, lr: float, momentum: float,
                 batch_size: int, seed: int) -> None:
        self.model, self.train, self.test, self.batch_size = model, train, test, batch_size
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        self.gen = torch.Generator().manual_seed(seed)

    def train_epoch(self) -> None:
        model, x, y, bs = self.model, self.train.x, self.train.y, self.batch_size
        model.train()
        perm = torch.randperm(len(y), generator=self.gen)
        for i in range(0, len(y), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    @torch.no_grad()
    def evaluate_test(self) -> tuple[float, float]:
        model, x, y = self.model, self.test.x, self.test.y
        model.eval()
        loss_sum, correct = 0.0, 0
        for i in range(0, len(y), EVAL_BATCH):
            out = model(x[i:i + EVAL_BATCH])
            loss_sum += float(F.cross_entropy(out, y[i:i + EVAL_BATCH], reduction="sum"))
            correct += int((out.argmax(1) == y[i:i + EVAL_BATCH]).sum())
        model.train()
        return loss_sum / len(y), correct / len(y)

    def fit_epoch(self) -> None:
        self.train_epoch()
        self.evaluate_test()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run (~20-30 s): 640 VGG images, fewer repeats and epochs")
    p.add_argument("--repeats", type=int, default=None, help="VGG: timed samples per side and comparison (default 3, quick 2)")
    p.add_argument("--mlp-repeats", type=int, default=None,
                   help="digits MLP: timed samples per side and comparison (default 9, quick 3); its epochs are short, "
                        "so more samples are cheap and its ratio is noisier")
    p.add_argument("--settings", default="mlp-digits,vgg", help="comma-separated, in this order: mlp-digits, vgg")
    p.add_argument("--vgg-train", type=int, default=None, help="VGG training images (default 5000, quick 640)")
    p.add_argument("--vgg-test", type=int, default=None, help="VGG test images (default 1000, quick 128)")
    p.add_argument("--mlp-epochs", type=int, default=None, help="digits epochs per timed sample (default 20, quick 5)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (momentum is 0.9)")
    add_common_args(p)
    args = p.parse_args(argv)
    args.budget = args.budget if args.budget is not None else (20.0 if args.quick else 170.0)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.vgg_train = args.vgg_train or (640 if args.quick else 5000)
    args.vgg_test = args.vgg_test or (128 if args.quick else 1000)
    args.mlp_epochs = args.mlp_epochs or (5 if args.quick else 20)
    args.mlp_repeats = args.mlp_repeats or (3 if args.quick else 9)
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = set(args.settings) - {"vgg", "mlp-digits"}
    if unknown:
        p.error(f"unknown setting(s) {sorted(unknown)}; choose from vgg, mlp-digits")
    return args


def run_setting(s: Setting, args: argparse.Namespace, repeats: int, started: float) -> list[list[object]]:
    cfg = TrainConfig(optimizer="sgd", lr=args.lr, momentum=0.9, batch_size=args.batch_size, epochs=1, seed=args.seed,
                      device="cpu")
    device = torch.device("cpu")
    ours_model = build_model(s.model, s.in_shape, s.num_classes, seed=args.seed)
    bare_model = build_model(s.model, s.in_shape, s.num_classes, seed=args.seed)
    assert all(torch.equal(p, q) for p, q in zip(ours_model.state_dict().values(), bare_model.state_dict().values(), strict=True))
    trainer = Trainer(ours_model, s.train, s.test, cfg, device=device)
    bare = BareLoop(bare_model, s.train, s.test, lr=args.lr, momentum=0.9, batch_size=args.batch_size, seed=args.seed)
    k = s.epochs_per_sample
    n_batches = -(-len(s.train) // args.batch_size)
    print(f"\n== {s.name}: {s.description}; batch {args.batch_size}, {n_batches} batches/epoch, "
          f"{sum(t.numel() for t in ours_model.parameters()):,} parameters, {k} epoch(s) per sample, {repeats} repeats")

    epoch = iter(range(1, 10**6))

    def ours_train() -> None:
        for _ in range(k):
            trainer.train_epoch(next(epoch))

    def bare_train() -> None:
        for _ in range(k):
            bare.train_epoch()

    def ours_fit() -> None:
        # fit() trains from trainer.epoch to cfg.epochs: extend the run by k epochs (no callbacks here).
        trainer.cfg = dataclasses.replace(trainer.cfg, epochs=trainer.epoch + k)
        trainer.fit()

    def bare_fit() -> None:
        for _ in range(k):
            bare.fit_epoch()

    # Warm-up: one epoch of each side. fit()'s first call also does its epoch-0 evaluation of both splits.
    trainer.train_epoch(0)
    bare.train_epoch()
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=1)
    trainer.fit()
    bare.evaluate_test()
    bare.fit_epoch()

    results = []
    for mode, ours, ref in (("train_epoch", ours_train, bare_train), ("fit epoch", ours_fit, bare_fit)):
        pairs = paired(ours, ref, repeats=repeats, per=k, max_wait=args.max_wait, retries=args.retries,
                       deadline=started + args.budget)
        a, b = pairs.a, pairs.b
        rows = [[r + 1, a[r].wall, b[r].wall, a[r].wall / b[r].wall, f"{a[r].wait_share:.0%}/{b[r].wait_share:.0%}"]
                for r in range(len(a))]
        ma, mb = median([t.wall for t in a]), median([t.wall for t in b])
        rows.append(["median", ma, mb, ma / mb, ""])
        print(f"\n{mode} (seconds per epoch)")
        print(table(["repeat", "ours s", "bare s", "ours/bare", "wait o/b"], rows))
        best = min(t.wall for t in a) / min(t.wall for t in b)
        paired_ratio = median([x.wall / y.wall for x, y in zip(a, b, strict=True)])
        print(f"overhead {1e3 * (ma - mb):+.2f} ms/epoch = {1e6 * (ma - mb) / n_batches:+.0f} us/batch; "
              f"best-of-{len(a)} ratio {best:.3f}, median of paired ratios {paired_ratio:.3f}")
        for note in pairs.notes(args.max_wait, repeats):
            print(note)
        print(f"RATIO {mode.replace(' ', '_')} ours/bare [{s.name}] = {ma / mb:.3f} (target <= {TARGET})", flush=True)
        results.append([s.name, mode, ma, mb, ma / mb, best, paired_ratio, f"{pairs.disturbed}/{len(a)}"])
    return results


def main(argv: list[str] | None = None) -> float:
    started = time.monotonic()
    args = parse_args(argv)
    apply_threads(args.threads)
    print("ClusterScope benchmark: Trainer epoch vs bare torch loop")
    print(environment())
    results: list[list[object]] = []
    for name in args.settings:
        if name == "vgg":
            setting, repeats = vgg_setting(args.vgg_train, args.vgg_test, 1, args.seed), args.repeats
        else:
            setting, repeats = mlp_digits_setting(args.mlp_epochs), args.mlp_repeats
        results += run_setting(setting, args, repeats, started)
    print("\nsummary (medians, seconds per epoch)")
    print(table(["setting", "mode", "ours s", "bare s", "ours/bare", "best-of ratio", "paired ratio", "disturbed pairs"], results))
    print(f"wall time of the benchmark {time.monotonic() - started:.0f} s")
    worst = max(float(r[4]) for r in results)  # type: ignore[arg-type]
    print(f"RATIO worst ours/bare = {worst:.3f} (target <= {TARGET})")
    return worst


if __name__ == "__main__":
    main()
