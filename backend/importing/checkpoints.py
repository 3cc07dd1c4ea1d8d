"""Read user checkpoint files without ever unpickling them.

Formats, told apart by their first bytes, never by the file name:

- ``state_dict``: a ``torch.save`` zip archive (or the legacy pickle format), loaded with
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers. Common wrappers
  (``{"state_dict": ...}``, ``{"model": ...}``, ...) and the ``module.`` prefix of DataParallel (and
  ``_orig_mod.`` of torch.compile) are removed.
- ``safetensors``: the safetensors format (an 8-byte header length, a JSON header, raw tensors).
- ``torchscript``: a ``torch.jit.save`` zip archive (it has a ``code/`` folder). TorchScript runs the code
  it carries, so it is loaded with ``torch.jit.load`` only when the caller says the file is trusted.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from backend.errors import ClusterScopeError


class ImportFileError(ClusterScopeError):
    """A checkpoint file is empty, truncated, of an unknown format, or unsafe to load."""


FORMATS = ("state_dict", "safetensors", "torchscript")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights", "params")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".ts", ".jit", ".torchscript")
# DataParallel / DistributedDataParallel, torch.compile, and the attribute a Lightning-style wrapper keeps
# the network in; removed only when every key has it (no registry or torchvision model has one shared prefix).
STRIPPED_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "network.")
RESAVE_HINT = ("Re-save the weights alone where the model was trained: torch.save(model.state_dict(), 'weights.pt') "
               "or safetensors.torch.save_file(model.state_dict(), 'weights.safetensors').")
# epoch=3, epoch_003, ep-7, step-1000, iter1200, it_5 (the unit is recorded with the run)
LABEL = re.compile(r"(?<![a-z])(epoch|ep|step|global_step|iteration|iter|it)[=_\-]?(\d+)", re.IGNORECASE)
LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass
class Checkpoint:
    """One loaded checkpoint: its tensors (``state``) and where they came from."""

    name: str  # the file name as the user gave it (display only, never a path)
    path: Path
    format: str  # one of FORMATS
    sha256: str
    size: int  # bytes
    state: dict[str, torch.Tensor]
    epoch: int = 0
    scripted: Any = None  # the loaded TorchScript module (torchscript format only)

    def provenance(self) -> dict[str, Any]:
        return {"file": self.name, "path": str(self.path), "sha256": self.sha256, "bytes": self.size,
                "format": self.format, "epoch": self.epoch}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path: Path, name: str | None = None) -> str:
    """``state_dict``, ``safetensors`` or ``torchscript`` from the file's bytes; raise on anything else."""
    name = name or path.name
    if not path.is_file():
        raise ImportFileError(f"checkpoint {name!r} does not exist or is not a file; give the path of a .pt, .pth, "
                              ".safetensors or TorchScript file.")
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(f"checkpoint {name!r} is empty (0 bytes); the upload or copy did not finish. Copy it again.")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImportFileError(f"checkpoint {name!r} is truncated or corrupt: its zip archive cannot be read ({exc}). "
                                  "Copy the file again.") from None
        if any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
        raise ImportFileError(f"checkpoint {name!r} is a zip archive but not a PyTorch checkpoint (no data.pkl). "
                              "Give a torch.save, safetensors or TorchScript file.")
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:  # pickle protocol 2-5: legacy torch.save
        return "state_dict"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= size - 8:
            return "safetensors"
        raise ImportFileError(f"checkpoint {name!r} looks like safetensors but is truncated: its header claims "
                              f"{header_len} bytes and the file has {size}. Copy the file again.")
    raise ImportFileError(f"checkpoint {name!r} has an unknown format (first bytes {head[:8]!r}); expected a PyTorch "
                          ".pt/.pth state_dict, a .safetensors file or a TorchScript archive.")


def load_checkpoint(path: Path, *, name: str | None = None, trust_torchscript: bool = False) -> Checkpoint:
    """Detect the format and load the tensors; TorchScript only with ``trust_torchscript``."""
    name = name or path.name
    fmt = detect_format(path, name)
    scripted = None
    if fmt == "state_dict":
        state = unwrap(_torch_load(path, name), name)
    elif fmt == "safetensors":
        state = _safetensors_load(path, name)
    else:
        if not trust_torchscript:
            raise ImportFileError(
                f"checkpoint {name!r} is a TorchScript archive. TorchScript carries code that runs when it is loaded, so "
                "ClusterScope loads it only when you say you trust the file (--trust-torchscript, or the checkbox on the "
                f"Upload page; off on shared deployments). Otherwise: {RESAVE_HINT}")
        scripted = _torchscript_load(path, name)
        state = strip_prefixes({k: v for k, v in scripted.state_dict().items() if isinstance(v, torch.Tensor)})
    if not state:
        raise ImportFileError(f"checkpoint {name!r} holds no tensors; expected a model's state_dict. {RESAVE_HINT}")
    return Checkpoint(name, path, fmt, sha256_of(path), path.stat().st_size, state, scripted=scripted)


def _torch_load(path: Path, name: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for hostile or broken files
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            found = re.search(r"(Unsupported global|GLOBAL|Unsupported operand)[^\n]*", text)
            detail = f" ({found.group(0).strip()})" if found else ""
            raise ImportFileError(
                f"checkpoint {name!r} holds Python objects that can only be read by full unpickling{detail}, which could "
                f"run arbitrary code, so ClusterScope refuses it. {RESAVE_HINT}") from None
        raise ImportFileError(f"checkpoint {name!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {text.splitlines()[0] if text else ''}). Copy the file again.") from None


def _safetensors_load(path: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return strip_prefixes(load_file(str(path), device="cpu"))
    except Exception as exc:  # SafetensorError, OSError
        raise ImportFileError(f"checkpoint {name!r} is a truncated or corrupt safetensors file ({exc}). "
                              "Copy the file again.") from None


def _torchscript_load(path: Path, name: str) -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the format people ship
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ImportFileError(f"checkpoint {name!r} is a truncated or corrupt TorchScript archive ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}).") from None
    module.eval()
    return module


def unwrap(obj: Any, name: str) -> dict[str, torch.Tensor]:
    """The state_dict inside ``obj``: a flat {key: tensor} dict, possibly under a wrapper key."""
    for _ in range(3):  # {"checkpoint": {"model": {...}}} at most a few levels deep
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return strip_prefixes(dict(obj))
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
            if tensors:  # a state_dict with a few extra entries (e.g. an int counter)
                return strip_prefixes(tensors)
            break
        obj = inner
    kind = type(obj).__name__ if not isinstance(obj, dict) else f"dict with keys {list(obj)[:6]}"
    raise ImportFileError(f"checkpoint {name!r} holds a {kind}, not a state_dict (a dict of tensors, possibly under "
                          f"one of the keys {', '.join(WRAPPER_KEYS)}). {RESAVE_HINT}")


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the :data:`STRIPPED_PREFIXES` shared by every key (``module.model.fc1.weight`` -> ``fc1.weight``)."""
    changed = True
    while changed and state:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


# ------------------------------------------------------------------------------ epoch labels


def epoch_label(name: str) -> tuple[int, str] | None:
    """(number, unit) from a file name: ``epoch=3.pt`` -> (3, "epoch"), ``step-1000.safetensors`` -> (1000, "step")."""
    stem = name.rsplit("/", 1)[-1]
    found = list(LABEL.finditer(stem))
    if found:
        m = next((f for f in found if f.group(1).lower() in ("epoch", "ep")), found[-1])
        return int(m.group(2)), "epoch" if m.group(1).lower() in ("epoch", "ep") else "step"
    return None


def assign_epochs(names: list[str], epochs: list[int] | None = None) -> tuple[list[int], str]:
    """The epoch (or step) of each file and the unit; explicit ``epochs`` win (one per file, in order).

    One file without an epoch/step label is epoch 0. Several files must all be labelled (``epoch=N``,
    ``step-N``, or else a trailing number each) with distinct values.
    """
    if epochs is not None:
        if len(epochs) != len(names):
            raise ImportFileError(f"--epochs must give one epoch per checkpoint ({len(names)} files); got {len(epochs)}: "
                                  f"{epochs}.")
        values, unit = [int(e) for e in epochs], "epoch"
    else:
        labels = [epoch_label(n) for n in names]
        if all(lab is not None for lab in labels):
            units = {lab[1] for lab in labels if lab}
            if len(units) > 1:
                raise ImportFileError(f"the checkpoints mix epoch and step labels ({', '.join(names)}); label all files "
                                      "the same way or give --epochs.")
            values, unit = [lab[0] for lab in labels if lab], units.pop()
        elif len(names) == 1:  # a lone file's number is more often a model's (resnet18) than an epoch
            values, unit = [0], "epoch"
        else:
            numbers = [LAST_NUMBER.search(n.rsplit(".", 1)[0]) for n in names]
            if not all(numbers):
                bad = [n for n, m in zip(names, numbers, strict=True) if not m]
                raise ImportFileError(f"cannot tell the epoch of {bad}: name the files like epoch=3.pt, epoch_003.pt or "
                                      "step-1000.safetensors, or give the epochs in order (--epochs 0,5,10).")
            values, unit = [int(m.group(1)) for m in numbers if m], "epoch"
    if any(v < 0 for v in values):
        raise ImportFileError(f"epochs must be >= 0; got {values}.")
    if len(set(values)) != len(values):
        raise ImportFileError(f"two checkpoints have the same epoch ({dict(zip(names, values, strict=True))}); each "
                              "checkpoint of a run needs its own epoch. Rename the files or give --epochs.")
    return values, unit


def checkpoint_files(paths: list[Path]) -> list[Path]:
    """Expand folders into the checkpoint files they hold (sorted); files are kept as given."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in CHECKPOINT_SUFFIXES)
            if not found:
                raise ImportFileError(f"folder {str(p)!r} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)}).")
            out += found
        else:
            out.append(p)
    if not out:
        raise ImportFileError("give at least one checkpoint file or folder.")
    return out
