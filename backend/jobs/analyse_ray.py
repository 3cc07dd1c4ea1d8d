"""Analyse one run's layers as Ray tasks (``clusterscope analyze RUN --ray``), on this machine or a cluster.

Layers are independent; the epochs of a layer are not (in aligned mode each epoch's UMAP starts
from the previous epoch's layout), so each stale layer is one task that analyses its epochs in
order with :func:`backend.jobs.analyse.analyse_layer`, the code of the one-process analysis. The
run-level steps (network measures, layer rotation, baselines, ``status.json``) then run in the
driver, as without Ray (:func:`backend.jobs.analyse.analyze_run` with this module's layer runner).

Same results, bit for bit, as the one-process analysis (tests/test_analyse_ray.py): each task
reads its inputs from the store and writes its tables through it, with the same parameters and
seeds; its torch, numba and OpenMP threads are capped at the task's CPU (as a sweep's trial,
backend.jobs.sweep), which changes no result: every step is seeded and single-threaded where its
result depends on it. A task that fails (a crashed worker, a lost node, an exception) is submitted
again, up to ``retries`` times, and redoes its layer's stale epochs; a layer that still fails has
each of them reported in ``report.errors``, and the other layers go on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from backend.config import AnalysisConfig
from backend.errors import ClusterScopeError
from backend.jobs.analyse import AnalysisReport, LayerRunner, LayerWork, Progress, analyse_layer, analyze_one, layer_inputs
from backend.jobs.sweep import ray_session, ray_tasks, thread_env
from backend.store import RunStore

CPUS_PER_TASK = 1


def layer_task(root: str, run_id: str, work: LayerWork, params: AnalysisConfig, ptag: tuple[str, str]) -> dict[str, Any]:
    """One layer's stale epochs, in a Ray worker: what it analysed and the snapshots that failed.

    The analysis imports torch only to read the classifier's weights from a checkpoint (NC3, one
    ``torch.load`` per snapshot of the layer that feeds the classifier, no computation); torch would
    take its thread count from ``OMP_NUM_THREADS``, which the task's runtime environment sets to its CPUs."""
    store = RunStore(root)
    report = AnalysisReport(run_id)
    analyse_layer(store, run_id, work, layer_inputs(store, run_id, params), params, ptag, report)
    return {"analysed": report.analysed, "errors": report.errors}


def ray_layers(ray: Any, *, limit: int | None = None, retries: int = 2,
               say: Callable[[str], None] | None = None) -> LayerRunner:
    """A layer runner for :func:`~backend.jobs.analyse.analyze_run`: the layers as tasks of the Ray session ``ray``.

    limit : the most tasks in flight (default: as many as Ray schedules). Progress is reported in
    snapshots, as each layer's task ends.
    """
    task = ray.remote(layer_task).options(num_cpus=CPUS_PER_TASK, max_retries=0, runtime_env=thread_env(CPUS_PER_TASK))
    tell = say or (lambda msg: print(msg, file=sys.stderr))

    def run(store: RunStore, run_id: str, work: list[LayerWork], params: AnalysisConfig, ptag: tuple[str, str],
            report: AnalysisReport, progress: Progress | None) -> None:
        root = str(store.root.resolve())
        results: dict[str, dict[str, Any]] = {}
        total, done = sum(s for w in work for _, s in w.epochs), 0
        for w, attempts, out, error in ray_tasks(ray, work, lambda w, _: task.remote(root, run_id, w, params, ptag),
                                                 name=lambda w: f"run {run_id}, layer {w.layer}", limit=limit,
                                                 retries=retries, say=tell):
            results[w.layer] = out if error is None else {"analysed": [], "errors": {
                f"{w.layer}@{e}": f"run {run_id!r}, layer {w.layer!r}, epoch {e}: its Ray task failed {attempts} "
                                  f"time(s), last with {error}; run `clusterscope analyze {run_id}` again."
                for e, stale in w.epochs if stale}}
            done += sum(s for _, s in w.epochs)
            if progress:
                progress(done, total, f"layer {w.layer} done")
        for w in work:  # in layer order, as the one-process analysis reports them
            report.analysed += [(str(layer), int(epoch)) for layer, epoch in results[w.layer]["analysed"]]
            report.errors.update(results[w.layer]["errors"])

    return run


def analyze_runs_ray(store: RunStore, ids: list[str], overrides: tuple[str, ...] = (), *, address: str | None = None,
                     workers: int | None = None, retries: int = 2, progress: bool = True) -> bool:
    """Analyse ``ids`` one after the other, each run's layers spread over Ray; True if all succeeded.

    workers : local Ray CPUs, one layer task each (default: every core); with ``address`` (a running
    cluster, whose nodes see the store at the same path), the most layer tasks in flight at once.
    """
    if retries < 0:
        raise ClusterScopeError(f"retries must be an integer >= 0; got {retries}.")
    store.ensure_writable()
    with ray_session(address, workers or os.cpu_count() or 1) as ray:
        runner = ray_layers(ray, limit=workers if address else None, retries=retries)
        return all([analyze_one(store, run_id, overrides, progress=progress, run_layers=runner) for run_id in ids])
