"""Turn user checkpoints into a run of the store, recorded exactly like a run trained here.

Everything that can be wrong (files, formats, architecture, classes, input size, data set) is checked
before anything is written. The run is then built in a staging store (``<store>/.staging/<token>``) and
moved into place by one rename, so an error or a kill never leaves half a run among the runs.

The snapshots use the trained runs' machinery: the same probe set (``snapshots.probe_*``), the same
normalisation, the same hooks (backend.training.snapshots.record) and the same files, so the dashboard
and ``clusterscope analyze`` treat an imported run like any other.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.config import RunConfig, config_from_items
from backend.data import Dataset, load_dataset
from backend.errors import ConfigError
from backend.importing import zipsafe
from backend.importing.architecture import Architecture, ArchitectureError, compare, load_weights, mismatch_message, resolve
from backend.importing.checkpoints import Checkpoint, assign_epochs, checkpoint_files, load_checkpoint, sha256_of
from backend.jobs.uploads import check_settings
from backend.store import RunStore, check_run_id, leftovers, new_run_id

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ImportRequest:
    """What to import. ``names`` are display names for uploaded files (default: the file names)."""

    files: tuple[Path, ...]
    arch: str = "auto"  # auto | mlp | vgg | resnet | tv:<torchvision name>
    settings: dict[str, Any] = field(default_factory=dict)  # data.*, snapshots.*, analysis.*, train.device, run_id
    epochs: tuple[int, ...] | None = None  # one per file, in order; default: read from the names
    names: tuple[str, ...] = ()
    data_zip: Path | None = None  # an image-folder zip (one folder per class, optional superclasses.csv)
    data_zip_name: str = ""
    trust_torchscript: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in origin (e.g. {"via": "upload"})


def _noop(stage: str, done: int, total: int) -> None:
    pass


def import_run(store: RunStore, req: ImportRequest, *, progress: Progress = _noop) -> str:
    """Import ``req`` into ``store``; return the new run's id. Raises ClusterScopeError on bad input.

    A data set extracted from ``req.data_zip`` by this import is deleted again when the import fails or is
    interrupted, so a refused import leaves nothing in ``.datasets/`` (docs/security.md)."""
    store.ensure_writable()
    ckpts, unit = load_all(req, progress)
    first = ckpts[0]
    arch = resolve(req.arch, first.state, scripted_name=getattr(first.scripted, "original_name", "") or "")
    raw = check_settings(req.settings)
    zip_sha256 = sha256_of(req.data_zip) if req.data_zip is not None else None
    extracted = None
    if zip_sha256 is not None and not store.dataset_dir(zip_sha256[:32]).is_dir():
        extracted = store.dataset_dir(zip_sha256[:32])
    try:
        if req.data_zip is not None and zip_sha256 is not None:
            raw |= zip_dataset(store, req.data_zip, req.data_zip_name or req.data_zip.name, raw, zip_sha256)
        return _build(store, req, ckpts, arch, raw, unit, zip_sha256, progress)
    except BaseException:
        if extracted is not None:
            shutil.rmtree(extracted, ignore_errors=True)
        raise


def _build(store: RunStore, req: ImportRequest, ckpts: list[Checkpoint], arch: Architecture, raw: dict[str, Any],
           unit: str, zip_sha256: str | None, progress: Progress) -> str:
    """Configure the run, check every checkpoint against it, record it in a staging store and publish it."""
    raw |= data_from_weights(arch, raw)
    cfg, data = configure(raw, arch, [c.epoch for c in ckpts])
    from backend.jobs.train import prepare

    try:
        p = prepare(cfg, data=data)
    except RuntimeError as exc:  # the forward pass that finds the layers failed: the input does not fit
        raise ArchitectureError(f"input size mismatch: architecture {arch.name!r} cannot process inputs of shape "
                                f"{list(data.input_shape)} from data set {data.name!r} ({str(exc).splitlines()[0]}). "
                                "Choose a data set (or data.image_size / data.channels) the model was trained on.") from None
    expected = {k: tuple(v.shape) for k, v in p.model.state_dict().items()}
    for c in ckpts:  # every file is checked before anything is written
        if any(compare(expected, c.state)):
            raise ArchitectureError(f"checkpoint {c.name!r}: " + mismatch_message(arch.name, expected, c.state))
    run_id = new_run_id(cfg, store, tag="import")
    store.require_new(check_run_id(run_id))
    staged = store.staging(uuid.uuid4().hex)
    leftovers.claim(staged.root)  # a killed import's staging folder is removed at the next start
    try:
        record_run(staged, run_id, p, ckpts, origin(req, ckpts, arch, unit, zip_sha256), progress)
        store.publish(staged, run_id)
    except BaseException:
        store.release_reservation(run_id)  # a generated id was reserved by new_run_id
        raise
    finally:
        store.discard(staged)
    return run_id


def load_all(req: ImportRequest, progress: Progress) -> tuple[list[Checkpoint], str]:
    files = checkpoint_files(list(req.files))
    names = list(req.names) if req.names else [f.name for f in files]
    if len(names) != len(files):
        raise ConfigError(f"names must give one display name per file ({len(files)}); got {len(names)}.")
    epochs, unit = assign_epochs(names, list(req.epochs) if req.epochs is not None else None)
    ckpts = []
    for i, (f, n, e) in enumerate(zip(files, names, epochs, strict=True)):
        progress("reading checkpoints", i, len(files))
        c = load_checkpoint(f, name=n, trust_torchscript=req.trust_torchscript)
        c.epoch = e
        ckpts.append(c)
    progress("reading checkpoints", len(files), len(files))
    return sorted(ckpts, key=lambda c: c.epoch), unit


def import_checkpoints(store: RunStore, files: list[Path], *, arch: str = "auto", settings: Mapping[str, Any] | None = None,
                       epochs: list[int] | None = None, names: list[str] | tuple[str, ...] = (), data_zip: Path | None = None,
                       data_zip_name: str = "", trust_torchscript: bool = False,
                       progress: Progress | None = None, extra: dict[str, Any] | None = None) -> str:
    """Import one checkpoint or a sequence (files or folders) as a new run; return its id (not analysed yet)."""
    from backend.deployment import require_torchscript_allowed

    require_torchscript_allowed(trust_torchscript)
    req = ImportRequest(files=tuple(Path(f) for f in files), arch=arch, settings=check_settings(settings or {}),
                        epochs=tuple(epochs) if epochs is not None else None, names=tuple(names), data_zip=data_zip,
                        data_zip_name=data_zip_name, trust_torchscript=trust_torchscript, extra=extra or {})
    return import_run(store, req, progress=progress or _noop)


def zip_dataset(store: RunStore, path: Path, label: str, raw: dict[str, Any], sha256: str) -> dict[str, Any]:
    """Extract an image-folder zip (``sha256``: its digest) once into ``.datasets/<sha256>`` and point data.* at it."""
    dest = store.dataset_dir(sha256[:32])
    if not dest.is_dir():
        zipsafe.extract_zip(path, dest, label=label)
    root = zipsafe.data_root(dest)
    out: dict[str, Any] = {"data.name": "imagefolder", "data.root": str(root)}
    sup = zipsafe.superclass_file(root)
    if sup is not None and "data.superclass_map" not in raw:
        out["data.superclass_map"] = str(sup)
    return out


def data_from_weights(arch: Architecture, raw: dict[str, Any]) -> dict[str, Any]:
    """For image folders, channels and (for an MLP) image size read from the first layer unless set."""
    if raw.get("data.name") != "imagefolder":
        return {}
    out: dict[str, Any] = {}
    if arch.image_size and "data.image_size" not in raw:
        out["data.image_size"] = arch.image_size
    if arch.in_channels in (1, 3) and "data.channels" not in raw:
        out["data.channels"] = arch.in_channels
    if arch.in_features and "data.image_size" not in raw:
        for c in ([raw["data.channels"]] if "data.channels" in raw else [3, 1]):
            side = math.isqrt(arch.in_features // c)
            if c * side * side == arch.in_features:
                out |= {"data.channels": c, "data.image_size": side}
                break
    return out


def configure(raw: dict[str, Any], arch: Architecture, epochs: list[int]) -> tuple[RunConfig, Dataset]:
    """The run's config (model from the weights, snapshots at the checkpoints' epochs) and its data set."""
    from backend.config import replace

    items = dict(raw)
    items |= {f"model.{k}": v for k, v in arch.model.items()}
    items |= {"train.epochs": max(max(epochs), 1), "snapshots.epochs": sorted(epochs), "snapshots.checkpoints": True}
    target_given = "data.target" in items
    items.setdefault("data.target", "label")
    cfg = config_from_items(items.items())
    data = load_dataset(cfg.data)
    check_input(arch, data)  # the more basic misfit first: the classes of another data set follow from it
    n_label = data.num_labels
    n_super = len(data.superclass_names) if data.superclass_names else None
    counts = f"{n_label} classes" + (f" and {n_super} superclasses" if n_super else " (no superclasses)")
    if target_given:
        if data.num_targets(cfg.data.target) != arch.num_classes:
            raise ArchitectureError(f"wrong number of classes: the checkpoint's classifier has {arch.num_classes} outputs, "
                                    f"data set {data.name!r} has {counts} and data.target is {cfg.data.target!r}. Choose "
                                    "the data set (and target) the model was trained on.")
        return cfg, data
    if n_label == arch.num_classes:
        target = "label"
    elif n_super == arch.num_classes:
        target = "superclass"
    else:
        raise ArchitectureError(f"wrong number of classes: the checkpoint's classifier has {arch.num_classes} outputs but "
                                f"data set {data.name!r} has {counts}. Choose the data set the model was trained on.")
    return replace(cfg, **{"data.target": target}), data


def check_input(arch: Architecture, data: Dataset) -> None:
    shape = data.input_shape
    if arch.in_features is not None and arch.in_features != math.prod(shape):
        raise ArchitectureError(f"input size mismatch: the checkpoint's first layer takes {arch.in_features} inputs per "
                                f"sample, data set {data.name!r} gives {math.prod(shape)} (shape {list(shape)}). Choose the "
                                "data set the model was trained on (for an image folder: data.image_size, data.channels).")
    if arch.in_channels is not None:
        if len(shape) != 3:
            raise ArchitectureError(f"input size mismatch: architecture {arch.name!r} takes images, data set {data.name!r} "
                                    f"gives vectors of shape {list(shape)}.")
        if arch.image_size and tuple(shape[1:]) != (arch.image_size, arch.image_size):
            raise ArchitectureError(f"input size mismatch: the checkpoint's position embeddings fix its input to "
                                    f"{arch.image_size}x{arch.image_size} images, data set {data.name!r} gives "
                                    f"{shape[1]}x{shape[2]}. For an image folder set data.image_size={arch.image_size}.")
        if shape[0] != arch.in_channels:
            raise ArchitectureError(f"input size mismatch: the checkpoint's first convolution takes {arch.in_channels}-channel "
                                    f"images, data set {data.name!r} gives {shape[0]} channel(s). For an image folder set "
                                    f"data.channels={arch.in_channels}.")


def origin(req: ImportRequest, ckpts: list[Checkpoint], arch: Architecture, unit: str,
           zip_sha256: str | None) -> dict[str, Any]:
    """Provenance recorded in run.json (docs/store.md, "origin"); ``zip_sha256``: the data zip's digest."""
    return {"kind": "imported", "imported": datetime.now(UTC).isoformat(timespec="seconds"),
            "format": ckpts[0].format, "architecture": arch.name, "architecture_requested": req.arch or "auto",
            "num_classes": arch.num_classes, "epoch_unit": unit, "torchscript_trusted": bool(req.trust_torchscript),
            "sources": [c.provenance() for c in ckpts],
            "data_zip": ({"file": req.data_zip_name or req.data_zip.name, "sha256": zip_sha256}
                         if req.data_zip is not None else None),
            **req.extra}


def record_run(staged: RunStore, run_id: str, p: Any, ckpts: list[Checkpoint], provenance: dict[str, Any],
               progress: Progress) -> None:
    """Write run.json, samples, and per checkpoint: activations, predictions, checkpoint and metrics."""
    from backend.jobs.train import run_info, samples_table
    from backend.training.snapshots import record
    from backend.training.trainer import evaluate, to_tensor_data

    d, cfg = p.data, p.cfg
    info = run_info(run_id, p) | {"origin": provenance, "snapshot_epochs": [c.epoch for c in ckpts]}
    staged.create_run(run_id, info)
    staged.write_samples(run_id, samples_table(p))
    train = to_tensor_data(d.train.x, d.targets(d.train, cfg.data.target), d.mean, d.std)
    test = to_tensor_data(d.test.x, d.targets(d.test, cfg.data.target), d.mean, d.std)
    splits = ("train", "test")
    probe_x = np.concatenate([getattr(d, s).x[p.probe_split[s]] for s in splits])
    probe_ids = np.concatenate([getattr(d, s).sample_id[p.probe_split[s]] for s in splits])
    targets = np.concatenate([d.targets(getattr(d, s), cfg.data.target)[p.probe_split[s]] for s in splits])
    xs = to_tensor_data(probe_x, np.zeros(len(probe_x)), d.mean, d.std).x
    bs = cfg.snapshots.batch_size
    model = p.model.to(p.device)
    rows: list[dict[str, Any]] = []
    for i, c in enumerate(ckpts):
        progress("recording snapshots", i, len(ckpts))
        load_weights(model, c.state, cfg.model.name, c.name)
        model.eval()
        if c.scripted is not None:
            _same_as_script(model, c, xs[:bs], p.device)
        outputs: list[torch.Tensor] = []
        batches = (xs[j:j + bs].to(p.device) for j in range(0, len(xs), bs))
        acts = record(model, batches, p.layers, cfg.snapshots.reduction, outputs)
        for layer, values in acts.items():
            staged.write_activations(run_id, layer, c.epoch, probe_ids, values, reduction=cfg.snapshots.reduction)
        staged.write_predictions(run_id, c.epoch, probe_ids, torch.cat(outputs).numpy(), targets)
        staged.save_checkpoint(run_id, c.epoch, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        metrics: dict[str, Any] = {}
        for split, tensors in (("train", train), ("test", test)):
            loss, acc = evaluate(model, tensors, p.device)
            metrics |= {f"{split}_loss": loss, f"{split}_accuracy": acc}
            rows.append({"epoch": c.epoch, "split": split, "loss": loss, "accuracy": acc, "lr": None})
        staged.write_metrics(run_id, rows)
        staged.update_run(run_id, epochs_completed=c.epoch, final=metrics,
                          recorded_epochs=[x.epoch for x in ckpts[:i + 1]])
    staged.update_run(run_id, status="complete", stopped_early=False, pid=None)
    progress("recording snapshots", len(ckpts), len(ckpts))


def _same_as_script(model: torch.nn.Module, c: Checkpoint, xb: torch.Tensor, device: torch.device) -> None:
    """The eager model must compute what the TorchScript module computes, or the snapshots would lie."""
    with torch.no_grad():
        ours = model(xb.to(device)).float().cpu()
        theirs = c.scripted(xb).float()
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
        diff = (ours - theirs).abs().max().item() if ours.shape == theirs.shape else float("nan")
        raise ArchitectureError(
            f"checkpoint {c.name!r}: the TorchScript module's outputs differ from those of the recognised architecture with "
            f"its weights (largest difference {diff:.3g}), so its forward pass is not the one recognised. ClusterScope "
            "records activations with hooks, which TorchScript modules do not run; export the weights as a state_dict of a "
            "registry or torchvision model instead.")
