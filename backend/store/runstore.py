"""RunStore: the run store's one object, assembled from its parts (one module each, see backend/store/__init__.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backend.store.layout as layout
from backend.store.analysis import AnalysisFiles
from backend.store.dynamics import DynamicsFiles
from backend.store.jobs import JobFiles
from backend.store.tables import TableFiles


class RunStore(JobFiles, TableFiles, DynamicsFiles):
    """A folder of runs. ``RunStore("data/store")``; nothing is created until a run is written."""

    @property
    def analysis(self) -> AnalysisFiles:
        return AnalysisFiles(self)

    def delete_snapshots_after(self, run_id: str, epoch: int) -> None:
        """Remove snapshots, dynamics, predictions and checkpoints later than ``epoch`` (before a resume redoes them),
        and the temporary files of writes that a killed trainer left unfinished (``.<name>.*.tmp``, see
        :func:`~backend.store.files.atomic_path`). Call it holding the run's training lock: the files under
        ``analysis/`` are left alone, since an analysis may be writing them."""
        run = layout.run_dir(self.root, run_id)
        analysis = layout.analysis_dir(self.root, run_id)
        for tmp in run.rglob(".*.tmp"):
            if analysis not in tmp.parents:
                tmp.unlink(missing_ok=True)
        for row in self.snapshots(run_id).itertuples():
            if row.epoch > epoch:
                Path(row.path).unlink(missing_ok=True)
        for path in self._dynamics_files(run_id):
            m = layout.EPOCH_FILE.match(path.name)
            if m and int(m.group(1)) > epoch:
                path.unlink(missing_ok=True)
        for folder, pattern in ((layout.predictions_dir(self.root, run_id), layout.EPOCH_FILE),
                                (layout.checkpoints_dir(self.root, run_id), layout.CHECKPOINT_FILE)):
            if folder.is_dir():
                for f in folder.iterdir():
                    m = pattern.match(f.name)
                    if m and int(m.group(1)) > epoch:
                        f.unlink(missing_ok=True)


def new_run_id(cfg: Any, store: RunStore, *, tag: str = "") -> str:
    """The configured run id, or ``<data>-<model>[-<tag>]-<YYYYmmdd-HHMMSS>`` made unique in the store.

    A generated id is reserved (:meth:`RunStore.reserve_run`, an atomic mkdir), so two processes
    starting in the same second get two ids (the second with a suffix ``-2``, ``-3``, ...).
    """
    if cfg.run_id:
        return cfg.run_id
    model = cfg.model.name.replace(":", "-").lower()
    base = f"{cfg.data.name}-{model}-{tag + '-' if tag else ''}{datetime.now(UTC):%Y%m%d-%H%M%S}"[:60]
    run_id, k = base, 2
    while not store.reserve_run(run_id):
        run_id, k = f"{base}-{k}", k + 1
    return run_id
