"""Start and resume training runs: config -> data, model, trainer -> run folder in the store.

Everything that can be wrong with the input (config, data files, model/data fit, store) is checked
before the run folder is created, so a bad input leaves nothing behind. Once the run exists, its
status in run.json tells what happened: ``running``, ``complete``, ``interrupted`` (Ctrl-C, kill;
resumable), ``failed`` (with the error) or ``diverged`` (the loss became NaN or infinite; not resumable).
"""

from __future__ import annotations

import io
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from backend import schema
from backend.config import RunConfig, from_dict, to_dict, validate
from backend.data import Dataset, load_dataset, stratified_indices
from backend.errors import ConfigError, StoreError
from backend.liveness import process_alive, this_process
from backend.store import RunStore, new_run_id
from backend.training.labels import LabelSchedule
from backend.training.models import build_model
from backend.training.snapshots import ProbeLayer, SnapshotCallback, default_schedule, probe_layers, select_layers
from backend.training.trainer import TensorData, Trainer, resolve_device, to_tensor_data

if TYPE_CHECKING:
    from backend.training.dynamics import DynamicsRecorder, Units


@dataclass
class Prepared:
    """Everything a run needs, built and checked before anything is written."""

    cfg: RunConfig
    data: Dataset
    model: nn.Module
    layers: list[ProbeLayer]
    device: torch.device
    schedule: tuple[int, ...]
    probe_split: dict[str, np.ndarray]  # split -> indices into that split
    dynamics_layers: list[ProbeLayer] | None = None  # [dynamics] layers when enabled
    labels: LabelSchedule | None = None  # [train.labels] when set: the targets trained on per epoch


def prepare(cfg: RunConfig, data: Dataset | None = None) -> Prepared:
    """Load the data (unless given), build the model and resolve layers and device; raise on any bad input."""
    data = data if data is not None else load_dataset(cfg.data)
    n_classes = data.num_targets(cfg.data.target)
    model = build_model(cfg.model, data.input_shape, n_classes, seed=cfg.train.seed)
    if cfg.train.optimizer.startswith("layca-"):
        from backend.training.layca import zero_biases

        zero_biases(model)  # Layca never trains biases: start them at zero as the reference does
    layers = select_layers(probe_layers(model, data.input_shape), cfg.snapshots.layers)
    if cfg.train.augment and data.kind != "image":
        raise ConfigError(f"train.augment is for image data sets only and {data.name!r} holds vectors; set train.augment=false.")
    device = resolve_device(cfg.train.device)
    schedule = tuple(sorted(set(cfg.snapshots.epochs))) or default_schedule(cfg.train.epochs)
    s = cfg.snapshots
    probe = {
        "train": stratified_indices(data.train.label, s.probe_train, seed=s.probe_seed),
        "test": stratified_indices(data.test.label, s.probe_test, seed=s.probe_seed),
    }
    dyn_layers = None
    if cfg.dynamics.enabled:
        every = probe_layers(model, data.input_shape)
        unknown = [n for n in cfg.dynamics.layers if n not in {layer.name for layer in every}]
        if unknown:
            raise ConfigError(f"dynamics.layers names unknown layer(s) {unknown}; this model's probe-able layers are: "
                              f"{', '.join(layer.name for layer in every)}.")
        dyn_layers = [layer for layer in every if not cfg.dynamics.layers or layer.name in cfg.dynamics.layers]
    labels = LabelSchedule(cfg.train.labels, fine=data.train.label, true=data.targets(data.train, cfg.data.target),
                           n_fine=data.num_labels, n_targets=n_classes)
    return Prepared(cfg, data, model, layers, device, schedule, probe, dyn_layers, labels if labels.active else None)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("clusterscope", "torch", "torchvision", "numpy", "pandas", "pyarrow", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def thumbnail_png(x: np.ndarray) -> bytes:
    """PNG bytes of one sample: uint8 (C, H, W) image, or a float vector drawn as a grey tile."""
    if x.dtype == np.uint8:
        img = Image.fromarray(x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0)))
        if max(img.size) > 64:
            img.thumbnail((64, 64))
    else:
        v = x.ravel().astype(np.float64)
        side = int(np.ceil(np.sqrt(v.size)))
        tile = np.zeros(side * side)
        tile[: v.size] = (v - v.min()) / (np.ptp(v) or 1.0)
        img = Image.fromarray((tile.reshape(side, side) * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def samples_table(p: Prepared) -> pa.Table:
    """samples.parquet: the probe set, train samples first, in the order of the activation rows."""
    cols: dict[str, list[Any]] = {k: [] for k in schema.SAMPLES_SCHEMA.names}
    d = p.data
    for split_name in ("train", "test"):
        split = getattr(d, split_name).subset(p.probe_split[split_name])
        sup = d.superclass(split.label)
        for i in range(len(split)):
            label = int(split.label[i])
            cols["sample_id"].append(int(split.sample_id[i]))
            cols["split"].append(split_name)
            cols["label"].append(label)
            cols["label_name"].append(d.label_names[label])
            cols["superclass"].append(None if sup is None else int(sup[i]))
            cols["superclass_name"].append(None if sup is None else d.superclass_names[int(sup[i])])  # type: ignore[index]
            cols["thumbnail"].append(thumbnail_png(split.x[i]))
            cols["file_name"].append(None if split.file_name is None else str(split.file_name[i]))
    return pa.table(cols, schema=schema.SAMPLES_SCHEMA)


class StoreCallbacks:
    """After each epoch: metrics rows, snapshot files, checkpoint and resume state, progress."""

    def __init__(self, store: RunStore, run_id: str, p: Prepared, rows: list[dict[str, Any]],
                 bar: tqdm | None) -> None:
        self.store, self.run_id, self.p, self.rows, self.bar = store, run_id, p, rows, bar
        self.trainer: Trainer | None = None
        probe_x = np.concatenate([getattr(p.data, s).x[p.probe_split[s]] for s in ("train", "test")])
        probe_ids = np.concatenate([getattr(p.data, s).sample_id[p.probe_split[s]] for s in ("train", "test")])
        tensors = to_tensor_data(probe_x, np.zeros(len(probe_x)), p.data.mean, p.data.std)
        self.probe_ids = probe_ids
        self.probe_targets = np.concatenate([p.data.targets(getattr(p.data, s), p.cfg.data.target)[p.probe_split[s]]
                                             for s in ("train", "test")])
        self.snapshots = SnapshotCallback(p.layers, tensors.x, epochs=p.schedule, reduction=p.cfg.snapshots.reduction,
                                          batch_size=p.cfg.snapshots.batch_size, sink=self._write_snapshot)

    def _write_snapshot(self, epoch: int, model: nn.Module, acts: dict[str, np.ndarray], logits: np.ndarray) -> None:
        for layer, values in acts.items():
            self.store.write_activations(self.run_id, layer, epoch, self.probe_ids, values,
                                         reduction=self.p.cfg.snapshots.reduction)
        self.store.write_predictions(self.run_id, epoch, self.probe_ids, logits, self.probe_targets)
        if self.p.cfg.snapshots.checkpoints:
            self.store.save_checkpoint(self.run_id, epoch, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        recorded = self.store.run_info(self.run_id).recorded_epochs
        self.store.update_run(self.run_id, recorded_epochs=sorted(set(recorded) | {epoch}))

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float], *, final: bool) -> None:
        for split in ("train", "test"):
            self.rows.append({"epoch": epoch, "split": split, "loss": metrics[f"{split}_loss"],
                              "accuracy": metrics[f"{split}_accuracy"], "lr": metrics["lr"]})
        self.store.write_metrics(self.run_id, self.rows)
        self.snapshots.on_epoch_end(epoch, model, metrics, final=final)
        if epoch == 0 and self.p.cfg.snapshots.checkpoints and 0 not in self.p.schedule:
            # Layer rotation is measured from the initial weights (SCIENCE.md 3.3): keep them even when
            # epoch 0 is not a snapshot epoch (docs/store.md, schema 2).
            self.store.save_checkpoint(self.run_id, 0, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        assert self.trainer is not None
        state = self.trainer.state_dict()
        state["model"] = {k: v.detach().cpu() for k, v in state["model"].items()}
        self.store.save_resume_state(self.run_id, state)
        final_metrics = {k: metrics[k] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
        self.store.update_run(self.run_id, epochs_completed=epoch, final=final_metrics)
        if self.bar is not None:
            self.bar.n = epoch
            self.bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", acc=f"{metrics['train_accuracy']:.3f}",
                                 test_acc=f"{metrics['test_accuracy']:.3f}")
            self.bar.refresh()


def run_info(run_id: str, p: Prepared) -> dict[str, Any]:
    d, cfg = p.data, p.cfg
    return {
        "run_id": run_id,
        "status": "running",
        "seed": cfg.train.seed,
        "config": to_dict(cfg) | {"run_id": run_id},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "origin": {"kind": "trained"},
        "dataset": {
            "name": d.name, "kind": d.kind, "input_shape": list(d.input_shape), "target": cfg.data.target,
            "label_names": list(d.label_names),
            "superclass_names": list(d.superclass_names) if d.superclass_names else None,
            "n_train": len(d.train), "n_test": len(d.test),
            "n_probe_train": int(len(p.probe_split["train"])), "n_probe_test": int(len(p.probe_split["test"])),
        },
        "model": {"name": cfg.model.name, "parameters": int(sum(t.numel() for t in p.model.parameters()))},
        "layers": [layer.as_dict() for layer in p.layers],
        "reduction": cfg.snapshots.reduction,
        "snapshot_epochs": list(p.schedule),
        "recorded_epochs": [],
        "epochs_completed": None,
        "final": None,
        "device": str(p.device),
        **this_process(),
        "error": None,
    } | ({"label_schedule": p.labels.record()} if p.labels is not None else {})


def train_run(cfg: RunConfig, store: RunStore, *, progress: bool = True, extra: dict[str, Any] | None = None) -> str:
    """Train a new run described by ``cfg`` into ``store``; return its run id.

    ``extra``: more run.json keys written from the start, e.g. ``{"sweep": ...}`` for a sweep's run.
    """
    store.ensure_writable()
    if cfg.run_id:
        store.require_new(cfg.run_id)
    p = prepare(cfg)
    run_id = new_run_id(cfg, store)  # after every check: a generated id is reserved in the store
    store.create_run(run_id, run_info(run_id, p) | (extra or {}))
    with store.lock_run(run_id):
        store.write_samples(run_id, samples_table(p))
        return _fit(store, run_id, p, rows=[], resume_state=None, progress=progress)


def resume_run(run_id: str, store: RunStore, *, progress: bool = True, force: bool = False) -> str:
    """Continue an interrupted (or failed) run from its last finished epoch.

    A run marked 'running' whose process still seems alive is refused unless ``force`` (used by the
    demo builder, whose store lock proves no other builder is at work).
    """
    store.read_run(run_id)  # a missing run is reported as such, not as a lock that cannot be taken
    with store.lock_run(run_id):
        return _resume_locked(run_id, store, progress=progress, force=force)


def _resume_locked(run_id: str, store: RunStore, *, progress: bool, force: bool) -> str:
    info = store.run_info(run_id)
    if info.status == "complete":
        raise StoreError(f"run {run_id!r} is already complete; nothing to resume.")
    if info.status == "diverged":
        raise StoreError(f"run {run_id!r} diverged (its loss became NaN or infinite); resuming would diverge again. "
                         "Train a new run with a lower train.lr.")
    if info.status == "running" and not force and process_alive(info.raw):
        raise StoreError(f"run {run_id!r} is still running (pid {info.raw.get('pid')} on {info.raw.get('host')}); "
                         "stop it first or wait for it to finish.")
    cfg = from_dict(RunConfig, info.raw["config"])  # strict: a run.json without its config is not resumed
    validate(cfg)
    p = prepare(cfg)
    if not store.has_samples(run_id):  # stopped before the probe set was written
        store.write_samples(run_id, samples_table(p))
    state = store.load_resume_state(run_id)
    done = int(state["epoch"]) if state else -1
    store.delete_snapshots_after(run_id, done)
    metrics = store.read_metrics(run_id)
    rows = [r for r in metrics.to_dict("records") if r["epoch"] <= done]
    store.update_run(run_id, status="running", **this_process(), error=None,
                     recorded_epochs=[e for e in info.recorded_epochs if e <= done])
    return _fit(store, run_id, p, rows=rows, resume_state=state, progress=progress)


def _fit(store: RunStore, run_id: str, p: Prepared, *, rows: list[dict[str, Any]],
         resume_state: dict[str, Any] | None, progress: bool) -> str:
    d, cfg = p.data, p.cfg
    train = to_tensor_data(d.train.x, d.targets(d.train, cfg.data.target), d.mean, d.std)
    test = to_tensor_data(d.test.x, d.targets(d.test, cfg.data.target), d.mean, d.std)
    bar = tqdm(total=cfg.train.epochs, desc=run_id, unit="epoch", file=sys.stderr, disable=not progress)
    cbs = StoreCallbacks(store, run_id, p, rows, bar)
    replay = needs_replay(p)  # the units to record are known only at the end: record them in a second pass
    dyn = dynamics_callback(store, run_id, p) if cfg.dynamics.enabled and not replay else None
    # The dynamics flush comes first, so an epoch's recordings are on disk before its resume state.
    trainer = Trainer(p.model, train, test, cfg.train, device=p.device, callbacks=[c for c in (dyn, cbs) if c is not None],
                      labels=p.labels)
    cbs.trainer = trainer
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
        bar.n = trainer.epoch
    try:
        trainer.fit()
        if replay:
            if progress:
                print(f"{run_id}: training again to record the dynamics of the units with the largest outgoing "
                      "weights (dynamics.select, docs/config.md)", file=sys.stderr)
            replay_dynamics(store, run_id, p, train, test, progress=progress)
    except KeyboardInterrupt:
        store.update_run(run_id, status="interrupted")
        raise
    except BaseException as exc:
        store.update_run(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
    if trainer.diverged:
        store.update_run(run_id, status="diverged", stopped_early=False, error=(
            f"training diverged: the loss was NaN or infinite for {trainer.nonfinite_epochs} epoch(s) in a row, up to "
            f"epoch {trainer.epoch} (train.divergence_patience={cfg.train.divergence_patience}); train a new run with "
            "a lower train.lr (or batch norm), and leave this one out of comparisons."))
    else:
        store.update_run(run_id, status="complete", stopped_early=trainer.stopped_early)
    return run_id



# ------------------------------------------------------------------------------------------ dynamics


def needs_replay(p: Prepared) -> bool:
    """True when [dynamics] records the top units by outgoing weight (``dynamics.select = "top_outgoing"``,
    SCIENCE.md 3.4) of a sequential model (mlp, vgg) and some recorded layer has more than ``dynamics.units``."""
    dy = p.cfg.dynamics
    return (dy.enabled and dy.select == "top_outgoing" and dy.units > 0 and p.cfg.model.name in ("mlp", "vgg")
            and any(layer.units > dy.units for layer in p.dynamics_layers or []))


class EpochBar:
    """A trainer callback advancing a tqdm bar by one epoch (the dynamics replay's progress on the command line)."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float], *, final: bool) -> None:
        if epoch > 0:  # epoch 0 is the evaluation before training
            self.bar.update(1)


def replay_dynamics(store: RunStore, run_id: str, p: Prepared, train: TensorData, test: TensorData, *,
                    progress: bool = False) -> None:
    """Record the [dynamics] of the units the thesis shows: per layer, the ``dynamics.units`` units with the
    largest outgoing-weight norm in the trained model ``p.model`` (SCIENCE.md 3.4), by training again from
    the same initialisation. The determinism contract (trainer.py) makes the second pass repeat the first
    (exactly on the CPU); run.json ``dynamics`` keeps the units and the largest weight difference at the end.
    """
    from backend.analysis.dynamics import layer_outgoing_norms, top_units

    n = p.cfg.dynamics.units
    state = {k: v.detach().cpu().numpy() for k, v in p.model.state_dict().items()}
    names = [layer.name for layer in probe_layers(p.model, p.data.input_shape)]
    chosen: dict[str, np.ndarray] = {}
    for layer in p.dynamics_layers or []:
        norms = layer_outgoing_norms(state, names, layer.name)
        ok = norms is not None and len(norms) == layer.units
        chosen[layer.name] = top_units(norms, n) if ok else np.arange(min(n, layer.units))  # type: ignore[arg-type]
    fresh = prepare(p.cfg, data=p.data)
    with tqdm(total=p.cfg.train.epochs, desc=f"{run_id} (dynamics pass)", unit="epoch", file=sys.stderr,
              disable=not progress) as bar:
        trainer = Trainer(fresh.model, train, test, p.cfg.train, device=p.device, labels=fresh.labels,
                          callbacks=[dynamics_callback(store, run_id, fresh, units=chosen), EpochBar(bar)])
        trainer.fit()
    diff = max((float((v.detach().cpu().double() - torch.from_numpy(state[k]).double()).abs().max())
                for k, v in fresh.model.state_dict().items() if v.is_floating_point()), default=0.0)
    store.update_run(run_id, dynamics={"select": "top_outgoing", "units": {k: v.tolist() for k, v in chosen.items()},
                                       "replay_max_weight_diff": diff})


def dynamics_callback(store: RunStore, run_id: str, p: Prepared, *, units: Units | None = None) -> DynamicsRecorder:
    """The [dynamics] recorder (SCIENCE.md 3.4) for this run; writes dynamics/probe.parquet if missing.

    ``units``: which units to record (see :func:`backend.training.dynamics.unit_indices`); default
    the first ``dynamics.units``.

    The probe batch is a stratified (by fine label, so every SynthClust cluster is present) subset
    of the training split, fixed by ``dynamics.probe_seed``.
    """
    from backend.data.builtin import synthclust_difficulty
    from backend.training.dynamics import DynamicsRecorder

    d, cfg = p.data, p.cfg
    dy = cfg.dynamics
    idx = stratified_indices(d.train.label, dy.probe_size, seed=dy.probe_seed)
    split = d.train.subset(idx)
    targets = d.targets(d.train, cfg.data.target)[idx]
    layers = p.dynamics_layers or []
    if not store.has_dynamics_probe(run_id):
        difficulty = (synthclust_difficulty(split.x, split.label, cfg.data.synthclust) if d.name == "synthclust"
                      else np.full(len(idx), np.nan))
        import pandas as pd

        store.write_dynamics_probe(run_id, pd.DataFrame({"sample_id": split.sample_id, "label": split.label,
                                                         "target": targets, "difficulty": difficulty}))
    tensors = to_tensor_data(split.x, targets, d.mean, d.std)

    def sink(epoch: int, records: list[dict[str, Any]]) -> None:
        store.write_dynamics(run_id, epoch, records, split.sample_id)

    return DynamicsRecorder(layers, tensors.x, tensors.y, every=dy.every, units=dy.units if units is None else units,
                            sink=sink)
