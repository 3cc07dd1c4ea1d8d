"""Run folders: the store's top level, the training lock, id reservations and run.json."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import backend.store.layout as layout
from backend import schema
from backend.config import RUN_ID_PATTERN
from backend.errors import StoreError
from backend.store.base import StoreBase
from backend.store.files import atomic_path, now_iso
from backend.store.info import RunInfo


class RunFolders(StoreBase):
    # ---------------------------------------------------------------- store-level
    def ensure_writable(self) -> None:
        """Create the root if needed and prove it is writable, or raise :class:`StoreError`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=layout.WRITE_TEST):
                pass
        except OSError as exc:
            raise StoreError(
                f"store {str(self.root)!r} is not writable ({exc.strerror or exc}); choose another folder "
                "with --store or CLUSTERSCOPE_STORE, or fix its permissions."
            ) from None

    def check_is_store(self) -> None:
        """Raise :class:`StoreError` when the root is not a run store: a file, or a folder that holds files
        besides run folders (a store's top level has only run folders and hidden entries). A missing or
        empty folder is an empty store."""
        what = f"store {str(self.root)!r}"
        fix = "give the folder that holds the runs with --store or CLUSTERSCOPE_STORE (default data/store)."
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise StoreError(f"{what} is a file, not a run store; {fix}")
        try:
            files = sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and not p.is_dir())
        except OSError as exc:
            raise StoreError(f"{what} cannot be read ({exc.strerror or exc}); {fix}") from None
        if files:
            raise StoreError(f"{what} is not a run store: it holds files ({', '.join(files[:3])}"
                             f"{', ...' if len(files) > 3 else ''}) besides run folders; {fix}")

    def run_ids(self) -> list[str]:
        """Ids of the folders that hold a run.json, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if RUN_ID_PATTERN.match(p.name) and (p / layout.RUN_JSON).is_file()
        )

    def exists(self, run_id: str) -> bool:
        return self.run_dir(run_id).exists()

    def delete_run(self, run_id: str) -> None:
        """Remove a run's folder and everything in it (a failed sweep trial, a demo run to redo)."""
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # ---------------------------------------------------------------- the training lock
    @contextlib.contextmanager
    def lock_run(self, run_id: str) -> Iterator[None]:
        """Hold ``<run>/.lock`` while training into the run; raise :class:`StoreError` if another process holds it.

        An exclusive ``fcntl.flock`` on the file: the operating system releases it when the holder
        exits, however it ends (kill -9 included), so no lock is ever left stuck. The empty file stays.
        """
        import fcntl  # POSIX only, like the rest of the training path

        path = self.lock_path(run_id)
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file of run {run_id!r} ({exc.strerror or exc}); "
                             "check that the store is writable.") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(f"run {run_id!r} is being trained by another process right now; wait for it to "
                                 "finish or stop it, then resume.") from None
            yield
        finally:
            os.close(fd)  # closing the file releases the lock

    # ---------------------------------------------------------------- run.json
    def require_new(self, run_id: str) -> None:
        """Raise :class:`StoreError` if ``run_id`` is taken (a reserved id counts as free: see :meth:`reserve_run`)."""
        if self.exists(run_id) and not layout.reserved(self.root, run_id).is_file():
            raise self._exists_error(run_id)

    def reserve_run(self, run_id: str) -> bool:
        """Claim a fresh run id for a run about to be created, by any process: False if it is taken.

        ``mkdir`` is atomic, so of two processes that pick the same id only one gets it. The folder
        holds an empty ``.reserved`` file until :meth:`create_run` (in this or a child process) takes it.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.run_dir(run_id).mkdir()
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"store {str(self.root)!r} is not writable ({exc.strerror or exc}); choose another "
                             "folder with --store or CLUSTERSCOPE_STORE, or fix its permissions.") from None
        layout.reserved(self.root, run_id).touch()
        return True

    def _take_reservation(self, run_id: str) -> bool:
        """Consume a reservation; unlink is atomic, so only one taker succeeds."""
        try:
            layout.reserved(self.root, run_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def release_reservation(self, run_id: str) -> None:
        """Give back a reserved id that will not be used (the launch failed)."""
        if self._take_reservation(run_id):
            with contextlib.suppress(OSError):
                self.run_dir(run_id).rmdir()

    def _exists_error(self, run_id: str) -> StoreError:
        return StoreError(
            f"run {run_id!r} already exists in store {str(self.root)!r}; choose another run_id "
            f"(--set run_id=...), resume it with `clusterscope train --resume {run_id}`, or delete its folder."
        )

    def create_run(self, run_id: str, info: dict[str, Any]) -> None:
        """Create the run folder (it must not exist) and write its run.json."""
        run_dir = self.run_dir(run_id)
        self.ensure_writable()
        try:
            run_dir.mkdir()
        except FileExistsError:
            if not self._take_reservation(run_id):
                raise self._exists_error(run_id) from None
        self.write_run(run_id, info)

    def write_run(self, run_id: str, info: dict[str, Any]) -> None:
        info = dict(info, run_id=run_id, schema_version=schema.SCHEMA_VERSION, updated=now_iso())
        with atomic_path(self.run_json_path(run_id)) as tmp:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=False), encoding="utf-8")

    def read_run(self, run_id: str) -> dict[str, Any]:
        path = self.run_json_path(run_id)
        if not path.is_file():
            raise StoreError(
                f"run {run_id!r} not found in store {str(self.root)!r} (no {path.name}); "
                "run `clusterscope runs` to list the runs."
            )
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path} is not valid JSON ({exc}); the run's metadata is corrupt.") from None
        if not isinstance(info, dict) or "status" not in info:
            raise StoreError(f"{path} is not a ClusterScope run.json: expected an object with a 'status' key.")
        return _upgrade_run_info(info)

    def run_info(self, run_id: str) -> RunInfo:
        """run.json read once into a typed :class:`RunInfo` (raises like :meth:`read_run`)."""
        return RunInfo.from_dict(self.read_run(run_id))

    def update_run(self, run_id: str, **changes: Any) -> dict[str, Any]:
        info = self.read_run(run_id)
        info.update(changes)
        self.write_run(run_id, info)
        return info


def _upgrade_run_info(info: dict[str, Any]) -> dict[str, Any]:
    """Converter for older run.json versions. run.json is the same in versions 1 and 2 (version 2 adds
    analysis columns, which :meth:`AnalysisStore.read` fills with NaN for older files, analysis/baselines.parquet,
    which readers treat as absent, and always saves checkpoints/epoch=0000.pt): nothing to convert."""
    version = int(info.get("schema_version", 1))
    if version > schema.SCHEMA_VERSION:
        raise StoreError(
            f"run {info.get('run_id')!r} was written by a newer ClusterScope (store schema {version}, "
            f"this one reads up to {schema.SCHEMA_VERSION}); upgrade clusterscope."
        )
    return info
