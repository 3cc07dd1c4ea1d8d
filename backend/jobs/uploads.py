"""What the Upload page and ``clusterscope import`` do before an import starts: name and store uploaded
files, read epoch lists, recognise TorchScript, check an image-folder zip. No torch here: the page loads fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from backend.config import parse_override
from backend.errors import ClusterScopeError, ConfigError
from backend.store import RunStore

ALLOWED = ("data.", "snapshots.", "analysis.", "train.device", "run_id")
IMPORT_ARCHITECTURES = ("auto", "mlp", "vgg", "resnet", "tv:<torchvision name>")


def is_torchscript(file: BinaryIO) -> bool:
    """Whether an uploaded checkpoint (a seekable binary file) is a TorchScript archive: a zip with a ``code/``
    folder (backend.importing.checkpoints.detect_format). Reads the zip's directory only; rewinds the file."""
    import zipfile

    try:
        file.seek(0)
        if file.read(4) != b"PK\x03\x04":
            return False
        with zipfile.ZipFile(file) as zf:
            return any("/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        file.seek(0)


EPOCH_NUMBER_MAX = 2**31 - 1  # epochs are int32 in the store's tables


def parse_epochs(text: str | None, *, what: str = "epochs") -> list[int] | None:
    """``"0,5,10"`` -> [0, 5, 10]; None for an empty or missing text. ``what`` names the input in the error."""
    if not text:
        return None
    try:
        epochs = [int(e) for e in text.split(",")]
    except ValueError:
        raise ClusterScopeError(f"{what} must be integers separated by commas, e.g. 0,5,10; got {text!r}.") from None
    bad = [e for e in epochs if not 0 <= e <= EPOCH_NUMBER_MAX]
    if bad:
        raise ClusterScopeError(f"{what} must be epoch (or step) numbers in [0, {EPOCH_NUMBER_MAX}]; got {bad[0]}. "
                                "Give the numbers the checkpoints were saved at.")
    return epochs


def safe_upload_name(name: str) -> str:
    """An uploaded file's name reduced to a safe file name: its last component, other characters as '_'."""

    base = re.split(r"[/\\]", str(name))[-1]
    safe = re.sub(r"[^A-Za-z0-9._=-]", "_", base)[-128:].lstrip("._-=")
    if not safe or safe.strip(".") == "":
        raise ClusterScopeError(f"uploaded file name {name!r} has no usable characters; rename the file.")
    return safe


def new_import_job(store: RunStore) -> str:
    """A fresh job id (its folder holds the uploads and status.json of one import)."""
    import uuid
    from datetime import UTC, datetime

    store.ensure_writable()
    return f"import-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def save_upload(store: RunStore, job_id: str, name: str, data: bytes) -> Path:
    """Store uploaded bytes for job ``job_id`` under a validated name; return the path."""
    return store.save_upload(job_id, safe_upload_name(name), data)


def check_data_zip(path: Path, label: str = "") -> int:
    """Check an image-folder zip without extracting it (see backend.importing.zipsafe); return its file count."""
    from backend.importing.zipsafe import check_zip

    return len(check_zip(Path(path), label=label or None))


def user_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``key=value`` texts (``--set``, values in TOML) -> the import's settings, checked by :func:`check_settings`."""
    return check_settings(dict(parse_override(item) for item in overrides))


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The dotted keys an import may set (the model and its training come from the checkpoint)."""
    for key in settings:
        if not key.startswith(ALLOWED):
            raise ConfigError(f"override {key!r} cannot be set for an import: the model and its training come from the "
                              "checkpoint; give data.*, snapshots.*, analysis.*, train.device or run_id.")
    return dict(settings)
