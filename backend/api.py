"""The backend's public facade: what the dashboard (``app/``), the command line and users' scripts call.

Only names: the read models live in :mod:`backend.queries` and :mod:`backend.queries_compare`, the
jobs that write runs in :mod:`backend.jobs`, the deployment switches in :mod:`backend.deployment`.
Nothing inside ``backend/`` imports this module (tests/test_architecture.py). Reading the store is
cheap and never imports torch; training and resuming import the training stack when called, so the
dashboard starts fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from backend.analysis.caveats import K_SHARE_LIMIT, intraclass_reason, layer_k_warning
from backend.analysis.genealogy import cluster_members
from backend.analysis.neighbours import METRICS as NEIGHBOUR_METRICS
from backend.analysis.neighbours import SEARCH_FIELDS, nearest_neighbours, picture_overlap, search_samples
from backend.config import AnalysisConfig, RunConfig
from backend.deployment import server_paths_allowed, torchscript_allowed, visitor_text
from backend.deployment import why_off as switch_off_reason
from backend.errors import ClusterScopeError, ConfigError, CorruptFileError, DataError, StoreError
from backend.jobs.analyse import analysis_config, analyze
from backend.jobs.demo import base_overrides as demo_base_overrides
from backend.jobs.demo import demo_status
from backend.jobs.launch import cancel as cancel_job
from backend.jobs.launch import discard_import_job, import_job_status, launch_import, launch_training, max_jobs
from backend.jobs.launch import running as running_jobs
from backend.jobs.sweep import run_sweep
from backend.jobs.sweep_spec import load_sweep
from backend.jobs.uploads import (
    check_data_zip,
    is_torchscript,
    new_import_job,
    parse_epochs,
    safe_upload_name,
    save_upload,
)
from backend.queries import (
    analysis_params,
    analysis_status,
    analysis_version,
    data_set_label,
    data_sets,
    default_compare_runs,
    dynamics_layers,
    has_analysis,
    k_warning,
    list_runs,
    main_data_set,
    mechanisms,
    read_activations,
    read_analysis,
    read_analysis_parts,
    read_dynamics,
    read_metrics,
    read_predictions,
    read_run,
    read_samples,
    rotation_runs,
    run_info,
    run_version,
    snapshots,
    store_version,
)
from backend.queries_changes import cluster_genealogy, neighbour_change, prediction_flips, training_events
from backend.queries_compare import (
    MEASURE_CONTEXT,
    compare,
    compare_sweep,
    k_sensitivity,
    kendall_export,
    kendall_notes,
    list_sweeps,
    mixed_data,
    run_measures,
    sweep_runs,
    tau_over_k,
)
from backend.queries_geometry import (
    GEOMETRY_MEASURES,
    cka_epochs,
    cka_layers,
    cka_params,
    cka_to_last,
    layer_geometry,
    read_cka,
)
from backend.store import RunInfo, RunStore
from backend.store.leftovers import clean as clean_leftovers

__all__ = [
    # errors, the store, the config
    "ClusterScopeError", "ConfigError", "CorruptFileError", "DataError", "StoreError", "RunStore", "RunInfo", "RunConfig",
    "AnalysisConfig", "default_store_root", "open_store",
    # runs and what their pages read (backend.queries)
    "list_runs", "run_info", "read_run", "read_metrics", "read_samples", "snapshots", "read_activations", "read_predictions",
    "read_analysis", "read_analysis_parts", "analysis_params", "analysis_status", "k_warning", "layer_k_warning",
    "intraclass_reason", "K_SHARE_LIMIT", "data_sets", "data_set_label", "main_data_set",
    "default_compare_runs", "has_analysis",
    # version tokens: hashable, cheap, changed when what a cached reader depends on changes (app/loaders.py)
    "store_version", "run_version", "analysis_version",
    # comparisons and sweeps (backend.queries_compare, docs/sweeps.md)
    "run_measures", "MEASURE_CONTEXT", "compare", "mixed_data", "kendall_export", "kendall_notes", "list_sweeps", "sweep_runs",
    "compare_sweep", "k_sensitivity", "tau_over_k", "load_sweep", "run_sweep",
    # representation geometry per layer and epoch (backend.queries_geometry, SCIENCE.md 7)
    "GEOMETRY_MEASURES", "layer_geometry", "read_cka", "cka_params", "cka_layers", "cka_epochs", "cka_to_last",
    # training dynamics and layer rotation (SCIENCE.md 3.3, 3.4)
    "dynamics_layers", "read_dynamics", "mechanisms", "rotation_runs",
    # what changed, and when: per-sample training events (backend.queries_changes, SCIENCE.md 7)
    "training_events", "prediction_flips", "neighbour_change", "cluster_genealogy", "cluster_members",
    # finding samples on the Embeddings page (backend.analysis.neighbours)
    "search_samples", "nearest_neighbours", "picture_overlap", "SEARCH_FIELDS", "NEIGHBOUR_METRICS",
    # jobs: train, analyse, the demo, the page's launched jobs (backend.jobs)
    "train", "resume", "analysis_config", "analyze", "demo_status", "demo_base_overrides", "launch_training",
    "running_jobs", "max_jobs", "cancel_job",
    # importing checkpoints (docs/import.md) and the deployment switches (docs/security.md)
    "import_checkpoints", "is_torchscript", "safe_upload_name", "new_import_job", "save_upload",
    "check_data_zip", "parse_epochs", "launch_import", "import_job_status", "discard_import_job", "clean_leftovers",
    "torchscript_allowed", "server_paths_allowed", "switch_off_reason", "visitor_text",
]

DEFAULT_STORE = Path("data") / "store"


def default_store_root() -> Path:
    """``$CLUSTERSCOPE_STORE`` if set, else ``data/store`` (relative to the working directory)."""
    return Path(os.environ.get("CLUSTERSCOPE_STORE") or DEFAULT_STORE)


def open_store(root: str | os.PathLike[str] | None = None) -> RunStore:
    return RunStore(root if root is not None else default_store_root())


def train(cfg: RunConfig, store: RunStore, *, progress: bool = True) -> str:
    """Train a new run; return its id. See :func:`backend.jobs.train.train_run` (imports torch when called)."""
    from backend.jobs.train import train_run

    return train_run(cfg, store, progress=progress)


def resume(run_id: str, store: RunStore, *, progress: bool = True) -> str:
    """Continue an interrupted or cancelled run (:func:`backend.jobs.train.resume_run`)."""
    from backend.jobs.train import resume_run

    return resume_run(run_id, store, progress=progress)


def import_checkpoints(store: RunStore, files: list[Path], *, arch: str = "auto", overrides: list[str] | tuple[str, ...] = (),
                       **options: Any) -> str:
    """Import one checkpoint or a sequence (files or folders) as a new run; return its id (not analysed yet).
    ``overrides``: ``key=value`` texts as ``--set`` takes them; the other options: backend.jobs.imports.import_checkpoints."""
    from backend.jobs.imports import import_checkpoints as run
    from backend.jobs.uploads import user_overrides

    return run(store, files, arch=arch, settings=user_overrides(overrides), **options)
