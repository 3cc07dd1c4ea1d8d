"""Every folder and file name of the run store, and one function per path (docs/store.md).

::

    <store>/<run_id>/
      run.json                              config, status, layers, snapshot epochs, versions
      metrics.parquet                       one row per (epoch, split)
      samples.parquet                       the probe set with labels and PNG thumbnails
      activations/<layer>/epoch=NNNN.parquet  sample_id + one float32 column per unit
      predictions/epoch=NNNN.parquet        the probe set's predictions at a snapshot epoch
      checkpoints/epoch=NNNN.pt             model state_dict (torch.load(weights_only=True))
      checkpoints/resume.pt                 optimizer/scheduler state of the last finished epoch
      dynamics/probe.parquet                optional ([dynamics]): the probe batch of the training dynamics
      dynamics/loss/epoch=NNNN.parquet      per-sample probe loss at each recording of that epoch
      dynamics/units/<layer>/epoch=NNNN.parquet  per (recording, sample, unit): pre-activation, derivative sign
      analysis/<table>/<layer>/epoch=NNNN.parquet, analysis/<table>.parquet, analysis/status.json
      .lock, .reserved                      the training lock; a claimed id's marker
    <store>/.jobs/ .logs/ .claims/ .imports/ .staging/ .datasets/ .demo.log .demo.lock   (never runs)

Nothing here touches the disk. Every function validates the ids it joins (run id, layer name) first,
so no input can reach outside the store. No other module of ClusterScope spells these names: the
rest of the store builds its paths here, and the rest of the backend asks the store.
"""

from __future__ import annotations

import re
from pathlib import Path

from backend.config import RUN_ID_PATTERN
from backend.errors import StoreError

# ---- names inside a run folder
RUN_JSON = "run.json"
METRICS = "metrics.parquet"
SAMPLES = "samples.parquet"
ACTIVATIONS = "activations"
PREDICTIONS = "predictions"
CHECKPOINTS = "checkpoints"
RESUME = "resume.pt"
DYNAMICS = "dynamics"
DYNAMICS_PROBE = "probe.parquet"
DYNAMICS_LOSS = "loss"
DYNAMICS_UNITS = "units"
ANALYSIS = "analysis"
ANALYSIS_STATUS = "status.json"
RUN_LOCK = ".lock"
RESERVED = ".reserved"  # in a run folder whose id is claimed by a run about to be created

# ---- hidden names at the store's top level (a name starting with '.' is never a run)
JOBS = ".jobs"  # <kind>-<id>.json per job the dashboard started, and .lock
JOBS_LOCK = ".lock"
LOGS = ".logs"  # <run_id>.log of a training started from the dashboard
CLAIMS = ".claims"  # <run_id>.json: a sweep trial's claim
IMPORTS = ".imports"  # <job_id>/files/, status.json, log.txt
IMPORT_FILES = "files"
IMPORT_STATUS = "status.json"
IMPORT_LOG = "log.txt"
STAGING = ".staging"  # <token>/: a store an import builds its run in
DATASETS = ".datasets"  # <digest>/: an extracted image-folder zip
DEMO_LOG = ".demo.log"
DEMO_LOCK = ".demo.lock"
WRITE_TEST = ".write-test-"
OWNER = ".owner.json"  # in a folder an import works in: the process that owns it (leftovers.py)

LAYER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
EPOCH_FILE = re.compile(r"^epoch=(\d{4,})\.parquet$")
CHECKPOINT_FILE = re.compile(r"^epoch=(\d{4,})\.pt$")
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")
DIGEST = re.compile(r"[0-9a-f]{16,64}")
JOB_KINDS = ("train", "import")


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise StoreError(
            f"run id {run_id!r} is not valid: expected 1-64 characters of lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit. Run `clusterscope runs` to see the run ids."
        )
    return run_id


def check_layer(layer: str) -> str:
    if not isinstance(layer, str) or not LAYER_PATTERN.match(layer) or ".." in layer:
        raise StoreError(f"layer name {layer!r} is not valid: expected letters, digits, '.', '_' or '-'.")
    return layer


def epoch_file(epoch: int | None, suffix: str = ".parquet") -> str:
    return f"epoch={int(epoch or 0):04d}{suffix}"


# ---- a run's files
def run_dir(root: Path, run_id: str) -> Path:
    return root / check_run_id(run_id)


def run_json(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / RUN_JSON


def reserved(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / RESERVED


def run_lock(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / RUN_LOCK


def metrics(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / METRICS


def samples(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / SAMPLES


def activations_dir(root: Path, run_id: str, layer: str | None = None) -> Path:
    """``activations/`` of a run, or ``activations/<layer>`` when a layer is given."""
    folder = run_dir(root, run_id) / ACTIVATIONS
    return folder if layer is None else folder / check_layer(layer)


def activation(root: Path, run_id: str, layer: str, epoch: int) -> Path:
    return activations_dir(root, run_id, layer) / epoch_file(epoch)


def predictions_dir(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / PREDICTIONS


def predictions(root: Path, run_id: str, epoch: int) -> Path:
    return predictions_dir(root, run_id) / epoch_file(epoch)


def checkpoints_dir(root: Path, run_id: str) -> Path:
    return run_dir(root, run_id) / CHECKPOINTS


def checkpoint(root: Path, run_id: str, epoch: int) -> Path:
    return checkpoints_dir(root, run_id) / epoch_file(epoch, ".pt")


def resume(root: Path, run_id: str) -> Path:
    return checkpoints_dir(root, run_id) / RESUME


def dynamics_dir(root: Path, run_id: str, part: str | None = None, layer: str | None = None) -> Path:
    """``dynamics/``, ``dynamics/loss``, ``dynamics/units`` or ``dynamics/units/<layer>``."""
    folder = run_dir(root, run_id) / DYNAMICS
    if part is not None:
        if part not in (DYNAMICS_LOSS, DYNAMICS_UNITS):
            raise StoreError(f"dynamics part {part!r} must be {DYNAMICS_LOSS!r} or {DYNAMICS_UNITS!r}.")
        folder = folder / part
    return folder if layer is None else folder / check_layer(layer)


def dynamics_probe(root: Path, run_id: str) -> Path:
    return dynamics_dir(root, run_id) / DYNAMICS_PROBE


def dynamics_loss(root: Path, run_id: str, epoch: int) -> Path:
    return dynamics_dir(root, run_id, DYNAMICS_LOSS) / epoch_file(epoch)


def dynamics_units(root: Path, run_id: str, layer: str, epoch: int) -> Path:
    return dynamics_dir(root, run_id, DYNAMICS_UNITS, layer) / epoch_file(epoch)


def analysis_dir(root: Path, run_id: str, table: str | None = None, layer: str | None = None) -> Path:
    """``analysis/``, ``analysis/<table>`` or ``analysis/<table>/<layer>`` (the table's name is checked by the caller)."""
    folder = run_dir(root, run_id) / ANALYSIS
    if table is not None:
        folder = folder / table
    return folder if layer is None else folder / check_layer(layer)


def analysis_file(root: Path, run_id: str, table: str, layer: str | None = None, epoch: int | None = None) -> Path:
    if layer is None:
        return analysis_dir(root, run_id) / f"{table}.parquet"
    return analysis_dir(root, run_id, table, layer) / epoch_file(epoch)


def analysis_status(root: Path, run_id: str) -> Path:
    return analysis_dir(root, run_id) / ANALYSIS_STATUS


# ---- the store's hidden folders
def jobs_dir(root: Path) -> Path:
    return root / JOBS


def jobs_lock(root: Path) -> Path:
    return jobs_dir(root) / JOBS_LOCK


def launch_record(root: Path, kind: str, ident: str) -> Path:
    if kind not in JOB_KINDS:
        raise StoreError(f"job kind {kind!r} must be 'train' or 'import'.")
    return jobs_dir(root) / f"{kind}-{check_run_id(ident)}.json"


def train_log(root: Path, run_id: str) -> Path:
    return root / LOGS / f"{check_run_id(run_id)}.log"


def claim(root: Path, run_id: str) -> Path:
    return root / CLAIMS / f"{check_run_id(run_id)}.json"


def imports_dir(root: Path) -> Path:
    return root / IMPORTS


def import_job(root: Path, job_id: str) -> Path:
    return imports_dir(root) / check_run_id(job_id)


def import_files(root: Path, job_id: str) -> Path:
    return import_job(root, job_id) / IMPORT_FILES


def import_upload(root: Path, job_id: str, name: str) -> Path:
    if not UPLOAD_NAME.match(name) or ".." in name:
        raise StoreError(f"upload name {name!r} is not a safe file name (letters, digits, '.', '_', '-', '=').")
    return import_files(root, job_id) / name


def import_status(root: Path, job_id: str) -> Path:
    return import_job(root, job_id) / IMPORT_STATUS


def import_log(root: Path, job_id: str) -> Path:
    return import_job(root, job_id) / IMPORT_LOG


def staging_dir(root: Path, token: str | None = None) -> Path:
    return root / STAGING if token is None else root / STAGING / check_run_id(token)


def datasets_dir(root: Path, digest: str | None = None) -> Path:
    if digest is None:
        return root / DATASETS
    if not DIGEST.fullmatch(digest):
        raise StoreError(f"data set folder id {digest!r} must be a hex digest.")
    return root / DATASETS / digest


def demo_log(root: Path) -> Path:
    return root / DEMO_LOG


def demo_lock(root: Path) -> Path:
    return root / DEMO_LOCK
