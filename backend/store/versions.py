"""Version tokens: cheap, hashable values that change when the files a cached reader depends on change.

A token is built from file-system metadata only (modification time in nanoseconds, size, number of
entries), never from the data, so a page can ask for one on every rerun. The dashboard keys its caches
on them (app/loaders.py), which is how a run that is still training or being analysed shows new results
without a manual refresh, and why the app never needs to know where the files are.
"""

from __future__ import annotations

import os
from pathlib import Path

import backend.store.layout as layout
from backend import schema
from backend.errors import StoreError
from backend.store.analysis import check_table
from backend.store.base import StoreBase

Token = tuple[int, ...]
RUN_PARTS = ("run", "metrics", "samples", "snapshots", "activations", "predictions", "dynamics", "checkpoints")


def _file(path: Path) -> Token:
    """(modification time in ns, size in bytes, inode) of a file; (0, -1, 0) when it is missing. The store
    writes by renaming a new file into place, so a rewrite changes the inode even within the clock's tick."""
    try:
        st = path.stat()
    except OSError:
        return (0, -1, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _tree(folder: Path, depth: int = 1) -> Token:
    """(latest modification time in ns, number of entries) of ``folder`` and its entries ``depth`` levels down:
    a file added, replaced (atomic writes rename) or removed changes it. (0, -1) when the folder is missing."""
    try:
        entries = list(os.scandir(folder)) if depth > 0 else []
        latest, count = folder.stat().st_mtime_ns, 0
    except OSError:
        return (0, -1)
    for entry in entries:
        sub = _tree(Path(entry.path), depth - 1) if entry.is_dir(follow_symlinks=False) else _entry(entry)
        latest, count = max(latest, sub[0]), count + 1 + max(sub[1], 0)
    return (latest, count)


def _entry(entry: os.DirEntry[str]) -> Token:
    try:
        return (entry.stat().st_mtime_ns, 0)
    except OSError:
        return (0, 0)


def store_version(store: StoreBase) -> Token:
    """Changes when a run is added or removed, or any run's run.json is rewritten (a run that trains, finishes,
    is analysed). Hidden folders (job records, logs, imports) are left out: they are not runs."""
    root = store.root
    try:
        names = sorted(n for n in os.listdir(root) if not n.startswith("."))
    except OSError:
        return (0, -1)
    stamps: list[int] = [*_file(root)]
    for name in names:
        stamps += _file(root / name / layout.RUN_JSON)
    return tuple(stamps)


def run_version(store: StoreBase, run_id: str, part: str = "run", *, layer: str | None = None,
                epoch: int | None = None) -> Token:
    """Changes when the files of one part of a run change.

    ``part``: ``run`` (run.json), ``metrics``, ``samples``, ``snapshots`` (the list of activation files, and
    run.json), ``activations`` (one file: ``layer`` and ``epoch``), ``predictions`` (``epoch``), ``dynamics``
    (the layers recorded; with ``layer``: that layer's records and the probe losses), ``checkpoints``.
    """
    root = store.root
    if part == "run":
        return _file(layout.run_json(root, run_id))
    if part == "metrics":
        return _file(layout.metrics(root, run_id))
    if part == "samples":
        return _file(layout.samples(root, run_id))
    if part == "snapshots":
        return _tree(layout.activations_dir(root, run_id)) + _file(layout.run_json(root, run_id))
    if part == "activations" and layer is not None and epoch is not None:
        return _file(layout.activation(root, run_id, layer, epoch))
    if part == "predictions" and epoch is not None:
        return _file(layout.predictions(root, run_id, epoch))
    if part == "dynamics" and layer is None:
        return _tree(layout.dynamics_dir(root, run_id, layout.DYNAMICS_UNITS))
    if part == "dynamics":
        return (_tree(layout.dynamics_dir(root, run_id, layout.DYNAMICS_UNITS, layer))
                + _tree(layout.dynamics_dir(root, run_id, layout.DYNAMICS_LOSS)))
    if part == "checkpoints":
        return _tree(layout.checkpoints_dir(root, run_id))
    needs = {"activations": "a layer and an epoch", "predictions": "an epoch"}.get(part)
    raise StoreError(f"run part {part!r} " + (f"needs {needs}." if needs else f"is not one of {', '.join(RUN_PARTS)}."))


def analysis_version(store: StoreBase, run_id: str, table: str, layer: str | None = None,
                     epoch: int | None = None) -> Token:
    """Changes when an analysis table's file changes: one (layer, epoch) file, a whole-run table
    (``network``, ``rotation``, ``baselines``), or, for a per-snapshot table without a layer, any of its files."""
    check_table(table)
    root = store.root
    if layer is not None or table not in schema.ANALYSIS_SCHEMAS:
        return _file(layout.analysis_file(root, run_id, table, layer, epoch))
    return _tree(layout.analysis_dir(root, run_id, table), depth=2)
