"""What every part of :class:`backend.store.RunStore` shares: the root and one method per artefact path
(each a thin call into :mod:`backend.store.layout`, which validates the ids), and the table helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

import backend.store.files as files
import backend.store.layout as layout


class StoreBase:
    """A folder of runs. ``RunStore("data/store")``; nothing is created until a run is written."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    # ---------------------------------------------------------------- paths (layout.py)
    def run_dir(self, run_id: str) -> Path:
        return layout.run_dir(self.root, run_id)

    def run_json_path(self, run_id: str) -> Path:
        return layout.run_json(self.root, run_id)

    def metrics_path(self, run_id: str) -> Path:
        return layout.metrics(self.root, run_id)

    def samples_path(self, run_id: str) -> Path:
        return layout.samples(self.root, run_id)

    def activations_dir(self, run_id: str, layer: str) -> Path:
        return layout.activations_dir(self.root, run_id, layer)

    def activation_path(self, run_id: str, layer: str, epoch: int) -> Path:
        return layout.activation(self.root, run_id, layer, epoch)

    def predictions_path(self, run_id: str, epoch: int) -> Path:
        return layout.predictions(self.root, run_id, epoch)

    def checkpoint_path(self, run_id: str, epoch: int) -> Path:
        return layout.checkpoint(self.root, run_id, epoch)

    def resume_path(self, run_id: str) -> Path:
        return layout.resume(self.root, run_id)

    def lock_path(self, run_id: str) -> Path:
        return layout.run_lock(self.root, run_id)

    def dynamics_dir(self, run_id: str) -> Path:
        return layout.dynamics_dir(self.root, run_id)

    def dynamics_probe_path(self, run_id: str) -> Path:
        return layout.dynamics_probe(self.root, run_id)

    def dynamics_loss_path(self, run_id: str, epoch: int) -> Path:
        return layout.dynamics_loss(self.root, run_id, epoch)

    def dynamics_units_path(self, run_id: str, layer: str, epoch: int) -> Path:
        return layout.dynamics_units(self.root, run_id, layer, epoch)

    def job_dir(self, job_id: str) -> Path:
        """``.imports/<job_id>``: the uploaded files and status.json of one import job."""
        return layout.import_job(self.root, job_id)

    def job_files_dir(self, job_id: str) -> Path:
        """``.imports/<job_id>/files``: the job's uploads."""
        return layout.import_files(self.root, job_id)

    def job_log_path(self, job_id: str) -> Path:
        return layout.import_log(self.root, job_id)

    def train_log_path(self, run_id: str) -> Path:
        """``.logs/<run_id>.log``: the output of a training started from the dashboard."""
        return layout.train_log(self.root, run_id)

    def dataset_dir(self, digest: str) -> Path:
        """``.datasets/<digest>``: an extracted image-folder zip, named by the zip's sha256 (shared by imports)."""
        return layout.datasets_dir(self.root, digest)

    def launch_path(self, kind: str, ident: str) -> Path:
        return layout.launch_record(self.root, kind, ident)

    def demo_log_path(self) -> Path:
        return layout.demo_log(self.root)

    def demo_lock_path(self) -> Path:
        return layout.demo_lock(self.root)

    # ---------------------------------------------------------------- tables
    def _write_table(self, path: Path, table: pa.Table) -> None:
        files.write_table(path, table)

    def _read_table(self, path: Path, what: str, columns: list[str] | None = None, *,
                    optional: pa.Schema | None = None) -> pa.Table:
        return files.read_table(path, what, columns, optional=optional)
