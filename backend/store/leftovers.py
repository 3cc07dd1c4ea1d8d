"""What killed imports leave in a store, and its removal at the next start of the dashboard.

An import that fails removes its own files (the uploads, a data set it extracted, its staging folder).
One that is killed cannot: its uploads stay in ``.imports/<job>/files/``, a half-built run in
``.staging/<token>/``, a half-extracted zip in ``.datasets/.<digest>.*`` and a data set no run uses in
``.datasets/<digest>/``. Folders a process works in carry a ``.owner.json`` (:func:`claim`); :func:`clean`,
which ``clusterscope app`` runs before serving, removes every such folder whose owner has died, and the
unused data sets and owner-less folders once they are :data:`GRACE_S` old (a command-line import may
be using one right now).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import backend.store.layout as layout
from backend.liveness import process_alive, this_process
from backend.store.runstore import RunStore

OWNER = layout.OWNER
GRACE_S = 600.0


def claim(folder: Path) -> None:
    """Record this process as the owner of ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNER).write_text(json.dumps(this_process()), encoding="utf-8")


def release(folder: Path) -> None:
    """Drop the owner record (before a folder is renamed into its final place)."""
    (folder / OWNER).unlink(missing_ok=True)


def _owner_alive(folder: Path) -> bool | None:
    """Whether the folder's owner still runs; None when it has no readable owner record."""
    try:
        owner: dict[str, Any] = json.loads((folder / OWNER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return process_alive(owner)


def _old(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > GRACE_S
    except OSError:
        return False


def _stale(folder: Path, now: float) -> bool:
    alive = _owner_alive(folder)
    return (not alive) if alive is not None else _old(folder, now)


def clean(store: RunStore) -> list[Path]:
    """Remove the leftovers of killed imports from ``store``; return what was removed."""
    if not store.root.is_dir():
        return []
    now, removed = time.time(), []
    imports, staging_dir, datasets = (layout.imports_dir(store.root), layout.staging_dir(store.root),
                                      layout.datasets_dir(store.root))
    jobs = sorted(imports.glob("*/")) if imports.is_dir() else []
    live_jobs = False
    for job in jobs:
        state = _job_state(store, job.name)
        if state in ("starting", "running"):
            live_jobs = True
        elif (job / layout.IMPORT_FILES).exists() and (state is not None or _old(job, now)):
            removed.append(job / layout.IMPORT_FILES)
    staging = list(staging_dir.glob("*/")) if staging_dir.is_dir() else []
    removed += [p for p in staging if _stale(p, now)]
    if datasets.is_dir():
        removed += [p for p in datasets.glob(".*") if p.is_dir() and _stale(p, now)]
        if not live_jobs and not any(p not in removed for p in staging):
            used = _datasets_in_use(store)
            removed += [p for p in datasets.iterdir() if p.is_dir() and not p.name.startswith(".")
                        and p.name not in used and _old(p, now)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _job_state(store: RunStore, job_id: str) -> str | None:
    """The job's state, 'failed' when its process died; None without a readable status.json."""
    from backend.liveness import job_died

    with contextlib.suppress(Exception):
        status = store.read_job_status(job_id)
        return "failed" if job_died(status) else status.get("state") or None
    return None


def _datasets_in_use(store: RunStore) -> set[str]:
    """Names of the ``.datasets`` folders that some run's data.root or data.superclass_map points into."""
    base = layout.datasets_dir(store.root).resolve()
    used = set()
    for run_id in store.run_ids():
        try:
            data = (store.read_run(run_id).get("config") or {}).get("data") or {}
        except Exception:
            return {p.name for p in base.iterdir()}
        for key in ("root", "superclass_map"):
            if data.get(key):
                with contextlib.suppress(ValueError, OSError):
                    used.add(Path(data[key]).resolve().relative_to(base).parts[0])
    return used
