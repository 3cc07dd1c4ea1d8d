"""The one launcher: jobs the dashboard starts (training, import), each in its own process group, at most N at
once, cancellable.

A visitor could otherwise start any number of 1000-epoch runs (each takes a core and several hundred MB).
:func:`start` counts the page's live jobs under a lock and refuses one more than ``CLUSTERSCOPE_MAX_JOBS``
(default: one per two cores); :func:`cancel` sends SIGTERM to the job's process group (the job turns it
into KeyboardInterrupt, backend.liveness.sigterm_as_interrupt, and stops as on Ctrl-C), waits for it,
and marks the run ``cancelled`` (resumable with ``clusterscope train --resume``) or the import job
``cancelled``. The records live in ``<store>/.jobs/`` (backend.store).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.errors import ClusterScopeError
from backend.liveness import job_died, process_alive, process_start_time, this_process
from backend.store import RunStore

MAX_JOBS = "CLUSTERSCOPE_MAX_JOBS"
# The children this process started, kept so they are reaped (Popen.poll) once they end: a dropped Popen of a
# running child warns (ResourceWarning) and its zombie lingers until the next process start.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
STOP_WAIT_S = 20.0  # after SIGTERM, how long a job may take to mark itself stopped before SIGKILL


def max_jobs() -> int:
    """``CLUSTERSCOPE_MAX_JOBS`` if set (an integer >= 1), else one per two cores this process may use."""
    text = os.environ.get(MAX_JOBS, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ClusterScopeError(f"{MAX_JOBS} must be an integer >= 1 (jobs the page may run at once); got {text!r}.")
        return value
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


def running(store: RunStore) -> list[dict[str, Any]]:
    """The page's jobs whose process still runs (oldest first); records of finished ones are removed."""
    alive = []
    for record in store.read_launches():
        if not isinstance(record, dict) or record.get("kind") not in ("train", "import") or not record.get("id"):
            continue  # not a record this module wrote
        if process_alive(record):
            alive.append(record)
        else:
            store.remove_launch(record["kind"], record["id"])
    return alive


def start(store: RunStore, kind: str, ident: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` in a new process group (output appended to ``log``), unless the page's jobs are at the cap."""
    cap = max_jobs()
    with store.launch_lock():
        busy = running(store)
        if len(busy) >= cap:
            names = ", ".join(f"{r['kind']} {r['id']}" for r in busy)
            raise ClusterScopeError(f"this server runs at most {cap} job(s) started from the page at once "
                                    f"({MAX_JOBS}={cap}) and {len(busy)} are running ({names}). Wait for one to "
                                    "finish, or cancel one in the list of running jobs.")
        for pid, child in list(_CHILDREN.items()):
            if child.poll() is not None:
                del _CHILDREN[pid]
        with open(log, "ab") as fh:
            proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        _CHILDREN[proc.pid] = proc
        store.write_launch(kind, ident, {**this_process(), "kind": kind, "id": ident, "pid": proc.pid,
                                         "pid_start": process_start_time(proc.pid), "log": str(log),
                                         "started": datetime.now(UTC).isoformat(timespec="milliseconds")})
    return proc


def cancel(store: RunStore, kind: str, ident: str) -> bool:
    """Stop a job the page started: SIGTERM to its process group, SIGKILL if it has not stopped within
    :data:`STOP_WAIT_S`; mark it cancelled. False when the job was not running (nothing is done)."""
    record = next((r for r in store.read_launches() if r.get("kind") == kind and r.get("id") == ident), None)
    if record is None or not process_alive(record):
        return False
    pid = int(record["pid"])
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while process_alive(record) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if process_alive(record):
        _signal_group(pid, signal.SIGKILL)
        while process_alive(record) and time.monotonic() < deadline + 5:
            _reap(pid)
            time.sleep(0.1)
    _mark_cancelled(store, kind, ident)
    store.remove_launch(kind, ident)
    return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the job leads its own session and group (start_new_session)


def _reap(pid: int) -> None:
    """Collect the exit status when the job is our own child (so it does not linger as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _mark_cancelled(store: RunStore, kind: str, ident: str) -> None:
    if kind == "train":
        if store.exists(ident) and store.run_info(ident).status in ("running", "interrupted"):
            store.update_run(ident, status="cancelled", error=None)
        return
    # The uploads go whatever the job managed (it deletes them itself unless it died before it could).
    store.remove_uploads(ident)
    status = store.read_job_status(ident)
    if status.get("state") != "done":
        store.write_job_status(ident, {**status, "state": "cancelled", "error": "cancelled from the page"})


# ------------------------------------------------------------------------------------------ the page's two kinds of job
# Each child receives its validated configuration as JSON (config.to_dict), never as text to parse again.


def launch_training(store: RunStore, overrides: list[str], *, config: str | None = None) -> dict[str, Any]:
    """Start ``clusterscope train`` in its own process (it analyses the run when done); return run_id, pid and log.

    The config is read and validated here, so a bad value is reported at once and nothing starts; the child
    gets it as JSON (``--config-json``). A job beyond the page's cap is refused. Cancel it with :func:`cancel`.
    """
    from backend.config import load_config, parse_override, replace, to_dict
    from backend.deployment import require_server_paths_allowed
    from backend.store import new_run_id

    require_server_paths_allowed(parse_override(o)[0] for o in overrides)
    cfg = load_config(config, overrides)
    store.ensure_writable()
    run_id = new_run_id(cfg, store)  # a generated id is reserved now: two launches never share one
    store.require_new(run_id)
    log = store.train_log_path(run_id)
    args = [sys.executable, "-m", "backend.cli", "train", "--store", str(store.root), "--no-progress",
            "--config-json", json.dumps(to_dict(replace(cfg, run_id=run_id)))]
    try:
        log.parent.mkdir(exist_ok=True)
        proc = start(store, "train", run_id, args, log)  # refused when the page's jobs are at the cap
    except BaseException:
        if not cfg.run_id:
            store.release_reservation(run_id)
        raise
    return {"run_id": run_id, "pid": proc.pid, "log": str(log)}


def launch_import(store: RunStore, job_id: str, files: list[Path], *, names: list[str] | tuple[str, ...] = (),
                  arch: str = "auto", overrides: list[str] | tuple[str, ...] = (), data_zip: Path | None = None,
                  data_zip_name: str = "", trust_torchscript: bool = False, analyze: bool = True,
                  epochs: list[int] | None = None) -> dict[str, Any]:
    """Start ``clusterscope import --job JOB_ID`` in its own process; it reports progress in the job's status.json.
    The overrides are checked here and handed over as JSON (``--settings-json``). Refused (and the job's uploads
    deleted) when the page's jobs are at the cap."""
    from backend.deployment import require_server_paths_allowed, require_torchscript_allowed
    from backend.jobs.uploads import user_overrides

    require_torchscript_allowed(trust_torchscript)
    settings = user_overrides(overrides)
    require_server_paths_allowed(settings)
    store.write_job_status(job_id, {"state": "starting", "stage": "starting", "done": 0, "total": 0})
    args = [sys.executable, "-m", "backend.cli", "import", *map(str, files), "--store", str(store.root), "--no-progress",
            "--job", job_id, "--arch", arch, "--settings-json", json.dumps(settings)]
    args += [f"--name={n}" for n in names]  # one token each: a display name starting with '-' stays a value
    if data_zip is not None:
        args += ["--data-zip", str(data_zip), "--data-zip-name", data_zip_name or Path(data_zip).name]
    if trust_torchscript:
        args.append("--trust-torchscript")
    if epochs is not None:
        args += ["--epochs", ",".join(str(int(e)) for e in epochs)]
    if not analyze:
        args.append("--no-analyze")
    log = store.job_log_path(job_id)
    with open(log, "ab") as fh:
        fh.write((json.dumps(args) + "\n").encode())
    try:
        proc = start(store, "import", job_id, args, log)  # refused when the page's jobs are at the cap
    except ClusterScopeError:
        discard_import_job(store, job_id)
        raise
    if store.read_job_status(job_id).get("state") == "starting":  # so a child that dies before reporting is noticed
        store.write_job_status(job_id, {"state": "starting", "stage": "starting", "done": 0, "total": 0,
                                        **this_process(), "pid": proc.pid, "pid_start": process_start_time(proc.pid)})
    return {"job_id": job_id, "pid": proc.pid, "log": str(log)}


def discard_import_job(store: RunStore, job_id: str) -> None:
    """Delete an import job's folder (its uploads and status): for uploads refused before the job starts."""
    store.remove_job(job_id)


def import_job_status(store: RunStore, job_id: str) -> dict[str, Any]:
    """The job's status.json: state (starting, running, done, failed), stage, done, total, run_id, error.

    A job whose process died without saying so is reported as failed."""
    status = store.read_job_status(job_id)
    if job_died(status):
        status |= {"state": "failed", "error": "the import process stopped unexpectedly; see its log " +
                   str(store.job_log_path(job_id))}
    return status
