"""The store's hidden folders: import staging, uploads and job status, extracted data sets, the dashboard's
job records (``.jobs``) and the claims of sweep trials (``.claims``). Hidden folders (names starting with '.')
are never runs: run_ids() only lists valid run ids."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import backend.store.layout as layout
from backend.errors import StoreError
from backend.store.base import StoreBase
from backend.store.files import atomic_path, now_iso
from backend.store.runs import RunFolders


class JobFiles(RunFolders):
    """Publishing needs the run folders' reservations, hence the base class."""

    def staging(self, token: str) -> Self:
        """A private store under ``.staging/<token>`` where an import builds its run before publishing it."""
        return type(self)(layout.staging_dir(self.root, token))

    def publish(self, staged: StoreBase, run_id: str) -> None:
        """Move a complete run from a staging store into this one with one rename (same file system)."""
        self.require_new(run_id)
        self._take_reservation(run_id)  # a reserved folder is empty now, and rename replaces an empty folder
        try:
            os.rename(staged.run_dir(run_id), self.run_dir(run_id))
        except OSError as exc:
            raise StoreError(f"could not publish run {run_id!r} into {str(self.root)!r} ({exc.strerror or exc}).") from None

    @staticmethod
    def discard(staged: StoreBase) -> None:
        """Remove a staging store and whatever it holds."""
        shutil.rmtree(staged.root, ignore_errors=True)
        with contextlib.suppress(OSError):  # the shared .staging folder goes once it is empty
            staged.root.parent.rmdir()

    def save_upload(self, job_id: str, name: str, data: bytes) -> Path:
        """Write uploaded bytes as ``.imports/<job_id>/files/<name>``; ``name`` must already be a safe file name."""
        path = layout.import_upload(self.root, job_id, name)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path

    def remove_uploads(self, job_id: str) -> None:
        """Delete an import job's uploaded files (``.imports/<job_id>/files``)."""
        shutil.rmtree(self.job_files_dir(job_id), ignore_errors=True)

    def remove_job(self, job_id: str) -> None:
        """Delete an import job's folder: its uploads, status and log."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def write_job_status(self, job_id: str, status: dict[str, Any]) -> None:
        with atomic_path(layout.import_status(self.root, job_id)) as tmp:
            tmp.write_text(json.dumps(status, indent=2), encoding="utf-8")

    def read_job_status(self, job_id: str) -> dict[str, Any]:
        path = layout.import_status(self.root, job_id)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise StoreError(f"import job status {path} is unreadable ({exc}).") from None

    # ---------------------------------------------------------------- jobs started from the dashboard
    # ``.jobs/<kind>-<id>.json``: the process of each training or import job the page started, so the page can
    # count them (backend.jobs.launch's cap) and cancel them; ``.jobs/.lock`` serialises count-then-start.

    def write_launch(self, kind: str, ident: str, record: dict[str, Any]) -> None:
        with atomic_path(self.launch_path(kind, ident)) as tmp:
            tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")

    def read_launches(self) -> list[dict[str, Any]]:
        """Every job record, oldest first; an unreadable record (a crash mid-write cannot make one) is skipped."""
        out = []
        for path in sorted(layout.jobs_dir(self.root).glob("*.json")):
            with contextlib.suppress(OSError, json.JSONDecodeError, UnicodeDecodeError):
                out.append(json.loads(path.read_text(encoding="utf-8")))
        return sorted((r for r in out if isinstance(r, dict)), key=lambda r: str(r.get("started", "")))

    def remove_launch(self, kind: str, ident: str) -> None:
        self.launch_path(kind, ident).unlink(missing_ok=True)

    @contextlib.contextmanager
    def launch_lock(self) -> Iterator[None]:
        """An exclusive lock on ``.jobs/.lock`` (released when the block ends or the process dies)."""
        import fcntl

        self.ensure_writable()
        layout.jobs_dir(self.root).mkdir(exist_ok=True)
        with open(layout.jobs_lock(self.root), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------- run claims


def claim_path(store: StoreBase, run_id: str) -> Path:
    return layout.claim(store.root, run_id)


def claim_run(store: StoreBase, run_id: str, owner: dict[str, Any], *, replaces: str | None = None) -> bool:
    """Take the exclusive right to train or resume ``run_id`` (a sweep trial); False if another process holds it.

    The claim is ``.claims/<run_id>.json``, created with O_EXCL (atomic on local filesystems and
    NFS v3+), holding ``owner`` (pid, pid_start, host, and the sweep driver's token). A claim whose
    process is gone (same host) is stale and taken over; so is a claim whose ``"sweep"`` token is
    ``replaces``: the driver that made it retries a failed attempt, which it knows has ended even when
    its process cannot be checked (on a node that died, on another host).
    """
    from backend.liveness import process_alive

    path = claim_path(store, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                return False  # being written right now, or unreadable: leave it to its owner
            if isinstance(held, dict) and (not process_alive(held) or (replaces is not None and held.get("sweep") == replaces)):
                path.unlink(missing_ok=True)
                continue
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(owner | {"claimed": now_iso()}, fh)
        return True
    return False


def release_run(store: StoreBase, run_id: str) -> None:
    claim_path(store, run_id).unlink(missing_ok=True)
