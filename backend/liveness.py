"""Is the process that marked a run 'running' still alive? (A killed run cannot update its status.)
And :func:`sigterm_as_interrupt`, which makes ``kill`` stop our long jobs the way Ctrl-C does."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (fields[0] is proc(5)'s field 3, the state); None off Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(fields: list[str] | None) -> int | None:
    try:
        return None if fields is None else int(fields[19])  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid from the original."""
    return _start_time(_stat_fields(pid))


def this_process() -> dict[str, Any]:
    """What a run.json records about the process that trains it."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start_time(pid), "host": socket.gethostname()}


def process_alive(info: dict[str, Any]) -> bool:
    """Whether the process recorded in a run.json still runs. Only knowable on the same host:
    for a run written on another machine the file is trusted. Our own pid, or a pid now held by a
    process that started at another time, means the recorded process is gone."""
    if info.get("host") != socket.gethostname() or not info.get("pid"):
        return True
    try:
        pid = int(info["pid"])
        if pid == os.getpid():
            return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    fields = _stat_fields(pid)
    if fields is not None and fields[0] in ("Z", "X"):  # exited; only its exit status waits for its parent
        return False
    recorded, now = info.get("pid_start"), _start_time(fields)  # one read of /proc for both
    return recorded is None or now is None or recorded == now


def sigterm_as_interrupt() -> Any:
    """Make SIGTERM (``kill``) raise KeyboardInterrupt, so a job stops as on Ctrl-C: a run is marked
    interrupted, a sweep shuts Ray down and keeps its runs resumable. Returns the previous handler, or
    None off the main thread, where Python cannot install one."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def effective_status(info: dict[str, Any]) -> str:
    """The run.json status, except that a 'running' run whose process is gone is 'interrupted'."""
    status = str(info.get("status"))
    if status == "running" and not process_alive(info):
        return "interrupted"
    return status


def job_died(status: dict[str, Any]) -> bool:
    """Whether an import job's status.json says it starts or runs while its process is gone."""
    return status.get("state") in ("starting", "running") and bool(status.get("pid")) and not process_alive(status)
