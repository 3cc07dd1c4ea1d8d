"""Sweeps: sweep files, expansion, and real tiny sweeps through a local Ray (one for this module and
tests/test_analyse_ray.py).

The tests that start Ray are marked ``ray`` (``pytest -m ray`` runs them alone, with tests/test_analyse_ray.py);
the others read and expand sweep files only."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from backend import api
from backend.errors import ConfigError
from backend.jobs.sweep_spec import expand, load_sweep, sweep_from_dict
from tests.test_data_files import make_folder

TINY_BASE = {
    "data": {"name": "digits", "target": "superclass"},
    "model": {"name": "mlp", "depth": 2, "width": 16},
    "train": {"epochs": 1, "batch_size": 64, "device": "cpu"},
    "snapshots": {"epochs": [0, 1]},
    "analysis": {"umap_epochs": 20, "cluster_epochs": 20},  # short UMAP fits where a sweep analyses its runs
}


def tiny_sweep(name: str = "tiny", grid: dict | None = None, **head: object) -> object:
    raw = {"sweep": {"name": name, "analyze": False, **head}, "base": TINY_BASE,
           "grid": grid or {"train.lr": [0.01, 0.1], "model.width": [8, 16]}}
    return sweep_from_dict(raw)


@pytest.fixture(scope="module")
def swept(ray_local, tmp_path_factory: pytest.TempPathFactory) -> tuple[api.RunStore, object]:
    """A 2 x 2 sweep (learning rate x width), trained and analysed through Ray."""
    store = api.open_store(tmp_path_factory.mktemp("sweep-store"))
    sweep = tiny_sweep(analyze=True)
    report = api.run_sweep(sweep, store, progress=False)
    assert not report.failed, report.summary()
    return store, report


# ------------------------------------------------------------------------------------- sweep files (no Ray)


def test_sweep_file_expands_grid_and_linked_axes(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[data]\nname = "digits"\n[train]\nepochs = 3\n')
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nname = "s1"\nbase = "base.toml"\n[base]\ntrain.batch_size = 32\n'
                    '[grid]\n"train.lr,train.weight_decay" = [[0.01, 0.0], [0.1, 4e-5]]\n"train.augment" = [false, true]\n')
    trials = expand(load_sweep(path))
    assert len(trials) == 4
    assert [t.axes for t in trials][:2] == [{"train.lr,train.weight_decay": [0.01, 0.0], "train.augment": False},
                                            {"train.lr,train.weight_decay": [0.01, 0.0], "train.augment": True}]
    last = trials[-1].config
    assert (last.train.lr, last.train.weight_decay, last.train.augment, last.train.epochs, last.train.batch_size) == \
        (0.1, 4e-5, True, 3, 32)
    assert len({t.run_id for t in trials}) == 4 and all(t.run_id.startswith("s1-") for t in trials)
    # the id depends on the sweep name and the effective config only
    assert [t.run_id for t in expand(load_sweep(path))] == [t.run_id for t in trials]
    other = tiny_sweep("other", grid={"train.lr": [0.01]})
    assert expand(other)[0].run_id.startswith("other-")


def test_random_draws_are_seeded_and_in_range() -> None:
    raw = {"sweep": {"name": "r", "samples": 5, "seed": 3}, "base": TINY_BASE,
           "grid": {"model.width": [8, 16]}, "random": {"train.lr": {"log_uniform": [1e-3, 1e-1]},
                                                       "train.batch_size": {"choice": [32, 64]}}}
    a, b = expand(sweep_from_dict(raw)), expand(sweep_from_dict(raw))
    assert [t.axes for t in a] == [t.axes for t in b] and len(a) == 10
    assert all(1e-3 <= t.config.train.lr <= 1e-1 and t.config.train.batch_size in (32, 64) for t in a)


@pytest.mark.parametrize(("raw", "match"), [
    ({"sweep": {"name": "Bad Name"}, "grid": {"train.lr": [0.1]}}, "sweep.name must be"),
    ({"sweep": {"name": "s", "retrys": 1}, "grid": {"train.lr": [0.1]}}, "unknown key 'sweep.retrys'"),
    ({"sweep": {"name": "s"}, "grid": {"train.lrr": [0.1]}}, "unknown config key 'train.lrr'.*Did you mean 'train.lr'"),
    ({"sweep": {"name": "s"}, "grid": {"train.lr": [-1.0]}}, "trial train.lr=-1.0: train.lr must be"),
    ({"sweep": {"name": "s"}, "grid": {"train.lr": 0.1}}, r"\[grid\] 'train.lr' must be a non-empty list"),
    ({"sweep": {"name": "s"}, "grid": {"train.lr,train.weight_decay": [0.1]}}, "links 2 keys"),
    ({"sweep": {"name": "s"}, "grid": {"run_id": ["a"]}}, "cannot vary"),
    ({"sweep": {"name": "s"}, "random": {"train.lr": {"choice": [0.1]}}}, "sweep.samples must be >= 1"),
    ({"sweep": {"name": "s", "samples": 2}, "random": {"train.lr": {"log_uniform": [0, 1]}}}, "low > 0"),
    ({"sweep": {"name": "s"}}, r"needs a \[grid\] or a \[random\]"),
    ({"sweep": {"name": "s"}, "grids": {}}, "unknown section 'grids'"),
])
def test_bad_sweep_files_name_the_key(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sweep_from_dict(raw)


def test_missing_sweep_file_and_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "nope.toml")
    (tmp_path / "s.toml").write_text('[sweep]\nname = "s"\nbase = "missing.toml"\n[grid]\n"train.lr" = [0.1]\n')
    with pytest.raises(ConfigError, match=r"s.toml'.*sweep.base 'missing.toml' does not exist"):
        load_sweep(tmp_path / "s.toml")


# ------------------------------------------------------------------------------------- sweeps on Ray


@pytest.mark.ray
def test_ray_keeps_its_token_in_the_temporary_home(ray_local) -> None:
    """A new local Ray writes ~/.ray/auth_token: the session's temporary HOME (tests/conftest.py), never the user's."""
    home = Path.home()
    assert home.name.startswith("clusterscope-home-") and home.parent == Path(tempfile.gettempdir()), home
    assert (home / ".ray" / "auth_token").is_file()


@pytest.mark.ray
def test_sweep_trains_analyses_and_records_axes(swept: tuple[api.RunStore, object]) -> None:
    store, report = swept
    assert [r.state for r in report.results] == ["trained"] * 4
    runs = api.sweep_runs(store, "tiny")
    assert runs["status"].tolist() == ["complete"] * 4
    assert runs[["train.lr", "model.width"]].values.tolist() == [[0.01, 8], [0.01, 16], [0.1, 8], [0.1, 16]]
    info = store.read_run(runs["run_id"][3])
    assert info["sweep"] == {"name": "tiny", "file": "", "axes": {"train.lr": 0.1, "model.width": 16}, "trial": 3}
    assert info["config"]["train"]["lr"] == 0.1 and info["config"]["model"]["width"] == 16
    assert all("params_hash" in store.analysis.read_status(r) for r in runs["run_id"])
    assert not list((store.root / ".claims").iterdir())  # every claim released
    sweeps = api.list_sweeps(store)
    assert sweeps.to_dict("records") == [{"sweep": "tiny", "runs": 4, "complete": 4, "failed": 0, "axes": "train.lr, model.width"}]


@pytest.mark.ray
def test_a_trial_of_a_run_finished_meanwhile_leaves_it_alone(swept: tuple[api.RunStore, object], tmp_path: Path) -> None:
    """Two drivers on one store: the second's trial for a run may start once the first driver has trained
    and analysed it. It reports `done` and rewrites nothing (not even the analysis status)."""
    import torch

    from backend.config import to_dict
    from backend.jobs.sweep import run_trial
    from backend.jobs.sweep_spec import run_record

    src, _ = swept
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.root, store.root)
    sweep = tiny_sweep(analyze=True)
    trial = expand(sweep)[0]
    files = sorted(p for p in store.run_dir(trial.run_id).rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    out = run_trial(str(store.root), to_dict(trial.config), run_record(sweep, trial), True, torch.get_num_threads())
    assert out["state"] == "done"
    assert sorted(p for p in store.run_dir(trial.run_id).rglob("*") if p.is_file()) == files
    assert [p.stat().st_mtime_ns for p in files] == stamps


@pytest.mark.ray
def test_granulated_kendall_of_a_sweep_matches_hand_computation(swept: tuple[api.RunStore, object], tmp_path: Path) -> None:
    """c1 = .1, .3, .2, .25 and test accuracy .70, .80, .90, .95 for (lr, width) = (a, 8), (a, 16), (b, 8), (b, 16).
    psi[lr]: width 8: (.1, .7) vs (.2, .9) agree (+1); width 16: (.3, .8) vs (.25, .95) disagree (-1) -> 0.
    psi[width]: lr a: +1; lr b: (.2, .9) vs (.25, .95) agree -> 1. total = 0.5. tau over the 6 pairs: 4 agree,
    2 disagree -> 1/3."""
    src, _ = swept
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.root, store.root)
    ids = api.sweep_runs(store, "tiny")["run_id"].tolist()
    for run_id, c1, acc in zip(ids, (0.1, 0.3, 0.2, 0.25), (0.70, 0.80, 0.90, 0.95), strict=True):
        store.update_run(run_id, final=dict(store.read_run(run_id)["final"], test_accuracy=acc))
        net = store.analysis.read(run_id, "network")
        net["c1"] = c1
        store.analysis.write(run_id, "network", net, params="{}", params_hash="test")
    runs, table = api.compare_sweep(store, "tiny")
    row = table.set_index("measure").loc["c1"]
    assert row["tau"] == pytest.approx(1 / 3)
    assert (row["psi[train.lr]"], row["psi[model.width]"], row["granulated_total"]) == pytest.approx((0.0, 1.0, 0.5))
    assert runs["test_accuracy"].tolist() == [0.70, 0.80, 0.90, 0.95]
    result = CliRunner().invoke(api_cli(), ["compare", "--sweep", "tiny", "--store", str(store.root), "--csv",
                                            str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    csv = (tmp_path / "t.csv").read_text().splitlines()
    assert csv[0] == "measure,runs,tau,tau_b,psi[model.width],psi[train.lr],granulated_total,total_axes,pairs,tied_accuracy"
    assert next(line for line in csv if line.startswith("c1,")).startswith("c1,4,0.333")
    assert CliRunner().invoke(api_cli(), ["compare", "--sweep", "nope", "--store", str(store.root)]).exit_code == 2


@pytest.mark.ray
def test_k_sensitivity_of_a_sweep(swept: tuple[api.RunStore, object]) -> None:
    store, _ = swept
    runs, _ = api.compare_sweep(store, "tiny")
    values = api.k_sensitivity(store, runs["run_id"].tolist(), ks=(1, 5, 30))
    assert set(values["measure"]) == {"c1", "c3"} and len(values) == 4 * 2 * 3
    assert values["subclass_ratio"].eq(2.0).all()  # ten digits in five superclasses
    # k = 30 on a network of 8+8 or 16+16 units is (clipped to) every unit; c3 at k = 30 is the network table's c3
    last = values[(values["measure"] == "c3") & (values["k"] == 30)].set_index("run_id")["value"]
    assert last.to_numpy() == pytest.approx(runs.set_index("run_id").loc[last.index, "c3"].to_numpy())
    tau = api.tau_over_k(values, runs, runs[["train.lr", "model.width"]])
    assert len(tau) == 6 and {"psi[train.lr]", "psi[model.width]", "granulated_total"} <= set(tau.columns)


@pytest.mark.ray
def test_retries_recover_a_flaky_trial_and_report_a_failing_one(ray_local, tmp_path: Path) -> None:
    """The image folder appears only after the first attempt failed (as data copied late to a shared disk);
    the MNIST folder never exists: that trial is reported after 1 + retries attempts, the others go on."""
    late, missing = tmp_path / "late", tmp_path / "missing"
    grid = {"data.name,data.root,data.target": [["digits", "", "superclass"], ["imagefolder", str(late), "label"],
                                                ["mnist", str(missing), "label"]]}
    sweep = sweep_from_dict({"sweep": {"name": "flaky", "analyze": False, "retries": 1}, "base": TINY_BASE, "grid": grid})
    messages: list[str] = []

    def echo(msg: str) -> None:
        messages.append(msg)
        if not late.exists():
            make_folder(late)

    from backend.jobs.sweep import run_sweep

    store = api.open_store(tmp_path / "store")
    report = run_sweep(sweep, store, progress=False, echo=echo)
    states = {r.run_id: r for r in report.results}
    digits, images, mnist = (states[t.run_id] for t in expand(sweep))
    assert (digits.state, digits.attempts) == ("trained", 1)
    assert (images.state, images.attempts) == ("trained", 2)
    assert (mnist.state, mnist.attempts) == ("failed", 2)
    assert "DataError" in mnist.error and str(missing) in mnist.error
    assert sum("retrying" in m for m in messages) == 2 and sum("failed after 2" in m for m in messages) == 1
    assert "1 failed" in report.summary() and mnist.run_id not in store.run_ids()  # nothing half-written
    assert store.read_run(images.run_id)["status"] == "complete"


@pytest.mark.ray
def test_resume_skips_finished_runs_and_continues_interrupted_ones(ray_local, tmp_path: Path) -> None:
    store = api.open_store(tmp_path / "store")
    sweep = tiny_sweep("resume", grid={"train.lr": [0.01, 0.1], "model.width": [8, 16]})
    first = api.run_sweep(sweep, store, progress=False)
    assert [r.state for r in first.results] == ["trained"] * 4
    ids = [t.run_id for t in expand(sweep)]
    # run 1 was killed mid-training (status 'running', its process gone), run 2 never started
    killed = store.read_run(ids[1])
    store.write_run(ids[1], killed | {"status": "running", "pid": _dead_pid(), "epochs_completed": 0})
    shutil.rmtree(store.run_dir(ids[2]))
    stamps = {r: os.stat(store.run_json_path(r)).st_mtime_ns for r in (ids[0], ids[3])}
    second = api.run_sweep(sweep, store, progress=False)
    assert [r.state for r in second.results] == ["done", "resumed", "trained", "done"]
    assert {r: os.stat(store.run_json_path(r)).st_mtime_ns for r in (ids[0], ids[3])} == stamps
    assert all(store.read_run(r)["status"] == "complete" for r in ids)
    # a second sweep with another name writes its own runs next to these
    api.run_sweep(tiny_sweep("other", grid={"train.lr": [0.01]}), store, progress=False)
    assert len(store.run_ids()) == 5 and set(api.list_sweeps(store)["sweep"]) == {"other", "resume"}


@pytest.mark.ray
def test_a_run_claimed_by_a_live_process_is_left_alone(ray_local, tmp_path: Path) -> None:
    from backend.liveness import this_process
    from backend.store import claim_path, claim_run

    store = api.open_store(tmp_path / "store")
    sweep = tiny_sweep("busy", grid={"train.lr": [0.01]})
    run_id = expand(sweep)[0].run_id
    owner = this_process() | {"pid": os.getppid()}  # alive, and not the worker itself
    owner["pid_start"] = None
    assert claim_run(store, run_id, owner)
    report = api.run_sweep(sweep, store, progress=False)
    assert report.results[0].state == "busy" and run_id not in store.run_ids()
    assert "being trained by another process" in report.summary()
    claim_path(store, run_id).write_text(json.dumps(this_process() | {"pid": _dead_pid()}))  # a stale claim
    assert api.run_sweep(sweep, store, progress=False).results[0].state == "trained"


def test_a_retry_takes_over_its_own_drivers_claim_only(tmp_path: Path) -> None:
    """A trial on a node that died leaves its claim behind, its process not checkable from here (another
    host). The driver that made it takes it over when it retries; another driver's claim is left alone
    (tests/test_ray_cluster.py kills a real node)."""
    import torch

    from backend.config import to_dict
    from backend.jobs.sweep import run_trial
    from backend.jobs.sweep_spec import run_record
    from backend.store import claim_path, claim_run

    store = api.open_store(tmp_path / "store")
    sweep = tiny_sweep("retry", grid={"train.lr": [0.01]})
    trial = expand(sweep)[0]
    assert claim_run(store, trial.run_id, {"pid": 1, "pid_start": None, "host": "a-node-that-died", "sweep": "driver-a"})
    args = (str(store.root), to_dict(trial.config), run_record(sweep, trial), False, torch.get_num_threads())
    assert run_trial(*args, driver="driver-b", retry=True)["state"] == "busy"
    assert run_trial(*args, driver="driver-a", retry=False)["state"] == "busy"
    assert run_trial(*args, driver="driver-a", retry=True)["state"] == "trained"
    assert not claim_path(store, trial.run_id).exists() and store.read_run(trial.run_id)["status"] == "complete"


@pytest.mark.ray
def test_cli_sweep_dry_run_and_run(ray_local, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nname = "cli"\nanalyze = false\n[base]\ndata.name = "digits"\nmodel.width = 8\n'
                    'train.epochs = 1\ntrain.device = "cpu"\nsnapshots.epochs = [1]\n[grid]\n"train.lr" = [0.01, 0.1]\n')
    store = str(tmp_path / "store")
    dry = CliRunner().invoke(api_cli(), ["sweep", str(path), "--store", store, "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("to run") == 2 and "2 run(s) in sweep cli." in dry.output
    done = CliRunner().invoke(api_cli(), ["sweep", str(path), "--store", store, "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "sweep cli: 2 run(s): 2 trained" in done.output
    bad = CliRunner().invoke(api_cli(), ["sweep", str(tmp_path / "nope.toml"), "--store", store])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def api_cli():
    from backend.cli import cli

    return cli


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
