"""The run store: the only package that reads or writes run folders (layout in docs/store.md).

- :mod:`~backend.store.layout`: every folder and file name, and one function per path (ids validated first);
- :mod:`~backend.store.files`: atomic writes and Parquet tables in and out;
- :mod:`~backend.store.runs`: run folders, the training lock, id reservations, run.json;
- :mod:`~backend.store.info`: :class:`RunInfo`, run.json read once into typed fields;
- :mod:`~backend.store.versions`: version tokens that the dashboard's caches are keyed on;
- :mod:`~backend.store.tables`: metrics, probe samples, activation snapshots, predictions, checkpoints;
- :mod:`~backend.store.dynamics`: the training dynamics' files;
- :mod:`~backend.store.analysis`: the analysis tables;
- :mod:`~backend.store.jobs`: staging, uploads, import jobs, the dashboard's job records, sweep claims;
- :mod:`~backend.store.leftovers`: what killed imports leave behind, and its removal;
- :mod:`~backend.store.runstore`: :class:`RunStore`, the one object assembled from these.

Every path comes from layout.py, so no input can reach outside the store. Every write goes to a temporary
file in the same folder and is renamed into place, so a reader never sees half a file and a crash leaves no
file under the final name.
"""

from __future__ import annotations

from backend.store.analysis import RUN_TABLES, AnalysisFiles
from backend.store.files import atomic_path, now_iso
from backend.store.info import RunInfo
from backend.store.jobs import claim_path, claim_run, release_run
from backend.store.layout import CHECKPOINT_FILE, EPOCH_FILE, LAYER_PATTERN, RESERVED, UPLOAD_NAME, check_layer, check_run_id
from backend.store.runstore import RunStore, new_run_id

__all__ = [
    "RunStore", "RunInfo", "AnalysisFiles", "RUN_TABLES", "new_run_id", "atomic_path", "now_iso", "check_run_id", "check_layer",
    "claim_path", "claim_run", "release_run", "LAYER_PATTERN", "EPOCH_FILE", "CHECKPOINT_FILE", "RESERVED", "UPLOAD_NAME",
]
