"""Local ports for the servers and Ray nodes the tests start, and whose server answers on one.

`make test` runs the suite in several processes (pytest-xdist). A port picked by binding port 0 and closing the
socket is free only until someone else binds it: another process of the same run picking a port the same way can
get it too, and its server would then answer our health checks. So each process of a parallel run takes its ports
from a range of its own (``PYTEST_XDIST_WORKER`` gw0, gw1, ...), below the kernel's ephemeral ports (from 32768,
where ``bind(0)`` and outgoing connections take theirs) and above Ray's worker ports (10002-19999); and
:func:`serves` tells whether the process that answers on a port is the one the test started.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

FIRST, PER_WORKER, WORKERS = 20000, 1000, 12  # ports 20000-31999, 1000 for each of at most 12 processes
_next: dict[int, int] = {}  # per worker: the offset in its range of the next port to try


def worker_range(worker: str | None = None) -> range | None:
    """The ports of the parallel run's process ``worker`` (default: this one's, from PYTEST_XDIST_WORKER);
    None outside a parallel run, or for a worker number beyond the ranges."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    if not (name.startswith("gw") and name[2:].isdigit()) or int(name[2:]) >= WORKERS:
        return None
    start = FIRST + PER_WORKER * int(name[2:])
    return range(start, start + PER_WORKER)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A local port nobody listens on: in a parallel run one of this process's range (taken in turn from a random
    start, so two runs at once rarely meet), else one the kernel chooses."""
    ports = worker_range()
    if ports is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    key = ports.start
    for _ in range(len(ports)):
        offset = _next.setdefault(key, random.randrange(len(ports)))
        _next[key] = (offset + 1) % len(ports)
        if _bindable(ports[offset]):
            return ports[offset]
    raise RuntimeError(f"no free local port in {ports.start}-{ports.stop - 1}")


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc), parents first."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    out, i = [pid], 0
    while i < len(out):
        out += [child for child, p in parent.items() if p == out[i]]
        i += 1
    return out


def serves(pid: int, port: int) -> bool:
    """Whether the socket listening on local ``port`` belongs to process ``pid`` or one below it (Linux /proc)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                listening.add(fields[9])
    return any(listening & _socket_inodes(p) for p in process_tree(pid))
