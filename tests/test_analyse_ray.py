"""`clusterscope analyze --ray`: one run's layers as Ray tasks, with the one-process analysis's results.

A real tiny run (digits, 3 ReLU layers, 3 snapshot epochs) is analysed once in this process and
then through a local Ray with 2 CPUs (one for this module and tests/test_sweep.py, marker ``ray``: run these
alone with ``pytest -m ray``); every analysis Parquet table must be the same, bit for bit (the
``seconds`` column of the layers table, a timing, aside).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from backend import api
from backend.cli import cli
from backend.jobs.analyse import analysis_config, analyze_run
from backend.jobs.analyse_ray import ray_layers
from backend.store import RunStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.ray

RUN = "three"
# short fits on 400 of the run's samples (as tests/test_ray_cluster.py): the Ray analysis must equal the one-process
# one, bit for bit, whatever the settings
FAST = ("analysis.umap_epochs=20", "analysis.cluster_epochs=20", "analysis.sharpness_samples=200", "analysis.max_samples=400")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    """The run, trained for real and analysed in this process (the one-process analysis)."""
    store = api.open_store(tmp_path_factory.mktemp("reference"))
    cfg = tiny_config(f'run_id="{RUN}"', "model.depth=3", "analysis.auto=false", *FAST)
    api.train(cfg, store, progress=False)
    assert len(store.run_info(RUN).layers) == 3
    report = analyze_run(store, RUN, analysis_config(store, RUN))
    assert not report.errors and len(report.analysed) == 9, report.summary()
    return store


def unanalysed_copy(reference: RunStore, where: Path) -> RunStore:
    store = RunStore(where)
    shutil.copytree(reference.run_dir(RUN), store.root / RUN, ignore=shutil.ignore_patterns("analysis"))
    return store


def analysis_tables(store: RunStore) -> dict[str, object]:
    """Every Parquet file under the run's analysis/, by relative path: its table (timings left out) and metadata."""
    root = store.run_dir(RUN) / "analysis"
    out = {}
    for path in sorted(root.rglob("*.parquet")):
        table = pq.read_table(path)
        if "seconds" in table.column_names:
            table = table.drop_columns(["seconds"])
        out[str(path.relative_to(root))] = (table, table.schema.metadata)
    return out


def assert_same_analysis(store: RunStore, reference: RunStore) -> None:
    ours, ref = analysis_tables(store), analysis_tables(reference)
    assert sorted(ours) == sorted(ref)
    assert any(name.startswith("points") for name in ref) and any(name.startswith("network") for name in ref)
    for name, (table, meta) in ref.items():
        assert ours[name][1] == meta, name
        assert ours[name][0].equals(table), f"{name} differs from the one-process analysis"


def test_layers_as_ray_tasks_give_the_one_process_results(ray_local, reference: RunStore, tmp_path: Path) -> None:
    store = unanalysed_copy(reference, tmp_path / "ray")
    seen: list[tuple[int, int, str]] = []
    report = analyze_run(store, RUN, analysis_config(store, RUN), run_layers=ray_layers(ray_local),
                         progress=lambda done, total, what: seen.append((done, total, what)))
    assert not report.errors, report.summary()
    assert report.analysed == analyze_run(reference, RUN, analysis_config(reference, RUN)).skipped  # the same, in order
    assert_same_analysis(store, reference)
    layer_ticks = [s for s in seen if s[2].startswith("layer ")]  # one tick per layer, in snapshots, as layers end
    assert [(d, t) for d, t, _ in layer_ticks] == [(3, 9), (6, 9), (9, 9)]
    assert {w.removeprefix("layer ").removesuffix(" done") for *_, w in layer_ticks} == set(store.run_info(RUN).layers)

    # a re-run redoes only what is stale: one snapshot's table removed, the others up to date
    layer = store.run_info(RUN).layers[1]
    store.analysis.remove(RUN, "units", layer, 1)
    again = analyze_run(store, RUN, analysis_config(store, RUN), run_layers=ray_layers(ray_local))
    assert again.analysed == [(layer, 1)] and len(again.skipped) == 8 and not again.errors
    assert_same_analysis(store, reference)


def _descendants(pid: int) -> set[int]:
    """Processes below ``pid`` (Ray's raylet and its workers, started by this test process)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found.update(kids)
        todo += kids
    return found


def _kill_first_layer_task(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker seen running a layer task (Ray titles it ``ray::layer_task``)."""
    while not stop.is_set() and not killed:
        for pid in _descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    title = fh.read()
            except OSError:
                continue
            if title.startswith(b"ray::layer_task"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.2)


def test_a_layer_whose_worker_dies_is_retried(ray_local, reference: RunStore, tmp_path: Path) -> None:
    store = unanalysed_copy(reference, tmp_path / "killed")
    killed: list[int] = []
    said: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_layer_task, args=(killed, stop), daemon=True)
    killer.start()
    try:
        report = analyze_run(store, RUN, analysis_config(store, RUN), run_layers=ray_layers(ray_local, say=said.append))
    finally:
        stop.set()
        killer.join(timeout=10)
    assert killed, "no layer task was seen running"
    assert len([m for m in said if "attempt 1 of 3 failed" in m and "retrying" in m]) == 1, said
    assert not report.errors, report.summary()
    assert sorted(report.analysed) == sorted((lay, e) for lay in store.run_info(RUN).layers for e in (0, 1, 2))
    assert_same_analysis(store, reference)


def test_a_layer_that_keeps_failing_is_reported_and_the_others_go_on(ray_local, reference: RunStore, tmp_path: Path) -> None:
    """A layer whose task raises at every attempt (a file stands where its points folder goes, so its
    writes fail) is reported per snapshot after its retries; the other layers and the run-level steps go on."""
    store = unanalysed_copy(reference, tmp_path / "broken")
    bad, *good = store.run_info(RUN).layers
    blocker = store.analysis.path(RUN, "points", bad, 0).parent
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    said: list[str] = []
    report = analyze_run(store, RUN, analysis_config(store, RUN), run_layers=ray_layers(ray_local, retries=1, say=said.append))
    assert sorted(report.errors) == [f"{bad}@{e}" for e in (0, 1, 2)]
    assert "its Ray task failed 2 time(s)" in report.errors[f"{bad}@0"] and "FileExistsError" in report.errors[f"{bad}@0"]
    assert [m for m in said if bad in m] == [m for m in said if "attempt 1 of 2 failed" in m or "failed after 2" in m]
    assert sorted(report.analysed) == sorted((lay, e) for lay in good for e in (0, 1, 2))
    for lay in good:
        for e in (0, 1, 2):
            assert store.analysis.read(RUN, "units", lay, e).equals(reference.analysis.read(RUN, "units", lay, e))
    assert store.analysis.read_status(RUN)["errors"] == report.errors
    blocker.unlink()  # the fault fixed, a re-run analyses the failed layer only, and the run is as the reference
    again = analyze_run(store, RUN, analysis_config(store, RUN), run_layers=ray_layers(ray_local))
    assert again.analysed == [(bad, 0), (bad, 1), (bad, 2)] and not again.errors
    assert_same_analysis(store, reference)


def test_cli_analyze_ray(ray_local, reference: RunStore, tmp_path: Path) -> None:
    store = unanalysed_copy(reference, tmp_path / "cli")
    result = CliRunner().invoke(cli, ["analyze", RUN, "--ray", "--workers", "2", "--no-progress", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "9 snapshot(s) analysed, 0 up to date, 0 failed" in result.output
    assert_same_analysis(store, reference)


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "auto"], "add --ray"),
    (["--workers", "2"], "add --ray"),
    (["--ray", "--jobs", "2"], "choose one"),
])
def test_cli_ray_flags_are_checked(reference: RunStore, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["analyze", RUN, *args, "--store", str(reference.root)])
    assert result.exit_code == 2 and message in result.output, result.output
