"""The demo builder: builds missing runs, keeps complete ones, resumes runs left by a killed builder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend import api
from backend.jobs.demo import DemoRun, build_demo, builder_active, builder_lock, missing_runs
from backend.liveness import process_alive
from tests.conftest import TINY

RUNS = (
    DemoRun("demo-a", (*TINY, "train.epochs=1", "snapshots.epochs=[1]"), "tiny a"),
    DemoRun("demo-b", (*TINY, "train.epochs=2", "train.lr=0.01", "snapshots.epochs=[2]"), "tiny b"),
)


def test_build_keep_and_resume(store: api.RunStore) -> None:
    assert missing_runs(store, RUNS) == ["demo-a", "demo-b"]
    assert build_demo(store, progress=False, runs=RUNS, analyze=False) == ["demo-a", "demo-b"]
    assert missing_runs(store, RUNS) == ["demo-a", "demo-b"]  # trained, not analysed yet
    assert build_demo(store, progress=False, runs=RUNS, analyze=False) == []  # complete runs are kept
    # A builder killed by `docker stop` leaves a 'running' run whose pid may look alive: resume it.
    store.update_run("demo-b", status="running", pid=1, host="another-container", epochs_completed=1)
    assert api.read_run(store, "demo-b")["status"] == "running"  # another host: the file is trusted
    assert build_demo(store, progress=False, runs=RUNS, analyze=False) == ["demo-b"]
    assert api.read_run(store, "demo-b")["status"] == "complete"


def test_a_failing_run_does_not_stop_the_others(store: api.RunStore) -> None:
    store.ensure_writable()
    (store.root / "demo-a").mkdir()
    (store.root / "demo-a" / "run.json").write_text("{corrupt")
    assert build_demo(store, progress=False, runs=RUNS, analyze=False) == ["demo-b"]


def test_lock_is_exclusive_and_visible(store: api.RunStore) -> None:
    assert not builder_active(store)
    with builder_lock(store) as got:
        assert got and builder_active(store)
        assert build_demo(store, progress=False, runs=RUNS, analyze=False) == []  # a second builder backs off
    assert not builder_active(store)


def test_liveness_of_recorded_processes() -> None:
    import socket

    host = socket.gethostname()
    assert not process_alive({"pid": os.getpid(), "host": host})  # our own pid: a stale record
    assert not process_alive({"pid": 2**22 + 12345, "host": host})  # no such process
    assert process_alive({"pid": 1, "host": "elsewhere"})
    parent = os.getppid()
    from backend.liveness import process_start_time

    assert process_alive({"pid": parent, "host": host, "pid_start": process_start_time(parent)})
    assert not process_alive({"pid": parent, "host": host, "pid_start": -1})  # pid reused by another process
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits at once; not waited for: a zombie
    record = {"pid": child.pid, "host": host, "pid_start": process_start_time(child.pid)}
    for _ in range(200):
        if Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not process_alive(record)  # a zombie has exited: its claim or run is stale
    child.wait()


def test_demo_build_analyses_runs_in_worker_processes(store: api.RunStore) -> None:
    build_demo(store, progress=False, runs=RUNS)  # two runs: analysed by a pool of two spawned workers
    assert missing_runs(store, RUNS) == []
    for run_id in ("demo-a", "demo-b"):
        layers = api.read_analysis(store, run_id, "layers")
        assert len(layers) == 2 and layers["class_purity"].notna().all()


@pytest.mark.slow
def test_the_demo_digits_runs_differ_in_test_accuracy(store: api.RunStore) -> None:
    """Issue 12: the Compare page needs runs that differ. The four demo digits runs, trained as the demo
    trains them (only fewer snapshots), span at least 3 points of test accuracy with no two tied, while
    each fits its training data: the three without augmentation at >= 99 %, the one trained on shifted copies at
    >= 95 %. torch's CPU kernels differ from one processor to another, and over 120 SGD steps at lr 0.05 the
    augmented run is the one whose last epoch moves: 99.5-100 % on one machine, 96 % on another (an AMD EPYC;
    docs/reproduction.md, "The demo store")."""
    from backend.jobs.demo import DEMO_RUNS, demo_configs

    digits = tuple(r for r in DEMO_RUNS if r.run_id.startswith("demo-digits"))
    accuracy = {}
    for r, cfg in demo_configs(tuple(DemoRun(r.run_id, (*r.overrides, "snapshots.epochs=[30]", "snapshots.checkpoints=false"),
                                             r.description) for r in digits)):
        api.train(cfg, store, progress=False)
        m = store.read_metrics(r.run_id)
        last = m[m["epoch"] == m["epoch"].max()].set_index("split")["accuracy"]
        assert last["train"] >= (0.95 if "train.augment=true" in r.overrides else 0.99), (r.run_id, last["train"])
        accuracy[r.run_id] = last["test"]
    assert len(accuracy) == 4 and len(set(accuracy.values())) == 4, accuracy
    assert max(accuracy.values()) - min(accuracy.values()) >= 0.03, accuracy
