"""Faults (issue 13): interrupted runs, concurrent starts, divergence, corrupt files, bad values."""

from __future__ import annotations

import contextlib
import errno
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend import api
from backend.store import RunStore
from tests.conftest import tiny_config

# A few hundred vectors: a run takes well under a second.
SMALL = ('data.name="synthclust"', "data.synthclust.dim=40", "data.synthclust.clusters_per_class=3",
         "data.synthclust.active_per_centroid=4", "data.synthclust.train_per_cluster=20",
         "data.synthclust.test_per_cluster=5", "model.width=8")
ONE_EPOCH = (*SMALL, "train.epochs=1", "snapshots.epochs=[0, 1]", "snapshots.checkpoints=true")


class FaultyStore(RunStore):
    """The real store, with one fault injected in place of its ``at``-th write (1-based): Ctrl-C
    (KeyboardInterrupt), or a full disk (OSError ENOSPC). ``at=0``: no fault; ``writes`` counts them."""

    def __init__(self, root: Any, at: int = 0, fault: type[BaseException] | None = KeyboardInterrupt) -> None:
        super().__init__(root)
        self.at, self.fault, self.writes = at, fault, 0
        self.paused, self.go = threading.Event(), threading.Event()  # fault None: pause there until go

    def _tick(self) -> None:
        self.writes += 1
        if self.writes == self.at and self.fault is None:
            self.paused.set()
            self.go.wait(timeout=120)
        elif self.writes == self.at:
            raise self.fault(errno.ENOSPC, "No space left on device") if self.fault is OSError else self.fault()

    def write_run(self, run_id: str, info: dict[str, Any]) -> None:
        self._tick()
        super().write_run(run_id, info)

    def _write_table(self, path: Any, table: Any) -> None:
        self._tick()
        super()._write_table(path, table)

    def _save_torch(self, path: Any, obj: dict[str, Any]) -> Any:  # type: ignore[override]
        self._tick()
        return RunStore._save_torch(path, obj)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models train faster on one thread than on a machine shared by many."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same_run(store: RunStore, run_id: str, twin: RunStore) -> None:
    m, t = store.read_metrics(run_id), twin.read_metrics("r")
    assert len(m) == len(t) == 4, m  # epochs 0 and 1, train and test
    assert m[["epoch", "split", "loss", "accuracy"]].equals(t[["epoch", "split", "loss", "accuracy"]])
    assert store.read_run(run_id)["recorded_epochs"] == [0, 1]
    for layer in ("fc1.relu", "fc2.relu"):
        for epoch in (0, 1):
            np.testing.assert_array_equal(store.read_activations(run_id, layer, epoch)[1],
                                          twin.read_activations("r", layer, epoch)[1])


def test_resume_after_ctrl_c_at_every_write_of_the_first_epoch(tmp_path: Any) -> None:
    """Stop a run at each write from its creation to the end of epoch 1, resume it (twice, the first
    resume stopped too where it can be), and find exactly the uninterrupted run: no repeated rows."""
    twin = FaultyStore(tmp_path / "twin")
    api.train(tiny_config('run_id="r"', *ONE_EPOCH), twin, progress=False)
    _interrupt_and_resume(tmp_path, twin, range(2, twin.writes + 1), KeyboardInterrupt)


def test_resume_after_a_full_disk(tmp_path: Any) -> None:
    twin = FaultyStore(tmp_path / "twin")
    api.train(tiny_config('run_id="r"', *ONE_EPOCH), twin, progress=False)
    _interrupt_and_resume(tmp_path, twin, (3, twin.writes // 2 + 1, twin.writes - 2), OSError)


def _interrupt_and_resume(tmp_path: Any, twin: RunStore, points: Any, fault: type[BaseException]) -> None:
    for at in points:  # write 1 creates run.json: before it there is no run to resume
        store = FaultyStore(tmp_path / f"s{at}", at=at, fault=fault)
        with pytest.raises(fault):
            api.train(tiny_config('run_id="r"', *ONE_EPOCH), store, progress=False)
        if store.read_run("r")["status"] == "complete":
            continue  # the fault hit the last status write only
        store.at, store.writes = 3, 0  # the first resume is stopped as well, after writing something
        with contextlib.suppress(fault):
            api.resume("r", store, progress=False)
        if store.read_run("r")["status"] != "complete":
            store.at = 0
            api.resume("r", store, progress=False)
        assert store.read_run("r")["status"] == "complete", at
        _same_run(store, "r", twin)


def test_resume_removes_the_temporary_files_a_killed_trainer_left(tmp_path: Any) -> None:
    """A trainer killed with SIGKILL in the middle of a write leaves its ``.<name>.*.tmp`` (the rename never
    came): the resume, holding the run's lock, removes them, and leaves an analysis's own ones alone."""
    store = FaultyStore(tmp_path / "s", at=6)
    with pytest.raises(KeyboardInterrupt):
        api.train(tiny_config('run_id="r"', *ONE_EPOCH), store, progress=False)
    run = store.root / "r"
    killed = [run / ".metrics.parquet.k1ll3d.tmp", run / ".run.json.k1ll3d.tmp",
              run / "activations" / "fc1.relu" / ".epoch=0001.parquet.k1ll3d.tmp"]
    analysing = run / "analysis" / ".status.json.w0rk1n.tmp"
    for path in (*killed, analysing):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    store.at = 0
    api.resume("r", store, progress=False)
    assert store.read_run("r")["status"] == "complete"
    assert [p for p in killed if p.exists()] == [] and analysing.exists()


def test_incremental_analysis_equals_one_shot(tmp_path: Any) -> None:
    """Analysing epochs 0-1 now and epoch 2 later (as while a run trains) gives the same files as
    analysing all at once: the stored layout that seeds the next fit is read back C-ordered."""
    import shutil

    from backend.config import AnalysisConfig

    params = AnalysisConfig(n_neighbors=8, umap_epochs=30, cluster_epochs=30, pca_components=8, trust_k=3)
    once = RunStore(tmp_path / "once")
    api.train(tiny_config('run_id="r"', *SMALL, "train.epochs=2", "snapshots.epochs=[0, 1, 2]"), once, progress=False)
    later = RunStore(tmp_path / "later")
    shutil.copytree(once.root, later.root)
    hidden = tmp_path / "hidden"
    for layer in ("fc1.relu", "fc2.relu"):
        (hidden / layer).mkdir(parents=True)
        shutil.move(later.activation_path("r", layer, 2), hidden / layer)
    assert not api.analyze(later, "r", params).errors
    for layer in ("fc1.relu", "fc2.relu"):
        shutil.move(hidden / layer / "epoch=0002.parquet", later.activation_path("r", layer, 2))
    report = api.analyze(later, "r", params)
    assert report.analysed == [("fc1.relu", 2), ("fc2.relu", 2)] and not report.errors
    assert not api.analyze(once, "r", params).errors
    for layer in ("fc1.relu", "fc2.relu"):
        for table in ("points", "layers"):
            a = once.analysis.read("r", table, layer, 2).drop(columns=["seconds"], errors="ignore")
            b = later.analysis.read("r", table, layer, 2).drop(columns=["seconds"], errors="ignore")
            assert a.equals(b), (layer, table)
    assert once.analysis.read("r", "network").equals(later.analysis.read("r", "network"))


def test_a_second_resume_of_a_run_in_training_is_refused(tmp_path: Any) -> None:
    """While one resume trains (paused in the middle of a write), a second resume of the same run is
    refused with a clear message instead of training into the same folder."""
    from backend.errors import StoreError

    store = FaultyStore(tmp_path / "s", at=5)
    with pytest.raises(KeyboardInterrupt):
        api.train(tiny_config('run_id="r"', *ONE_EPOCH), store, progress=False)
    store.at, store.writes, store.fault = 4, 0, None
    first = threading.Thread(target=api.resume, args=("r", store), kwargs={"progress": False})
    first.start()
    try:
        assert store.paused.wait(timeout=120)
        with pytest.raises(StoreError, match="'r' is being trained by another process right now; wait"):
            api.resume("r", RunStore(store.root), progress=False)
    finally:
        store.go.set()
        first.join(timeout=120)
    assert store.read_run("r")["status"] == "complete" and len(store.read_metrics("r")) == 4


def test_a_killed_trainer_leaves_no_lock_behind(tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    from backend.errors import StoreError

    store = FaultyStore(tmp_path / "s", at=5)
    with pytest.raises(KeyboardInterrupt):
        api.train(tiny_config('run_id="r"', *ONE_EPOCH), store, progress=False)
    holder = ("import sys, time; from backend.store import RunStore; "
              "lock = RunStore(sys.argv[1]).lock_run('r'); lock.__enter__(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(store.root)], stdout=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="being trained by another process"):
            api.resume("r", RunStore(store.root), progress=False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # an unclosed pipe is a ResourceWarning, an error in this suite
    api.resume("r", RunStore(store.root), progress=False)  # the OS released the dead holder's lock
    assert store.read_run("r")["status"] == "complete" and len(store.read_metrics("r")) == 4


def test_two_launches_in_the_same_second_get_two_runs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two dashboard launches with generated ids, at once: two ids, and both runs train to the end."""
    import os

    monkeypatch.setenv("CLUSTERSCOPE_MAX_JOBS", "2")  # the page's job cap (one per two cores) would refuse the second
    store = RunStore(tmp_path / "s")
    overrides = [*SMALL, "train.epochs=1", "snapshots.epochs=[1]", "analysis.auto=false", 'train.device="cpu"']
    jobs = [api.launch_training(store, overrides) for _ in range(2)]
    assert jobs[0]["run_id"] != jobs[1]["run_id"]
    # the child gets the validated config as JSON, not the form's text to parse again
    argv = Path(f"/proc/{jobs[0]['pid']}/cmdline").read_bytes().decode().split("\0")
    assert "--set" not in argv
    handed = json.loads(argv[argv.index("--config-json") + 1])
    for job in jobs:  # the children are this process's: wait for each to exit
        os.waitpid(job["pid"], 0)
    for job in jobs:
        assert api.read_run(store, job["run_id"])["status"] == "complete", Path(job["log"]).read_text()
    assert sorted(store.run_ids()) == sorted(j["run_id"] for j in jobs)
    assert api.read_run(store, jobs[0]["run_id"])["config"] == handed and handed["train"]["epochs"] == 1


# A linear network without batch norm on inputs of scale 1e6: the loss is NaN from epoch 1 on.
DIVERGES = (*SMALL, "model.batch_norm=false", 'model.activation="linear"', "data.synthclust.noise=1e6",
            "train.lr=1.0", "train.epochs=4", "snapshots.epochs=[0, 1, 2, 3, 4]", "analysis.auto=false")


def test_a_diverging_run_stops_and_is_marked_diverged(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from backend.cli import cli
    from backend.errors import StoreError

    store = RunStore(tmp_path / "s")
    api.train(tiny_config('run_id="nan"', *DIVERGES), store, progress=False)
    info = api.read_run(store, "nan")
    assert info["status"] == "diverged" and info["epochs_completed"] == 1
    assert "NaN or infinite" in info["error"] and "train.lr" in info["error"]
    assert info["recorded_epochs"] == [0, 1]  # the last epoch is recorded, as on an early stop
    with pytest.raises(StoreError, match="diverged"):
        api.resume("nan", store, progress=False)
    api.train(tiny_config('run_id="patient"', *DIVERGES, "train.divergence_patience=2"), store, progress=False)
    assert api.read_run(store, "patient")["epochs_completed"] == 3
    assert api.list_runs(store).set_index("run_id")["status"].to_dict() == {"nan": "diverged", "patient": "diverged"}
    listed = CliRunner().invoke(cli, ["runs", "--store", str(store.root)])
    assert listed.exit_code == 0 and "nan" in listed.output and "diverged" in listed.output
    args = ["train", "--store", str(store.root), "--no-progress"]
    for o in ('data.target="superclass"', 'train.device="cpu"', 'run_id="cli"', *DIVERGES):
        args += ["--set", o]
    trained = CliRunner().invoke(cli, args)
    assert trained.exit_code == 1 and "error: run cli training diverged" in trained.output


def test_the_pages_flag_a_diverged_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_app_compare_runs import COMPARE, MAIN

    store = RunStore(tmp_path / "s")
    api.train(tiny_config('run_id="nan"', *DIVERGES), store, progress=False)
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(store.root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.switch_page(COMPARE.replace("compare", "embeddings"))
    at.run()
    assert not at.exception
    assert "nan (diverged)" in at.sidebar.selectbox[0].options
    assert any("Run **nan** diverged" in w.value for w in at.warning)
    at.switch_page(COMPARE)
    at.run()
    assert not at.exception
    assert any("diverged (loss NaN or infinite): nan" in c.value for c in at.caption)


@pytest.mark.parametrize(("override", "message"), [
    ("train.seed=18446744073709551616", "train.seed must be an integer in [0, 4294967295]; got 18446744073709551616."),
    ("model.width=1000000000000", "model.width must be an integer in [1, 65536]; got 1000000000000."),
    ("model.width=1e12", "model.width must be an integer; got 1000000000000.0."),
    ("train.epochs=3000000000", "train.epochs must be an integer in [1, 100000]; got 3000000000."),
    ("train.lr=inf", "train.lr must be a finite number in [0, 100]; got inf."),
    ("train.lr=nan", "train.lr must be a number > 0; got nan."),
    ("data.synthclust.noise=inf", "data.synthclust.noise must be a finite number in [0, 1e+06]; got inf."),
    ("analysis.n_neighbors=100000", "analysis.n_neighbors must be an integer in [2, 1000]; got 100000."),
])
def test_out_of_range_values_are_one_line(tmp_path: Any, override: str, message: str) -> None:
    from click.testing import CliRunner

    from backend.cli import cli

    result = CliRunner().invoke(cli, ["train", "--store", str(tmp_path / "s"), "--set", override])
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith(f"error: {message}") and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_every_numeric_key_has_a_range() -> None:
    from backend.config import RunConfig
    from backend.config_limits import LIMITS, numeric_keys

    assert set(numeric_keys(RunConfig)) == set(LIMITS)


def test_import_epochs_out_of_range(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from backend.cli import cli

    (tmp_path / "a.pt").write_bytes(b"")
    result = CliRunner().invoke(cli, ["import", str(tmp_path / "a.pt"), "--epochs", "3000000000",
                                      "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "--epochs must be epoch (or step) numbers in [0, 2147483647]; got 3000000000." in result.output


def test_a_full_disk_is_one_line(tmp_path: Any) -> None:
    """A real ENOSPC (writing to /dev/full) inside a CLI command: one line, exit 2, no traceback."""
    import click
    from click.testing import CliRunner

    from backend.cli import user_errors

    @click.command()
    @user_errors
    def write() -> None:
        with open("/dev/full", "w") as fh:
            fh.write("x")

    result = CliRunner().invoke(write, [])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: the disk is full; free space")


def test_docs_list_every_range() -> None:

    from backend.config_limits import LIMITS, _num

    text = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text(encoding="utf-8")
    for key, (lo, hi) in LIMITS.items():
        assert f"| `{key}` | [{_num(lo)}, {_num(hi)}] |" in text, key


def test_runs_on_a_path_that_is_not_a_store(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from backend.cli import cli

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("x")
    (tmp_path / "file").write_text("root:x:0:0")
    for path, why in ((tmp_path / "file", "is a file, not a run store"),
                      (tmp_path / "home", "is not a run store: it holds files (notes.txt) besides run folders")):
        result = CliRunner().invoke(cli, ["runs", "--store", str(path)])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        assert result.output.startswith(f"error: store {str(path)!r} {why}; give the folder"), result.output
    for fine in (tmp_path / "missing", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        result = CliRunner().invoke(cli, ["runs", "--store", str(fine)])
        assert result.exit_code == 0 and "no runs in" in result.output


# ------------------------------------------------------------------------------------- corrupt files

FAST = {"n_neighbors": 8, "umap_epochs": 30, "cluster_epochs": 30, "pca_components": 8, "trust_k": 3}


@pytest.fixture(scope="module")
def small_analysed(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    """Runs a and b (copies): 1 epoch, snapshots 0 and 1, analysed with fast UMAP settings."""
    import shutil

    from backend.config import AnalysisConfig

    store = RunStore(tmp_path_factory.mktemp("analysed"))
    api.train(tiny_config('run_id="a"', *ONE_EPOCH), store, progress=False)
    assert not api.analyze(store, "a", AnalysisConfig(**FAST)).errors
    shutil.copytree(store.run_dir("a"), store.run_dir("b"))
    info = store.read_run("b")
    store.write_run("b", info | {"config": info["config"] | {"run_id": "b"}})
    return store


def _copy(src: RunStore, tmp_path: Any) -> RunStore:
    import shutil

    shutil.copytree(src.root, tmp_path / "store")
    return RunStore(tmp_path / "store")


def test_one_corrupt_layers_file_leaves_the_others_readable(small_analysed: RunStore, tmp_path: Any) -> None:
    store = _copy(small_analysed, tmp_path)
    store.analysis.path("a", "layers", "fc1.relu", 1).write_bytes(b"not parquet")
    table, corrupt = api.read_analysis_parts(store, "a", "layers")
    assert sorted(zip(table["layer"], table["epoch"], strict=True)) == [("fc1.relu", 0), ("fc2.relu", 0), ("fc2.relu", 1)]
    assert len(corrupt) == 1 and "layer 'fc1.relu', epoch=0001" in corrupt[0] and "corrupt" in corrupt[0]


def test_the_pages_name_a_corrupt_file_and_show_the_rest(small_analysed: RunStore, tmp_path: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_app_compare_runs import COMPARE, MAIN

    store = _copy(small_analysed, tmp_path)
    store.analysis.path("a", "layers", "fc1.relu", 1).write_bytes(b"not parquet")
    store.analysis.path("b", "network").write_bytes(b"not parquet either")
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(store.root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.query_params["run"] = "a"
    at.switch_page(COMPARE.replace("compare", "embeddings"))
    at.run()
    assert not at.exception
    assert any("Left out, corrupt" in e.value and "fc1.relu" in e.value for e in at.error), [e.value for e in at.error]
    assert [p for p in at.get("plotly_chart")], "the intact snapshots are still drawn"
    shown = [e.value for e in (*at.error, *at.warning)]
    assert not [m for m in shown if str(tmp_path) in m], shown  # a visitor never sees a server path (issue 13)
    assert any("<store>/a/analysis/layers/fc1.relu/epoch=0001.parquet" in m for m in shown), shown
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.query_params["runs"] = "a,b"
    at.switch_page(COMPARE)
    at.run()
    assert not at.exception
    assert any("Left out, corrupt" in e.value and "network" in e.value for e in at.error), [e.value for e in at.error]
    assert not [e.value for e in at.error if str(tmp_path) in e.value]
    assert not any("Not analysed yet" in w.value for w in at.warning)


def test_analyze_reports_corrupt_files(small_analysed: RunStore, tmp_path: Any) -> None:
    from backend.config import AnalysisConfig

    store = _copy(small_analysed, tmp_path)
    bad_layers = store.analysis.path("a", "layers", "fc1.relu", 1)
    bad_layers.write_bytes(b"not parquet")
    act = store.activation_path("a", "fc2.relu", 0)
    act.write_bytes(act.read_bytes()[:-20])  # truncated: no footer
    ckpt = store.checkpoint_path("a", 1)
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    report = api.analyze(store, "a", AnalysisConfig(**FAST))
    assert report.corrupt == [str(bad_layers)] and "corrupt, recomputed: " + str(bad_layers) in report.summary()
    assert store.analysis.read("a", "layers", "fc1.relu", 1)["layer"].tolist() == ["fc1.relu"]  # recomputed
    assert "corrupt" in report.errors["fc2.relu@0"] and "corrupt" in report.errors["checkpoint epoch=0001.pt"]


def test_the_analysis_of_a_diverged_run_says_so(tmp_path: Any) -> None:
    """Infinite or NaN weights and activations are reported, not scored."""
    from backend.config import AnalysisConfig

    store = RunStore(tmp_path / "s")
    api.train(tiny_config('run_id="nan"', *DIVERGES, "train.divergence_patience=2"), store, progress=False)
    report = api.analyze(store, "nan", AnalysisConfig(**FAST))
    assert ("fc1.relu", 0) in report.analysed and ("fc2.relu", 0) in report.analysed
    snapshot_errors = [m for k, m in report.errors.items() if k != "rotation"]
    assert snapshot_errors and all("NaN or infinite" in m and "diverged" in m for m in snapshot_errors)
    assert "epoch(s) [2, 3] hold NaN or infinite weights" in report.errors["rotation"]
    assert store.analysis.read("nan", "rotation")["epoch"].unique().tolist() == [0, 1]
