"""The tests' local ports (tests/ports.py): each process of a parallel run has its own, and a server start waits
for the server it started, not another one answering on the same port."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.ports import free_port, worker_range
from tests.test_e2e_browser import stop, wait_healthy

RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default min_worker_port..max_worker_port


def test_each_parallel_process_takes_its_ports_from_a_range_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ranges = [worker_range(f"gw{i}") for i in range(12)]
    assert all(r is not None and len(r) >= 100 for r in ranges)
    ports = [p for r in ranges for p in r]
    assert len(set(ports)) == len(ports), "two processes share ports"
    assert max(ports) < first and min(ports) > RAY_WORKER_PORTS[-1], "a range meets the kernel's or Ray's ports"
    assert worker_range("gw99") is None and worker_range("") is None
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        picked = [free_port() for _ in range(5)]
        assert set(picked) <= set(worker_range(worker)) and len(set(picked)) == 5, (worker, picked)


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


SERVE = ("import http.server, sys\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n"
         "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
         "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n")


def test_a_server_start_waits_for_its_own_server_not_another_on_the_port(tmp_path: Path) -> None:
    """Another process (here this one) answers the health check on the port the started server was given:
    wait_healthy does not take it for the started one, which never listens."""
    other = http.server.HTTPServer(("127.0.0.1", free_port()), _Healthy)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    url, log = f"http://127.0.0.1:{other.server_address[1]}", tmp_path / "log"
    log.write_text("")
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        with pytest.raises(pytest.fail.Exception, match="another process answers"):
            wait_healthy(url, idle, log, timeout=2)
    finally:
        stop(idle)
        other.shutdown()
        other.server_close()
    port = free_port()  # and a server of its own is accepted
    ours = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", ours, log, timeout=30)
    finally:
        stop(ours)
