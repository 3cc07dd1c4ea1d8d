"""Analyse several runs, in one process or in a pool of worker processes, with progress on stderr."""

from __future__ import annotations

import sys

from backend import api
from backend.errors import ClusterScopeError


def analyze_one(store: api.RunStore, run_id: str, overrides: tuple[str, ...], *, progress: bool) -> bool:
    """Analyse one run with a tqdm bar; print the summary; return False when a snapshot failed."""
    from tqdm import tqdm

    params = api.analysis_config(store, run_id, overrides)
    bar = tqdm(desc=f"analyse {run_id}", unit="snapshot", file=sys.stderr, disable=not progress, total=0)

    def tick(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what)
        bar.refresh()

    try:
        report = api.analyze(store, run_id, params, progress=tick)
    except ClusterScopeError as exc:
        print(f"run {run_id}: {exc}", file=sys.stderr)
        return False
    finally:
        bar.close()
    print(report.summary(), file=sys.stderr)
    return not report.errors


def analyze_runs(store: api.RunStore, ids: list[str], overrides: tuple[str, ...] = (), *, jobs: int = 1,
                 progress: bool = True) -> bool:
    """Analyse ``ids``; with ``jobs`` > 1 one spawned worker process per run at a time. True if all succeeded."""
    if jobs == 1 or len(ids) == 1:
        return all([analyze_one(store, run_id, overrides, progress=progress) for run_id in ids])
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ok = True
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_analyze_in_worker, str(store.root), run_id, overrides): run_id for run_id in ids}
        for n, future in enumerate(as_completed(futures), start=1):
            summary, run_ok = future.result()
            ok &= run_ok
            print(f"[{n}/{len(ids)}] {summary}", file=sys.stderr)
    return ok


def _analyze_in_worker(root: str, run_id: str, overrides: tuple[str, ...]) -> tuple[str, bool]:
    """One run in a worker process (numba compiles once per worker, not per run)."""
    store = api.open_store(root)
    try:
        report = api.analyze(store, run_id, api.analysis_config(store, run_id, overrides))
    except ClusterScopeError as exc:
        return f"run {run_id}: {exc}", False
    return report.summary(), not report.errors


