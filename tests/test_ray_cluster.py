"""A real multi-node Ray cluster on this machine: a head and a worker node, each its own `ray start`
with its own temporary folder and ports, joined with the head's token (docs/sweeps.md, "From this
machine to a cluster"). Sweeps run through `clusterscope sweep --address` in a separate driver process,
as a user runs them; then a worker node is killed mid-trial, a driver is killed mid-sweep, and two
drivers share one store.

Marked ``cluster`` (``pytest -m cluster`` runs these alone). Every Ray process they start is killed
at the end of the module, by the process tree of its own `ray start`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from backend import api
from tests.ports import free_port, process_tree

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))
SWEEP = """[sweep]
name = "{name}"
analyze = {analyze}
retries = 1
[base]
data.name = "digits"
data.target = "superclass"
model.name = "mlp"
model.depth = 2
model.width = 16
train.epochs = {epochs}
train.batch_size = 64
train.device = "cpu"
snapshots.epochs = [0, {epochs}]
analysis.max_samples = 400
analysis.umap_epochs = 20
analysis.cluster_epochs = 20
analysis.baselines = false
[grid]
"train.lr" = {lrs}
"""


def _kill_tree(pid: int) -> None:
    for p in process_tree(pid):  # the whole tree at once: a worker orphaned by its raylet is still in the list
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


class Cluster:
    """A head and worker nodes, each a `ray start --block` process; every port on this machine."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # A fresh HOME: no ~/.ray/auth_token to fall back on, so the nodes and the drivers get the token
        # from the environment only, as a node on another machine would.
        home = base / "home"
        home.mkdir()
        # The nodes' workers at the normal priority (Ray's default, nice 15, would let a parallel `make test`'s
        # other tests starve them), as the workers of the Ray that `clusterscope sweep` starts itself.
        self.env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT), RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0", RAY_worker_niceness="0")
        self.env.pop("RAY_ADDRESS", None)
        self.tmp: dict[int, str] = {}  # each node's Ray temporary folder, by the pid of its `ray start`
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def start(self) -> None:
        self.head = self._start(head=True)
        self.add_worker()

    def _start(self, *, head: bool) -> subprocess.Popen:
        tmp = tempfile.mkdtemp(prefix="csray-", dir="/tmp")  # Ray's sockets need a short path
        args = [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--temp-dir", tmp,
                "--object-store-memory", str(100 * 2**20), "--disable-usage-stats",
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]
        head_args = ["--head", "--port", str(self.port), "--include-dashboard", "false", "--dashboard-port", str(free_port())]
        args += head_args if head else ["--address", self.address]
        with open(self.base / f"{Path(tmp).name}.log", "w") as log:  # the node writes its own copy of the handle
            proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.tmp[proc.pid] = tmp
        return proc

    def add_worker(self) -> None:
        self.workers.append(self._start(head=False))
        self.nodes = self.wait_nodes(1 + len(self.workers))

    def wait_nodes(self, n: int, timeout: float = 240) -> dict[str, str]:
        """Wait until ``n`` nodes are alive; return 'head' / 'worker' -> the node as the sweep names it."""
        code = (f"import json, time, ray\nray.init(address={self.address!r}, log_to_driver=False)\n"
                f"for _ in range({int(timeout * 2)}):\n    alive = [x for x in ray.nodes() if x['Alive']]\n"
                f"    if len(alive) == {n}: break\n    time.sleep(0.5)\n"
                "print(json.dumps([[x['NodeManagerAddress'], x['NodeID'], 'node:__internal_head__' in x['Resources']]"
                " for x in alive]))\n")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=timeout + 30)
        assert out.returncode == 0, out.stderr[-3000:]
        alive = json.loads(out.stdout.strip().splitlines()[-1])
        assert len(alive) == n, alive
        return {("head" if head else "worker"): f"{ip} {node[:8]}" for ip, node, head in alive}  # one worker at a time here

    def kill_worker(self) -> None:
        proc = self.workers.pop()
        _kill_tree(proc.pid)
        proc.wait(timeout=30)

    def processes(self) -> list[int]:
        return [p for proc in [self.head, *self.workers] if proc for p in process_tree(proc.pid)]

    def stop(self) -> None:
        for proc in [*self.workers, self.head]:
            if proc is None:
                continue
            _kill_tree(proc.pid)
            proc.wait(timeout=30)
        for tmp in self.tmp.values():
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """One head and one worker node for the whole module (their start-up stays out of every other test)."""
    c = Cluster(tmp_path_factory.mktemp("ray-cluster"))
    started: list[int] = []
    try:
        c.start()
        started = c.processes()
        yield c
    finally:
        c.stop()
        time.sleep(1)
        left = [p for p in started + c.processes() if Path(f"/proc/{p}").exists() and not _zombie(p)]
        assert not left, f"Ray processes left running: {left}"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def sweep_file(folder: Path, name: str, *, lrs: list[float], epochs: int, analyze: bool) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SWEEP.format(name=name, lrs=json.dumps(lrs), epochs=epochs, analyze=str(analyze).lower()))
    return path


def sweep_cli(c: Cluster, path: Path, store: Path, *args: str, address: bool = True, wait: bool = True, env: dict | None = None):
    """``clusterscope sweep PATH`` in its own driver process; the finished process, or the running one."""
    cmd = [sys.executable, "-m", "backend.cli", "sweep", str(path), "--store", str(store), "--no-progress", *args]
    if address:
        cmd += ["--address", c.address]
    proc = subprocess.Popen(cmd, env=env or c.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def check_store(store: api.RunStore, ids: list[str], epochs: int) -> None:
    """Every run once, complete, each epoch trained once; no claim, staging folder or temporary file left."""
    assert sorted(store.run_ids()) == sorted(ids)
    for run_id in ids:
        assert store.read_run(run_id)["status"] == "complete"
        metrics = pd.read_parquet(store.root / run_id / "metrics.parquet")
        assert not metrics.duplicated(["epoch", "split"]).any() and metrics["epoch"].max() == epochs, metrics
    assert not list((store.root / ".claims").glob("*")) if (store.root / ".claims").exists() else True
    assert not (store.root / ".staging").exists()
    assert not [p for p in store.root.rglob(".*.tmp")]


def tables(store: Path, run_id: str) -> dict[str, pd.DataFrame]:
    """Every Parquet table of a run (metrics, snapshots, analysis), by its path in the run folder."""
    folder = store / run_id
    return {str(p.relative_to(folder)): pd.read_parquet(p) for p in sorted(folder.rglob("*.parquet"))}


TIMES = ("seconds", "time", "wall", "elapsed")  # a table's timing columns differ from one run to the next


def same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert sorted(a) == sorted(b)
    for name, frame in a.items():
        timing = [c for c in frame.columns if any(t in str(c).lower() for t in TIMES)]
        pd.testing.assert_frame_equal(frame.drop(columns=timing), b[name].drop(columns=timing), obj=name)


# ------------------------------------------------------------------------------------- the tests


def test_the_nodes_join_with_the_token_on_this_machine(cluster: Cluster, tmp_path: Path) -> None:
    """Both nodes advertise an address of this machine (binding to it proves it is ours); a node without
    the token is turned away, and a driver without it gets one clear error."""
    for node in cluster.nodes.values():
        ip = node.split()[0]
        with socket.socket() as s:
            s.bind((ip, 0))  # raises for an address that is not this machine's
    env = dict(cluster.env)
    del env["RAY_AUTH_TOKEN"]
    proc = subprocess.Popen([RAY, "start", "--block", "--address", cluster.address, "--num-cpus", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        _kill_tree(proc.pid)  # were it let in, its raylet must not outlive the test
        proc.wait()
    assert proc.returncode != 0 and "token" in out.lower(), out[-2000:]
    path = sweep_file(tmp_path, "no-token", lrs=[0.01], epochs=1, analyze=False)
    refused = sweep_cli(cluster, path, tmp_path / "store", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert f"cannot start or reach the Ray cluster at '{cluster.address}'" in refused.stderr, refused.stderr[-3000:]
    assert "RAY_AUTH_TOKEN" in refused.stderr


def test_sweep_over_two_nodes_equals_the_same_sweep_on_this_machine(cluster: Cluster, tmp_path: Path) -> None:
    """Two runs, one per node (each has one CPU), of one epoch, analysed (snapshots 0 and 1): the fewest that show
    trials on both nodes and results, analysis included, equal to the same sweep run here by a local Ray."""
    path = sweep_file(tmp_path, "two-nodes", lrs=[0.01, 0.1], epochs=1, analyze=True)
    out = sweep_cli(cluster, path, tmp_path / "cluster")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "2 run(s): 2 trained" in out.stdout and "on 2 Ray nodes" in out.stdout, out.stdout
    for node in (cluster.nodes["head"], cluster.nodes["worker"]):
        assert f"node {node}: 1 run(s)" in out.stdout, out.stdout  # one CPU each: a trial on each
    local = sweep_cli(cluster, path, tmp_path / "local", "--workers", "1", address=False)
    assert local.returncode == 0 and "2 trained" in local.stdout, local.stdout + local.stderr[-3000:]
    ids = sorted(api.open_store(tmp_path / "local").run_ids())
    check_store(api.open_store(tmp_path / "cluster"), ids, epochs=1)
    for run_id in ids:
        same_tables(tables(tmp_path / "cluster", run_id), tables(tmp_path / "local", run_id))
        a, b = (json.loads((tmp_path / side / run_id / "run.json").read_text()) for side in ("cluster", "local"))
        assert a["final"] == b["final"] and a["config"] == b["config"] and a["sweep"] == b["sweep"]
    (runs, table), (runs_local, table_local) = (api.compare_sweep(api.open_store(tmp_path / side), "two-nodes")
                                                for side in ("cluster", "local"))  # `clusterscope compare --sweep`'s tables
    pd.testing.assert_frame_equal(runs, runs_local)
    pd.testing.assert_frame_equal(table, table_local)


def wait_for(what, timeout: float = 240, every: float = 0.2):
    """Poll ``what()`` until it returns something truthy; that value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what.__doc__}")


def claims(store: Path) -> dict[str, dict]:
    out = {}
    for path in (store / ".claims").glob("*.json"):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # being written or removed right now
    return out


def run_json(store: Path, run_id: str) -> dict:
    try:
        return json.loads((store / run_id / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def counts(summary: str) -> dict[str, int]:
    """``sweep s: 3 run(s): 1 busy, 2 trained in 9 s`` -> {'busy': 1, 'trained': 2}."""
    head = summary.split(" run(s): ", 1)[1].split(" in ", 1)[0]
    return {state: int(n) for n, state in (part.split() for part in head.split(", "))}


def test_two_drivers_on_one_store_train_each_run_once(cluster: Cluster, tmp_path: Path) -> None:
    path = sweep_file(tmp_path, "twice", lrs=[0.01, 0.03, 0.1], epochs=3, analyze=False)
    drivers = [sweep_cli(cluster, path, tmp_path / "store", wait=False) for _ in range(2)]
    outs = [d.communicate(timeout=300) for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outs
    states = [counts(out) for out, _ in outs]
    assert sum(s.get("trained", 0) for s in states) == 3, outs  # each run trained by one driver; the other left it
    assert all(set(s) <= {"trained", "busy", "done"} for s in states), outs
    check_store(api.open_store(tmp_path / "store"), run_ids(path), 3)


def run_ids(path: Path) -> list[str]:
    """The runs the sweep file expands to."""
    from backend.jobs.sweep_spec import expand

    return [t.run_id for t in expand(api.load_sweep(path))]


def test_a_killed_driver_resumes_without_redoing_finished_runs(cluster: Cluster, tmp_path: Path) -> None:
    store = tmp_path / "store"
    path = sweep_file(tmp_path, "driver", lrs=[0.01, 0.03, 0.1, 0.3], epochs=12, analyze=False)
    driver = sweep_cli(cluster, path, store, wait=False)

    def one_complete():
        """a finished run"""
        return [r for r in api.open_store(store).run_ids() if run_json(store, r).get("status") == "complete"] if store.exists() else []

    wait_for(one_complete)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver only: the nodes are in sessions of their own
    driver.communicate(timeout=30)
    done = {r: os.stat(store / r / "run.json").st_mtime_ns for r in one_complete()}

    def no_live_claim():
        """the killed driver's trials to end (Ray ends the workers of a driver that is gone)"""
        return not any(Path(f"/proc/{c.get('pid')}").exists() for c in claims(store).values())

    wait_for(no_live_claim, timeout=60)
    again = sweep_cli(cluster, path, store)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    states = counts(again.stdout)
    assert states.get("done") == len(done) and "busy" not in states and "failed" not in states, (again.stdout, done)
    assert {r: os.stat(store / r / "run.json").st_mtime_ns for r in done} == done  # finished runs untouched
    check_store(api.open_store(store), run_ids(path), 12)


def test_a_killed_worker_node_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """Last in the module: the cluster is down to its head afterwards."""
    store = tmp_path / "store"
    path = sweep_file(tmp_path, "lost-node", lrs=[0.01, 0.1], epochs=30, analyze=False)
    driver = sweep_cli(cluster, path, store, wait=False)

    def training_on_the_worker():
        """a trial on the worker node with an epoch done"""
        assert driver.poll() is None, driver.communicate()
        on_worker = set(process_tree(cluster.workers[-1].pid))
        return [r for r, c in claims(store).items() if c.get("pid") in on_worker and (run_json(store, r).get("epochs_completed") or 0) >= 1]

    victim, = wait_for(training_on_the_worker, every=0.1)
    cluster.kill_worker()
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out + err[-3000:]
    assert counts(out) == {"resumed": 1, "trained": 1}, out  # the lost trial resumed from its last finished epoch
    assert f"{victim}: attempt 1 of 2 failed" in err and "retrying" in err, err[-3000:]
    assert f"node {cluster.nodes['head']}: 2 run(s)" in out, out  # both ended on the surviving node
    check_store(api.open_store(store), run_ids(path), 30)
