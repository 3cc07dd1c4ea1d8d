"""Run a sweep's trials as Ray tasks: train, then analyse, each run of the store (docs/sweeps.md).

Ray is the distributed engine: without an address it starts on this machine with one CPU per
worker; ``address="HOST:6379"`` (the head's address, or ``"auto"``) joins an existing cluster, whose
nodes must see the store at the same path (docs/sweeps.md). Each task claims its run in the store
(``.claims/<run_id>.json``), so two sweeps, or two copies of one sweep, never train the same run at once; a finished run is
skipped, an interrupted or failed one is resumed from its last finished epoch. A failed task is
retried ``retries`` times, then reported; the other trials go on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from backend.config import RunConfig, from_dict, to_dict
from backend.errors import ClusterScopeError
from backend.jobs.sweep_spec import Sweep, Trial, expand, run_record
from backend.liveness import sigterm_as_interrupt
from backend.store import RunStore


@dataclass
class TrialResult:
    run_id: str
    state: str  # trained | resumed | done (complete before) | busy (another process holds it) | failed
    attempts: int = 0
    error: str | None = None
    test_accuracy: float | None = None
    analysis_errors: int = 0
    seconds: float = 0.0
    node: str = ""  # the Ray node of the last attempt: "<node IP> <first 8 hex digits of the Ray node id>"


@dataclass
class SweepReport:
    sweep: str
    results: list[TrialResult] = field(default_factory=list)
    seconds: float = 0.0
    cluster: bool = False  # joined a Ray cluster (--address): the summary names the nodes

    @property
    def failed(self) -> list[TrialResult]:
        return [r for r in self.results if r.state == "failed"]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.state] = counts.get(r.state, 0) + 1
        parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        text = f"sweep {self.sweep}: {len(self.results)} run(s): {parts} in {self.seconds:.0f} s"
        text += self._nodes()
        for r in self.failed:
            text += f"\n  failed {r.run_id} after {r.attempts} attempt(s): {r.error}"
        for r in self.results:
            if r.state == "busy":
                text += f"\n  {r.run_id} is being trained by another process; run the sweep again once it ends."
            if r.analysis_errors:
                text += f"\n  {r.run_id}: {r.analysis_errors} snapshot(s) could not be analysed (see `clusterscope analyze {r.run_id}`)"
        return text


    def _nodes(self) -> str:
        """`` on 2 Ray nodes`` and a line per node with its runs, on a cluster (or when runs spread over nodes)."""
        nodes: dict[str, int] = {}
        for r in self.results:
            if r.node:
                nodes[r.node] = nodes.get(r.node, 0) + 1
        if not nodes or not (self.cluster or len(nodes) > 1):
            return ""
        lines = "".join(f"\n  node {node}: {n} run(s)" for node, n in sorted(nodes.items()))
        return f" on {len(nodes)} Ray node{'s' if len(nodes) > 1 else ''}{lines}"


def finished(store: RunStore, run_id: str, *, analyze: bool) -> bool:
    """A complete run (and analysed, when the sweep analyses) needs no task."""
    if run_id not in store.run_ids():
        return False
    try:
        status = store.run_info(run_id).status
    except ClusterScopeError:
        return False
    if status == "diverged":  # final: resuming would diverge again
        return True
    return status == "complete" and (not analyze or "params_hash" in store.analysis.read_status(run_id))


# ------------------------------------------------------------------------------------- one trial (in a worker)


def run_trial(root: str, config: dict[str, Any], record: dict[str, Any], analyze: bool, threads: int, *,
              driver: str = "", retry: bool = False) -> dict[str, Any]:
    """Train (or resume) and analyse one run in this process; return a :class:`TrialResult` as a dict.

    Runs inside a Ray worker. Raises on failure so the driver can retry; the run's status in the
    store says what happened (``failed`` with the error, resumable). ``driver`` is the sweep driver's
    token, kept in the claim; a ``retry`` takes over the claim of this driver's failed attempt (its
    worker or node died before it could release it).
    """
    import torch

    from backend.liveness import this_process
    from backend.store import claim_run, release_run

    torch.set_num_threads(threads)  # two 1-CPU trials on two cores must not each spawn two threads
    start = time.perf_counter()
    store = RunStore(root)
    cfg: RunConfig = from_dict(RunConfig, config)
    run_id = cfg.run_id
    node = _this_node()
    if not claim_run(store, run_id, this_process() | {"sweep": driver}, replaces=driver if retry and driver else None):
        return {"run_id": run_id, "state": "busy", "node": node}
    try:
        state = _train_or_resume(store, cfg, record)
        errors = 0
        # a run another driver finished while this trial waited is analysed already: no second analysis
        if analyze and store.run_info(run_id).status == "complete" and not finished(store, run_id, analyze=True):
            from backend.jobs.analyse import analysis_config, analyze_run

            errors = len(analyze_run(store, run_id, analysis_config(store, run_id)).errors)
        return {"run_id": run_id, "state": state, "test_accuracy": store.run_info(run_id).test_accuracy, "analysis_errors": errors,
                "seconds": time.perf_counter() - start, "node": node}
    finally:
        release_run(store, run_id)


def _this_node() -> str:
    """Which Ray node runs this task, as the sweep's summary names it (empty outside Ray)."""
    import ray

    if not ray.is_initialized():
        return ""
    ctx = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()} {ctx.get_node_id()[:8]}"


def _train_or_resume(store: RunStore, cfg: RunConfig, record: dict[str, Any]) -> str:
    from backend.jobs.train import resume_run, train_run

    run_id = cfg.run_id
    if run_id not in store.run_ids():
        if store.exists(run_id):  # a folder without run.json: a crash before the first write
            store.delete_run(run_id)
        train_run(cfg, store, progress=False, extra={"sweep": record})
        return "trained"
    if store.run_info(run_id).status in ("complete", "diverged"):
        return "done"
    resume_run(run_id, store, progress=False, force=True)  # our claim proves no one else is at work on it
    return "resumed"


# ------------------------------------------------------------------------------------- the driver


@contextlib.contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[Any]:
    """Ray, started locally with ``workers`` CPUs (or joined at ``address``); shut down on exit if we started it.

    A Ray already initialised in this process (a notebook, the test suite) is used as it is.
    """
    import logging

    import ray

    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                              "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # Ray renices its workers to 15; a sweep's trials are the work the user asked for (as
            # `clusterscope train`, at the normal priority), so they keep it unless the caller says otherwise.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=workers, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise ClusterScopeError(f"cannot start or reach {where}: {exc}. Check the address (the head's HOST:6379, or auto) and, "
                                "with token authentication, RAY_AUTH_TOKEN, "
                                "or run without --address to start Ray on this machine.") from None
    # Ray's driver aborts on SIGTERM: interrupt instead, so `kill` stops a sweep like Ctrl-C
    previous = sigterm_as_interrupt()
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the trial's own exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def thread_env(cpus: int) -> dict[str, Any]:
    """A Ray task's runtime environment capping its threads at its ``cpus``: numba reads its thread count when
    imported (pynndescent, UMAP), OpenMP/BLAS when loaded, and umap_embed_many caps its parallel fits by
    OMP_NUM_THREADS; without it each worker would start one thread per core (two 1-CPU tasks, four on two)."""
    return {"env_vars": {"NUMBA_NUM_THREADS": str(cpus), "OMP_NUM_THREADS": str(cpus)}}


def ray_tasks(ray: Any, items: list[Any], start: Callable[[Any, int], Any], *, name: Callable[[Any], str],
              limit: int | None, retries: int, say: Callable[[str], None]) -> Iterator[tuple[Any, int, Any, str | None]]:
    """Run ``start(item, attempt)`` (a Ray object ref; ``attempt`` counts from 1) for every item, at most ``limit``
    in flight (None: as many as Ray schedules), a failed one started again up to ``retries`` times (``say`` tells
    each retry and each final failure, the item named by ``name``). Yields (item, attempts, result, None) as each
    item succeeds and (item, attempts, None, error text) when it failed every attempt, in completion order."""
    waiting, running, attempts = list(range(len(items))), {}, [0] * len(items)  # by index: items need not hash

    def submit(i: int) -> None:
        attempts[i] += 1
        running[start(items[i], attempts[i])] = i

    while waiting or running:
        while waiting and (limit is None or len(running) < limit):
            submit(waiting.pop(0))
        ready: list[Any] = []
        while not ready:  # short waits, so Ctrl-C and SIGTERM reach the driver at once
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
        i = running.pop(ready[0])
        try:
            out = ray.get(ready[0])
        except Exception as exc:  # a RayTaskError (the task raised) or a crashed worker or node
            error = _error_text(exc)
            if attempts[i] <= retries:
                say(f"{name(items[i])}: attempt {attempts[i]} of {retries + 1} failed ({error}); retrying.")
                submit(i)
                continue
            say(f"{name(items[i])}: failed after {attempts[i]} attempt(s): {error}")
            yield items[i], attempts[i], None, error
        else:
            yield items[i], attempts[i], out, None


def run_sweep(sweep: Sweep, store: RunStore, *, address: str | None = None, workers: int | None = None,
              retries: int | None = None, progress: bool = True,
              echo: Callable[[str], None] | None = None) -> SweepReport:
    """Run every trial of ``sweep`` that is not finished yet; return what happened to each.

    workers : local Ray CPUs (default: every core); with ``address``, the most trials in flight at once
      (default: as many as the cluster schedules). retries : overrides ``sweep.retries``.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    retries = sweep.retries if retries is None else retries
    if retries < 0:
        raise ClusterScopeError(f"retries must be an integer >= 0; got {retries}.")
    trials = expand(sweep)
    store.ensure_writable()
    root = str(store.root.resolve())
    report = SweepReport(sweep.name, cluster=bool(address))
    todo: list[Trial] = []
    for t in trials:
        if finished(store, t.run_id, analyze=sweep.analyze):
            report.results.append(TrialResult(t.run_id, "done"))
        else:
            todo.append(t)
    say = echo or (lambda msg: tqdm.write(msg, file=sys.stderr))
    bar = tqdm(total=len(trials), initial=len(trials) - len(todo), desc=f"sweep {sweep.name}", unit="run",
               file=sys.stderr, disable=not progress)
    try:
        if todo:
            n_local = workers or os.cpu_count() or 1
            with ray_session(address, max(n_local, sweep.cpus_per_trial)) as ray:
                report.results += _drive(ray, sweep, todo, root, retries, limit=workers if address else None, bar=bar, say=say)
    finally:
        bar.close()
    order = {t.run_id: t.index for t in trials}
    report.results.sort(key=lambda r: order.get(r.run_id, 0))
    report.seconds = time.perf_counter() - start
    return report


def _drive(ray: Any, sweep: Sweep, todo: list[Trial], root: str, retries: int, *, limit: int | None, bar: Any,
           say: Callable[[str], None]) -> list[TrialResult]:
    """Submit the trials, retry failures, collect results (in completion order)."""
    task = ray.remote(run_trial).options(num_cpus=sweep.cpus_per_trial, max_retries=0,
                                         runtime_env=thread_env(sweep.cpus_per_trial))
    driver = uuid.uuid4().hex  # this driver's claims: a retry may take over its own failed attempt's claim

    def start(t: Trial, attempt: int) -> Any:
        return task.remote(root, to_dict(t.config), run_record(sweep, t), sweep.analyze, sweep.cpus_per_trial,
                           driver=driver, retry=attempt > 1)

    results: list[TrialResult] = []
    for t, attempts, out, error in ray_tasks(ray, todo, start, name=lambda t: t.run_id, limit=limit, retries=retries,
                                             say=say):
        results.append(TrialResult(attempts=attempts, **out) if error is None
                       else TrialResult(t.run_id, "failed", attempts, error))
        bar.update(1)
        bar.set_postfix(failed=sum(r.state == "failed" for r in results))
    return results
