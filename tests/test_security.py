"""Safe to serve to a lab (issue 13): hostile visitors and faults against the default deployment.

Every test here is one row of the table in docs/security.md (test_the_table_lists_every_test checks it):
the real server (``clusterscope app`` in a subprocess on 127.0.0.1 and a free port) for the bind
address and the page's requests, AppTest for the pages, the backend for the refusals behind them.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from streamlit.testing.v1 import AppTest

from backend import api, deployment
from backend.cli import cli
from backend.jobs.launch import MAX_JOBS
from backend.liveness import process_alive, process_start_time
from backend.serve import app_environment
from backend.store.leftovers import OWNER
from tests.test_e2e_browser import free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "main.py")
SECURITY_MD = ROOT / "docs" / "security.md"
LAB = "0.0.0.0"  # what an operator passes to serve a lab; only set in the environment here, never bound


# ---- the real server -----------------------------------------------------------------------------

class Served(NamedTuple):
    url: str
    port: int
    proc: subprocess.Popen
    planted: dict[str, Path]  # leftovers of killed imports put in its store before it started


@pytest.fixture(scope="module")
def served(analysed_store: tuple[api.RunStore, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``clusterscope app`` as the README runs it, with only a port and a store: a copy of the analysed tiny
    run, plus the leftovers of killed imports."""
    tmp = tmp_path_factory.mktemp("served")
    shutil.copytree(analysed_store[0].root, tmp / "store")
    planted = plant_leftovers(tmp / "store")
    port = free_port()
    log = tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "CLUSTERSCOPE_"))}
    env["STREAMLIT_SERVER_HEADLESS"] = "true"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "app", "--store", str(tmp / "store"),
                                 "--server.port", str(port)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield Served(f"http://127.0.0.1:{port}", port, proc, planted)
    finally:
        stop(proc)


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr_hex)
            words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]  # each 32-bit word is little-endian
            found.add(str(ipaddress.ip_address(b"".join(words))))
    return found


def test_app_listens_on_loopback_only_by_default(served: Served) -> None:
    addresses = listening_addresses(served.port)
    assert addresses, f"nothing listens on port {served.port}"
    assert all(deployment.is_loopback(a) for a in addresses), addresses


PAGES = ("runs", "embeddings", "neurons", "layers", "compare", "mechanisms", "upload")


def test_pages_fetch_nothing_from_outside_the_server(served: Served, analysed_store: tuple[api.RunStore, str]) -> None:
    """A meeting room may be offline: every request of every page goes to the server itself."""
    from tests.test_e2e_browser import PLOT, chromium_page

    run_id = analysed_store[1]
    outside: list[str] = []
    with chromium_page() as page:
        page.on("request", lambda r: None if r.url.startswith((served.url + "/", "data:", "blob:"))
                else outside.append(r.url))
        for name in PAGES:
            page.goto(f"{served.url}/{name}?run={run_id}", timeout=60_000)
            page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=120_000)
            if name == "embeddings":  # the figure and its hover script
                page.wait_for_selector(PLOT, timeout=120_000)
                page.mouse.move(700, 500)
            page.wait_for_load_state("networkidle")
    assert outside == [], f"the page fetched from outside the server: {sorted(set(outside))}"


# ---- the deployment switches ---------------------------------------------------------------------

def test_bind_address_and_switches_follow_the_operator(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no Streamlit config file of the user's
    bare = {"PATH": "/usr/bin"}
    env = app_environment((), bare)
    assert env["STREAMLIT_SERVER_ADDRESS"] == "127.0.0.1" and env[deployment.SERVED_ADDRESS] == "127.0.0.1"
    assert deployment.allowed(deployment.TORCHSCRIPT, env) and deployment.allowed(deployment.SERVER_PATHS, env)
    assert capsys.readouterr().err == ""
    for args, environ in ((("--server.address", LAB), bare), ((f"--server.address={LAB}",), bare),
                          ((), {**bare, "STREAMLIT_SERVER_ADDRESS": LAB}), (("--server.address", ""), bare)):
        env = app_environment(args, environ)
        assert deployment.exposed(env), (args, environ)
        assert not deployment.allowed(deployment.TORCHSCRIPT, env)
        assert not deployment.allowed(deployment.SERVER_PATHS, env)
        assert "anyone who reaches this port" in capsys.readouterr().err
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text(f'[server]\naddress = "{LAB}"\n')
    assert deployment.exposed(app_environment((), bare))
    assert not deployment.exposed(app_environment(("--server.address", "127.0.0.1"), bare))
    capsys.readouterr()
    env = app_environment(("--server.address", LAB), bare, allow_torchscript=True, allow_server_paths=True)
    assert deployment.allowed(deployment.TORCHSCRIPT, env) and deployment.allowed(deployment.SERVER_PATHS, env)
    env = app_environment(("--server.address", LAB), {**bare, deployment.TORCHSCRIPT: "1"})
    assert deployment.allowed(deployment.TORCHSCRIPT, env) and not deployment.allowed(deployment.SERVER_PATHS, env)
    # on this machine only, an operator can still switch a feature off
    assert not deployment.allowed(deployment.TORCHSCRIPT, app_environment((), {**bare, deployment.TORCHSCRIPT: "0"}))


def test_loopback_addresses() -> None:
    for address in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"):
        assert deployment.is_loopback(address), address
    for address in ("0.0.0.0", "", "::", "192.168.1.10", "lab.example.org"):
        assert not deployment.is_loopback(address), address


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as the dashboard of a lab server: bound to every interface, no switch set."""
    monkeypatch.setenv(deployment.SERVED_ADDRESS, LAB)
    monkeypatch.delenv(deployment.TORCHSCRIPT, raising=False)
    monkeypatch.delenv(deployment.SERVER_PATHS, raising=False)


@pytest.mark.usefixtures("lab")
def test_lab_server_refuses_torchscript_even_when_ticked(store: api.RunStore, tmp_path: Path) -> None:
    job = api.new_import_job(store)
    with pytest.raises(api.ClusterScopeError, match=r"switched off.*reachable from other machines.*ALLOW_TORCHSCRIPT=1"):
        api.launch_import(store, job, [tmp_path / "model.ts"], overrides=['data.name="digits"'], trust_torchscript=True)
    with pytest.raises(api.ClusterScopeError, match="switched off"):
        api.import_checkpoints(store, [tmp_path / "model.ts"], trust_torchscript=True)
    assert api.import_job_status(store, job) == {}  # nothing started


@pytest.mark.usefixtures("lab")
def test_lab_server_refuses_server_folders(store: api.RunStore, tmp_path: Path) -> None:
    job = api.new_import_job(store)
    for key in ("data.root", "data.superclass_map"):
        with pytest.raises(api.ClusterScopeError, match=rf"{key} names a folder of the server.*ALLOW_SERVER_PATHS=1"):
            api.launch_import(store, job, [tmp_path / "epoch=0.pt"],
                              overrides=['data.name="imagefolder"', f'{key}="/etc"'])
        with pytest.raises(api.ClusterScopeError, match=rf"{key} names a folder of the server"):
            api.launch_training(store, ['data.name="imagefolder"', f'{key}="/etc"'])
    assert store.run_ids() == [] and api.import_job_status(store, job) == {}


def test_operator_switches_features_on_for_a_lab(store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(deployment.SERVED_ADDRESS, LAB)
    monkeypatch.setenv(deployment.TORCHSCRIPT, "1")
    monkeypatch.setenv(deployment.SERVER_PATHS, "yes")
    assert api.torchscript_allowed() and api.server_paths_allowed()
    monkeypatch.setenv(deployment.SERVED_ADDRESS, "127.0.0.1")
    monkeypatch.setenv(deployment.TORCHSCRIPT, "0")
    assert not api.torchscript_allowed() and "switched it off" in api.switch_off_reason(deployment.TORCHSCRIPT)


def open_page(root: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.switch_page(page)
    return at.run()


@pytest.mark.usefixtures("lab")
def test_lab_upload_page_says_why_features_are_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(tmp_path / "store", monkeypatch, "views/upload.py")
    assert not at.exception
    buf = io.BytesIO()  # the TorchScript notice shows once a TorchScript file is chosen
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    at.get("file_uploader")[0].set_value([("model.pt", buf.getvalue(), "application/octet-stream")])
    at.run()
    assert not at.checkbox, "no trust box where TorchScript is off"
    info = at.info[0].value
    assert "reachable from other machines" in info and "CLUSTERSCOPE_ALLOW_TORCHSCRIPT=1" in info
    assert at.selectbox(key="up-data").options == ["digits", "synthclust"]
    assert any("CLUSTERSCOPE_ALLOW_SERVER_PATHS=1" in c.value for c in at.caption)


# ---- jobs started from the page: capped, cancellable ----------------------------------------------

# A run that takes a while (tens of seconds on a busy machine) but resumes in seconds: no analysis afterwards.
# 100 epochs of 180 small steps: seconds, so a job is still running when a test cancels it after epoch 1
# (with 20 full-batch epochs it finished within a second, before the cancel, on a quiet machine).
SLOW_EPOCHS = 100
SLOW = ('data.name="digits"', 'model.name="mlp"', "model.depth=1", "model.width=8", f"train.epochs={SLOW_EPOCHS}",
        "train.batch_size=8", 'train.device="cpu"', "snapshots.epochs=[0]", "analysis.auto=false")
SUBMIT = "FormSubmitter:train-form-Start training"


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def epochs_done(store: api.RunStore, run_id: str) -> int:
    """0 until run.json is written: the run's folder exists from the moment its id is reserved, before it."""
    return int(store.read_run(run_id).get("epochs_completed") or 0) if store.run_json_path(run_id).is_file() else 0


def test_page_jobs_are_capped(store: api.RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_JOBS, raising=False)
    assert api.max_jobs() == max(1, len(os.sched_getaffinity(0)) // 2)
    for bad in ("0", "many"):
        monkeypatch.setenv(MAX_JOBS, bad)
        with pytest.raises(api.ClusterScopeError, match=f"{MAX_JOBS} must be an integer >= 1"):
            api.launch_training(store, [*SLOW, 'run_id="never"'])
    monkeypatch.setenv(MAX_JOBS, "1")
    (store.root / ".jobs").mkdir(parents=True)
    for name, text in (("train-junk.json", "[1, 2]"), ("import-empty.json", "{}"), ("train-cut.json", '{"kind": "tr')):
        (store.root / ".jobs" / name).write_text(text)  # records this code never writes count for nothing
    api.launch_training(store, [*SLOW, 'run_id="first"'])
    try:
        with pytest.raises(api.ClusterScopeError, match=r"at most 1 job.*1 are running \(train first\).*cancel one"):
            api.launch_training(store, [*SLOW, 'run_id="second"'])
        job = api.new_import_job(store)
        store.save_upload(job, "epoch=0.pt", b"x" * 1000)
        with pytest.raises(api.ClusterScopeError, match="at most 1 job"):
            api.launch_import(store, job, [store.job_dir(job) / "files" / "epoch=0.pt"], overrides=['data.name="digits"'])
        assert not store.job_dir(job).exists(), "a refused import left its uploads"
        assert [(j["kind"], j["id"]) for j in api.running_jobs(store)] == [("train", "first")]
    finally:
        api.cancel_job(store, "train", "first")
    assert api.running_jobs(store) == [] and not store.exists("second") and not store.exists("never")


def test_cancelled_run_is_marked_and_resumes(store: api.RunStore) -> None:
    """Cancelled after its first epoch, of 8 (SLOW's 100 took the resume 3.5 minutes on a loaded machine)."""
    job = api.launch_training(store, [*SLOW, 'run_id="long"', "train.epochs=8"])
    wait_for(lambda: epochs_done(store, "long") >= 1, "the first epoch")
    assert api.cancel_job(store, "train", "long")
    # the whole process group got SIGTERM and is gone (exited; our own child may wait to be reaped: a zombie)
    assert not process_alive({"pid": job["pid"], "host": socket.gethostname()})
    info = api.read_run(store, "long")
    assert info["status"] == "cancelled" and info["epochs_completed"] < 8
    assert api.running_jobs(store) == [] and not api.cancel_job(store, "train", "long")
    result = CliRunner().invoke(cli, ["train", "--resume", "long", "--store", str(store.root), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert api.read_run(store, "long")["status"] == "complete" and epochs_done(store, "long") == 8


def test_runs_page_refuses_over_the_cap_and_cancels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_JOBS, "1")
    store = api.open_store(tmp_path / "store")
    api.launch_training(store, [*SLOW, 'run_id="other-visitor"'])  # another visitor's job fills the cap
    try:
        at = open_page(store.root, monkeypatch, "views/runs.py")
        assert not at.exception
        assert any("at most 1 at once" in m.value for m in at.markdown)
        at.button(key=SUBMIT).click().run()
        assert any("Nothing was started" in e.value and "at most 1 job" in e.value for e in at.error), at.error
        wait_for(lambda: epochs_done(store, "other-visitor") >= 1, "the first epoch")
        at.button(key="runs-cancel-train-other-visitor").click().run()
        assert any("Cancelled training run other-visitor" in m.value and "--resume other-visitor" in m.value
                   for m in at.success), at.success
        assert api.read_run(store, "other-visitor")["status"] == "cancelled"
        assert api.running_jobs(store) == []
    finally:
        api.cancel_job(store, "train", "other-visitor")


def test_upload_page_cancels_an_import_and_leaves_nothing(trained_store: tuple[api.RunStore, str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src, run_id = trained_store
    buf = io.BytesIO()
    torch.save(src.load_checkpoint(run_id, 0), buf)
    root = tmp_path / "store"
    at = open_page(root, monkeypatch, "views/upload.py")
    at.get("file_uploader")[0].set_value(("epoch=0.pt", buf.getvalue(), "application/octet-stream"))
    at.run()
    at.button(key="up-go").click().run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="up-cancel").click().run()
    assert any("Cancelled import" in m.value and "nothing was imported" in m.value for m in at.success), at.success
    assert any("nothing was imported" in i.value for i in at.info)
    store = api.open_store(root)
    assert store.run_ids() == [] and api.running_jobs(store) == []
    assert not list((root / ".imports").glob("*/files")), "the uploads stayed behind"
    assert not (root / ".staging").exists() or not any((root / ".staging").iterdir())


# ---- refusals and failures leave nothing behind ---------------------------------------------------

def image_zip(path: Path, classes: int = 3, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for c in range(classes):
            for i in range(per_class):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(buf, format="PNG")
                zf.writestr(f"shapes/class{c}/img{i}.png", buf.getvalue())
    return path


def checkpoint_file(trained: tuple[api.RunStore, str], path: Path) -> Path:
    src, run_id = trained
    torch.save(src.load_checkpoint(run_id, 0), path)
    return path


def folders(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


def test_failed_zip_import_leaves_no_data_set(trained_store: tuple[api.RunStore, str], store: api.RunStore,
                                              tmp_path: Path) -> None:
    ckpt = checkpoint_file(trained_store, tmp_path / "epoch=0.pt")  # 5 outputs; the zip has 3 classes
    with pytest.raises(api.ClusterScopeError, match="wrong number of classes"):
        api.import_checkpoints(store, [ckpt], data_zip=image_zip(tmp_path / "shapes.zip"), overrides=('train.device="cpu"',))
    assert folders(store.root / ".datasets") == [], "the extracted zip stayed behind"
    assert store.run_ids() == [] and folders(store.root / ".staging") == []


def test_refused_upload_leaves_nothing(trained_store: tuple[api.RunStore, str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    at = open_page(root, monkeypatch, "views/upload.py")
    at.get("file_uploader")[0].set_value(("epoch=0.pt", checkpoint_file(trained_store, tmp_path / "c.pt").read_bytes(),
                                          "application/octet-stream"))
    at.radio(key="up-source").set_value("Upload an image-folder zip").run()
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.png", b"x")
    at.get("file_uploader")[1].set_value(("data.zip", evil.getvalue(), "application/zip"))
    at.run()
    at.button(key="up-go").click().run()
    assert any("Nothing was imported" in e.value and "leaves the folder" in e.value for e in at.error), at.error
    assert folders(root / ".imports") == [], "the refused upload stayed on the server"


def dead_process() -> dict[str, object]:
    """The liveness record of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    record = {"pid": proc.pid, "pid_start": process_start_time(proc.pid), "host": socket.gethostname()}
    proc.wait()
    return record


def plant_leftovers(root: Path) -> dict[str, Path]:
    """What killed imports leave (their processes dead, the files old), and what must stay."""
    store = api.open_store(root)
    dead, old = dead_process(), time.time() - 3600
    out = {"uploads": root / ".imports" / "import-killed" / "files", "staging": root / ".staging" / "abc",
           "extracting": root / ".datasets" / ".0123456789abcdef.x1", "unused": root / ".datasets" / "0123456789abcdef"}
    for path in out.values():
        path.mkdir(parents=True)
        (path / "big.bin").write_bytes(b"x" * 1024)
    store.write_job_status("import-killed", {"state": "running", **dead})
    for key in ("staging", "extracting"):
        (out[key] / OWNER).write_text(json.dumps(dead))
    os.utime(out["unused"], (old, old))
    return out


def test_leftovers_of_killed_imports_are_cleaned_at_the_next_start(served: Served) -> None:
    assert [p for p in served.planted.values() if p.exists()] == []


def test_cleaning_keeps_what_is_in_use(store: api.RunStore, tmp_path: Path) -> None:
    planted = plant_leftovers(store.root)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"pid": live.pid, "pid_start": process_start_time(live.pid), "host": socket.gethostname()}
        working = store.root / ".staging" / "working"
        working.mkdir()
        (working / OWNER).write_text(json.dumps(owner))
        young = store.root / ".imports" / "import-saving" / "files"  # a page still saving its uploads: no status yet
        young.mkdir(parents=True)
        removed = api.clean_leftovers(store)
        assert working.exists() and young.exists()
        assert planted["unused"].exists(), "a data set is kept while an import is in progress"
        assert set(removed) == {planted["uploads"], planted["staging"], planted["extracting"]}
    finally:
        live.kill()
        live.wait()
    assert set(api.clean_leftovers(store)) == {working, planted["unused"]}
    assert young.exists()


# ---- the table in docs/security.md ---------------------------------------------------------------

def test_the_table_lists_every_test() -> None:
    """docs/security.md's table of hostile inputs and faults names every test of this file, and no other."""
    text = SECURITY_MD.read_text()
    here = set(re.findall(r"^def (test_\w+)", Path(__file__).read_text(), re.M))
    listed = set(re.findall(r"^\|[^|]*\|[^|]*\|\s*`(test_\w+)`", text, re.M))
    assert here - listed == set(), f"add these tests to the table in docs/security.md: {sorted(here - listed)}"
    assert listed - here == set(), f"docs/security.md lists tests that no longer exist: {sorted(listed - here)}"


def test_streamlit_defaults_hide_error_details(served: Served) -> None:
    """The served Streamlit got showErrorDetails 'none', no usage statistics and no file watcher (it walked
    every imported module after each run: benchmarks/README.md), in the variables it reads."""
    from streamlit import config

    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{served.proc.pid}/environ").read_text().split("\0") if "=" in item)
    for option, value in (("client.showErrorDetails", "none"), ("browser.gatherUsageStats", "false"),
                          ("server.fileWatcherType", "none")):
        assert environ.get(config.get_config_options()[option].env_var) == value, option



def failing_page_app(script: str) -> None:
    """An app of one page, run like app/main.py runs its pages."""
    import streamlit as st

    from app.safety import run_safely

    run_safely(st.navigation([st.Page(script, title="Failing")]))


def test_an_unexpected_error_shows_one_line_and_a_reference(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "secret-folder"
    script = tmp_path / "failing.py"
    script.write_text(f"raise RuntimeError('cannot read {secret}')\n")
    at = AppTest.from_function(failing_page_app, args=(str(script),), default_timeout=30)
    with caplog.at_level("ERROR", logger="clusterscope.app"):
        at.run()
    assert not at.exception, "the traceback reached the page"
    (error,) = at.error
    ref = re.search(r"reference \*\*(\w+)\*\*", error.value).group(1)
    shown = " ".join(str(getattr(e, "proto", "")) for e in at.main)  # everything the page shows
    assert str(secret) not in shown and "Traceback" not in shown and "RuntimeError" not in shown
    logged = caplog.records[-1]
    assert ref in logged.getMessage() and str(secret) in caplog.text and logged.exc_info is not None


def test_messages_shown_to_a_visitor_hold_no_server_path(tmp_path: Path) -> None:
    """Pages pass backend messages through api.visitor_text: paths under the store become store paths, any
    other absolute path its last component; URLs and relative paths are kept."""
    store = tmp_path / "store"
    text = (f"cannot read {store}/run-1/analysis/network.parquet: bad footer; data.root /etc/ssl is not a folder "
            "of images (docs/datasets.md, http://127.0.0.1:8501/runs).")
    shown = api.visitor_text(text, store)
    assert str(tmp_path) not in shown and "/etc" not in shown
    assert "<store>/run-1/analysis/network.parquet: bad footer" in shown and ".../ssl is not" in shown
    assert "docs/datasets.md, http://127.0.0.1:8501/runs" in shown


def test_a_lab_page_does_not_name_the_store_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The empty-store notice names the store's folder on a local server only; a lab's visitors get no path."""
    root = tmp_path / "store"
    local = open_page(root, monkeypatch, "views/runs.py")
    assert any(str(root) in i.value for i in local.info), [i.value for i in local.info]
    monkeypatch.setenv(deployment.SERVED_ADDRESS, LAB)
    monkeypatch.delenv(deployment.SERVER_PATHS, raising=False)
    for page in ("views/runs.py", "views/layers.py"):
        at = open_page(root, monkeypatch, page)
        assert not at.exception
        shown = [e.value for kind in ("info", "error", "warning", "caption", "markdown") for e in at.get(kind)]
        assert any("has no runs yet" in m for m in shown), shown
        assert not [m for m in shown if str(tmp_path) in m], shown
