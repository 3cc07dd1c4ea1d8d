"""The built-in demo store: honest, small training runs that need no downloads.

Four ``digits`` runs trained on the five superclasses (digits kept as subclasses, the thesis's
CIFAR-100-superclass setting in miniature), each differing from the base run in one
hyperparameter, and one ``synthclust`` run (SCIENCE.md section 4, chapter 3 data, scaled down) that records
its training dynamics for the Mechanisms page.
About two minutes on two CPU cores. Runs already complete are kept; interrupted ones are resumed.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.config import RunConfig, load_config
from backend.errors import ClusterScopeError
from backend.store import RunStore


@dataclass(frozen=True)
class DemoRun:
    run_id: str
    overrides: tuple[str, ...]
    description: str


# 20 training digits per label (200 of 1,437): with all of them every setting reaches ~99.4 % test
# accuracy and the Compare page has nothing to rank; with 20 the four runs span 87-97 % (docs/reproduction.md).
DIGITS_BASE = (
    "data.name=\"digits\"", "data.target=\"superclass\"", "data.train_per_label=20",
    "model.name=\"vgg\"", "model.stages=2", "model.convs_per_stage=2", "model.width_factor=0.5",
    "train.optimizer=\"sgd\"", "train.lr=0.05", "train.batch_size=64", "train.epochs=30", "train.seed=0",
    "train.device=\"cpu\"",
)

# Training dynamics (SCIENCE.md 3.4) of the SynthClust run, so the Mechanisms page has a run to show on a fresh
# install: every 6th of its 540 steps, 8 probe samples per cluster, the first 32 units (~0.6 M rows, ~1 s).
SYNTHCLUST_DYNAMICS = ("dynamics.enabled=true", "dynamics.every=6", "dynamics.probe_size=240", "dynamics.units=32")

DEMO_RUNS: tuple[DemoRun, ...] = (
    DemoRun("demo-digits-base", DIGITS_BASE, "small VGG (16/32 channels), SGD lr 0.05, no augmentation"),
    DemoRun("demo-digits-lr-low", DIGITS_BASE + ("train.lr=0.005",), "as base, learning rate 10x lower"),
    DemoRun("demo-digits-augment", DIGITS_BASE + ("train.augment=true",), "as base, with +-1 pixel shifts"),
    DemoRun("demo-digits-wide", DIGITS_BASE + ("model.width_factor=1.0",), "as base, twice as wide (32/64)"),
    DemoRun(
        "demo-synthclust",
        ("data.name=\"synthclust\"", "data.target=\"superclass\"", "data.synthclust.train_per_cluster=60",
         "data.synthclust.test_per_cluster=20", "model.name=\"mlp\"", "model.depth=1", "model.width=256",
         "model.batch_norm=false", "train.lr=0.05", "train.batch_size=100", "train.epochs=30",
         "train.device=\"cpu\"", *SYNTHCLUST_DYNAMICS),
        "SynthClust: 2 classes x 15 clusters in R^500; one hidden layer of 256 ReLUs; training dynamics recorded",
    ),
)


def base_overrides(data_name: str) -> tuple[str, ...]:
    """The demo's settings for a data set ("digits": the base VGG run, "synthclust": the SynthClust run), minus
    its run id and device: the Runs page's form starts from them, so a run started there is comparable to the
    demo's runs (same input setup, model size, optimizer and schedule) unless the form changes something."""
    run = next((r for r in DEMO_RUNS if f'data.name="{data_name}"' in r.overrides), None)
    if run is None:
        raise ClusterScopeError(f"the demo has no run on data set {data_name!r}; choose 'digits' or 'synthclust'.")
    return tuple(o for o in run.overrides if not o.startswith("train.device="))


def demo_configs(runs: tuple[DemoRun, ...] = DEMO_RUNS) -> list[tuple[DemoRun, RunConfig]]:
    return [(r, load_config(None, (f"run_id=\"{r.run_id}\"",) + r.overrides)) for r in runs]


def _lock_path(store: RunStore) -> Path:
    return store.demo_lock_path()


@contextmanager
def builder_lock(store: RunStore) -> Iterator[bool]:
    """Hold the store's demo lock; yields False (and holds nothing) if another builder has it."""
    store.ensure_writable()
    with open(_lock_path(store), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def builder_active(store: RunStore) -> bool:
    """Whether a demo builder holds the store's lock (read-only: works on a store we cannot write)."""
    try:
        with open(_lock_path(store), "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def missing_runs(store: RunStore, runs: tuple[DemoRun, ...] = DEMO_RUNS) -> list[str]:
    """Demo runs that are absent, not complete, or not analysed yet."""
    from backend.liveness import effective_status

    out = []
    for r in runs:
        if r.run_id not in store.run_ids() or effective_status(store.read_run(r.run_id)) != "complete" \
                or "params_hash" not in store.analysis.read_status(r.run_id):
            out.append(r.run_id)
    return out


def build_demo(store: RunStore, *, progress: bool = True, runs: tuple[DemoRun, ...] = DEMO_RUNS,
               analyze: bool = True) -> list[str]:
    """Train every demo run that is not complete yet, then analyse them; return the ids trained or resumed.

    All runs are trained before any is analysed, so learning curves show up first; the analysis
    then runs one run per core. A run that fails is reported and the builder goes on.
    """
    from backend.jobs.train import resume_run, train_run

    done: list[str] = []
    with builder_lock(store) as got_it:
        if not got_it:
            print(f"another demo builder is already working on {store.root}; nothing to do.", file=sys.stderr)
            return done
        for r, cfg in demo_configs(runs):
            try:
                if r.run_id not in store.run_ids():
                    if store.exists(r.run_id):  # a folder without run.json: a crash before the first write
                        store.delete_run(r.run_id)
                    train_run(cfg, store, progress=progress)
                elif store.run_info(r.run_id).status == "complete":
                    continue
                else:  # we hold the lock, so a 'running' demo run was left by a killed builder
                    resume_run(r.run_id, store, progress=progress, force=True)
            except ClusterScopeError as exc:
                print(f"demo run {r.run_id} failed: {exc}", file=sys.stderr)
                continue
            done.append(r.run_id)
        if analyze:
            from backend.jobs.analyse import analyze_runs

            ready = [r.run_id for r in runs if r.run_id in store.run_ids() and store.run_info(r.run_id).status == "complete"]
            analyze_runs(store, ready, jobs=min(2, os.cpu_count() or 1), progress=progress)
    return done


def spawn_builder(store: RunStore, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``clusterscope demo`` in its own process session (it outlives the caller's terminal)."""
    store.ensure_writable()
    log = log or store.demo_log_path()
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "demo", "--store", str(store.root), "--no-progress"],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=os.environ.copy(),
        )




def demo_status(store: RunStore) -> dict[str, Any]:
    """Which demo runs exist and whether a demo builder is working on the store right now."""
    present = set(store.run_ids())
    return {"runs": [r.run_id for r in DEMO_RUNS], "present": [r.run_id for r in DEMO_RUNS if r.run_id in present],
            "building": builder_active(store)}
