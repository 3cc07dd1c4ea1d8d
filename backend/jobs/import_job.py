"""``clusterscope import`` as a job: tqdm on the command line, status.json for the dashboard.

The dashboard starts this in its own process (backend.jobs.launch.launch_import) and polls the job's
``<store>/.imports/<job>/status.json``: state (running, done, failed), stage, done/total, run_id, error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from backend.errors import ClusterScopeError
from backend.liveness import this_process
from backend.store import RunStore


class JobReporter:
    """Progress to a tqdm bar (stderr) and, for a dashboard job, to status.json."""

    def __init__(self, store: RunStore, job_id: str | None, *, bar: bool) -> None:
        from tqdm import tqdm

        self.store, self.job_id = store, job_id
        self.bar = tqdm(total=0, unit="step", file=sys.stderr, disable=not bar, delay=0.5)
        self.status: dict[str, Any] = {"state": "running", "stage": "starting", "done": 0, "total": 0, "run_id": None,
                                       "error": None, **this_process()}
        self._write()

    def _write(self) -> None:
        if self.job_id:
            self.store.write_job_status(self.job_id, self.status)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.status["stage"]:
            self.bar.reset(total=total)
            self.bar.set_description(stage)
        self.bar.total, self.bar.n = total, done
        self.bar.refresh()
        self.status |= {"stage": stage, "done": done, "total": total}
        self._write()

    def finish(self, **changes: Any) -> None:
        self.bar.close()
        self.status |= changes
        self._write()


def run_import_job(store: RunStore, paths: list[Path], *, arch: str, settings: dict[str, Any], epochs: list[int] | None,
                   data_zip: Path | None, trust_torchscript: bool, analyze: bool, progress: bool, job_id: str | None = None,
                   names: tuple[str, ...] = (), data_zip_name: str = "") -> str:
    """Import, then analyse (unless ``analyze`` is false or analysis.auto is off); return the run id.
    ``settings``: the import's dotted config keys and values (backend.jobs.imports.check_settings)."""
    from backend.jobs.analyse import analysis_config, analyze_run
    from backend.jobs.imports import import_checkpoints

    report = JobReporter(store, job_id, bar=progress)
    extra = {"via": "upload" if job_id else "cli"}
    try:
        run_id = import_checkpoints(store, paths, arch=arch, settings=settings, epochs=epochs, names=names,
                                        data_zip=data_zip, data_zip_name=data_zip_name,
                                        trust_torchscript=trust_torchscript, progress=report, extra=extra)
        report.status["run_id"] = run_id
        if analyze and analysis_config(store, run_id).auto:
            report("analysing", 0, 0)
            result = analyze_run(store, run_id, analysis_config(store, run_id), progress=lambda d, t, what: report("analysing", d, t))
            if result.errors:
                report.status["analysis_errors"] = result.errors
                print(result.summary(), file=sys.stderr)
    except ClusterScopeError as exc:
        report.finish(state="failed", error=str(exc))
        raise
    except BaseException as exc:
        report.finish(state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if job_id:  # the uploads are copied into the run (checkpoints/) or refused: either way they go
            store.remove_uploads(job_id)
    report.finish(state="done", stage="done")
    return run_id
