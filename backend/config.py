"""Run configuration: frozen dataclasses, loaded from TOML plus ``key=value`` overrides.

A run is described by one :class:`RunConfig` made of the sections ``[data]``, ``[model]``,
``[train]``, ``[snapshots]``, ``[dynamics]`` and ``[analysis]`` (see ``configs/*.toml`` and ``docs/config.md``). Unknown keys are
rejected by name, every value is validated before anything is written, and the effective
configuration is saved in the run's ``run.json``. The sections are defined in :mod:`backend.config_types`
and re-exported here: import them from this module.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from backend.config_types import AnalysisConfig as AnalysisConfig
from backend.config_types import DataConfig as DataConfig
from backend.config_types import DynamicsConfig as DynamicsConfig
from backend.config_types import LabelScheduleConfig as LabelScheduleConfig
from backend.config_types import ModelConfig as ModelConfig
from backend.config_types import RunConfig as RunConfig
from backend.config_types import SnapshotConfig as SnapshotConfig
from backend.config_types import SynthClustConfig as SynthClustConfig
from backend.config_types import TrainConfig as TrainConfig
from backend.errors import ConfigError

RUN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def read_toml(p: Path, *, what: str, missing: str) -> dict[str, Any]:
    """The TOML file ``p`` as a dict; a :class:`ConfigError` starting with ``what`` when it is missing
    (``what`` + " does not exist" + ``missing``) or not valid TOML."""
    if not p.is_file():
        raise ConfigError(f"{what} does not exist{missing}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} is not valid TOML: {exc}. Fix the file and try again.") from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a TOML config (or start from the defaults), apply ``key=value`` overrides, validate.

    Raises :class:`ConfigError` naming the file, key or value at fault.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        raw = read_toml(p, what=f"config file {str(p)!r}",
                        missing="; give the path of a TOML file, e.g. configs/digits_mlp.toml.")
    return config_from_items((parse_override(item) for item in overrides), raw)


def config_from_items(items: Iterable[tuple[str, Any]], raw: dict[str, Any] | None = None) -> RunConfig:
    """A validated config from dotted keys and values (``("train.lr", 0.1)``), set in order on top of
    ``raw`` (a nested config as read from TOML; the defaults when None)."""
    raw = {} if raw is None else raw
    for key, value in items:
        _set_dotted(raw, key, value)
    cfg = from_dict(RunConfig, raw)
    validate(cfg)
    return cfg


def config_from_json(text: str) -> RunConfig:
    """A validated config from the JSON of :func:`to_dict` (how a parent process hands a run to its child)."""
    import json

    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the config JSON is not valid JSON: {exc}; it must be the output of config.to_dict.") from None
    cfg = from_dict(RunConfig, raw)
    validate(cfg)
    return cfg


def parse_override(item: str) -> tuple[str, Any]:
    """Parse ``train.lr=0.1`` into ``("train.lr", 0.1)``; the value is read as TOML, else as a string."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. train.lr=0.1.")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key, value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is a value, not a section.")
        node = child
    node[parts[-1]] = value


def from_dict(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types by name."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a table of keys; got {raw!r}.")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown config key {prefix + key!r}; expected one of {', '.join(prefix + n for n in names)}.{hint}"
            )
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if isinstance(tp, type) and is_dataclass(tp):
        return from_dict(tp, value, key + ".")
    origin = get_origin(tp)
    if origin is tuple:
        (item_tp, _) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(item_tp, v, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise ConfigError(f"{key} must be true or false; got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer; got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number; got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string; got {value!r}.")
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # pragma: no cover - programming error


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able nested dicts (tuples become lists)."""
    return json_ready(dataclasses.asdict(cfg))


def json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def replace(cfg: RunConfig, **changes: Any) -> RunConfig:
    """``dataclasses.replace`` with dotted keys: ``replace(cfg, **{"train.lr": 0.1})``."""
    raw = to_dict(cfg)
    for key, value in changes.items():
        _set_dotted(raw, key, value)
    new = from_dict(RunConfig, raw)
    validate(new)
    return new


# --------------------------------------------------------------------------------------------
# Validation: every rule names the key, the allowed range and the value received.

DATASETS = ("digits", "synthclust", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder")
MODELS = ("mlp", "vgg", "resnet")
OPTIMIZERS = ("sgd", "adam", "layca-sgd", "layca-adam")
WEIGHT_DECAY_STYLES = ("torch", "keras_l2")


def _check(ok: bool, key: str, allowed: str, value: Any, hint: str = "") -> None:
    if not ok:
        msg = f"{key} must be {allowed}; got {value!r}."
        if hint:
            msg += " " + hint
        raise ConfigError(msg)


def validate(cfg: RunConfig) -> None:
    """Check every value's range; raise :class:`ConfigError` on the first bad one."""
    if cfg.run_id:
        _check(bool(RUN_ID_PATTERN.match(cfg.run_id)), "run_id",
               "1-64 characters of lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
               cfg.run_id)
    d, m, t, s = cfg.data, cfg.model, cfg.train, cfg.snapshots
    _check(d.name in DATASETS, "data.name", f"one of {', '.join(DATASETS)}", d.name)
    _check(d.target in ("label", "superclass"), "data.target", "'label' or 'superclass'", d.target)
    _check(4 <= d.image_size <= 512, "data.image_size", "an integer in [4, 512]", d.image_size)
    _check(d.channels in (1, 3), "data.channels", "1 or 3", d.channels)
    _check(0.0 < d.test_fraction < 1.0, "data.test_fraction", "a number in (0, 1)", d.test_fraction)
    sc = d.synthclust
    _check(sc.dim >= 1, "data.synthclust.dim", "an integer >= 1", sc.dim)
    _check(sc.classes >= 2, "data.synthclust.classes", "an integer >= 2", sc.classes)
    _check(sc.clusters_per_class >= 1, "data.synthclust.clusters_per_class", "an integer >= 1", sc.clusters_per_class)
    _check(sc.active_per_centroid >= 1, "data.synthclust.active_per_centroid", "an integer >= 1", sc.active_per_centroid)
    n_centroids = sc.classes * sc.clusters_per_class
    _check(n_centroids * sc.active_per_centroid <= sc.dim, "data.synthclust.dim",
           f"at least classes*clusters_per_class*active_per_centroid = {n_centroids * sc.active_per_centroid} "
           "(centroids use non-overlapping coordinates)", sc.dim)
    _check(sc.train_per_cluster >= 1, "data.synthclust.train_per_cluster", "an integer >= 1", sc.train_per_cluster)
    _check(sc.test_per_cluster >= 1, "data.synthclust.test_per_cluster", "an integer >= 1", sc.test_per_cluster)
    _check(sc.noise >= 0, "data.synthclust.noise", "a number >= 0", sc.noise)
    _check(sc.seed >= 0, "data.synthclust.seed", "an integer >= 0", sc.seed)

    known = m.name in MODELS or (m.name.startswith("tv:") and len(m.name) > 3)
    _check(known, "model.name", "one of mlp, vgg, resnet or tv:<torchvision model>, e.g. tv:resnet18", m.name)
    _check(m.depth >= 1, "model.depth", "an integer >= 1", m.depth)
    if m.name == "resnet":
        _check((m.depth - 2) % 6 == 0 and m.depth >= 8, "model.depth", "6n+2 for a resnet (8, 14, 20, 32, 56, ...)", m.depth)
    _check(m.width >= 1, "model.width", "an integer >= 1", m.width)
    _check(1 <= m.stages <= 6, "model.stages", "an integer in [1, 6]", m.stages)
    _check(m.convs_per_stage >= 1, "model.convs_per_stage", "an integer >= 1", m.convs_per_stage)
    _check(m.width_factor > 0, "model.width_factor", "a number > 0", m.width_factor)
    _check(0.0 <= m.dropout < 1.0, "model.dropout", "a number in [0, 1)", m.dropout)
    _check(0.0 <= m.input_dropout < 1.0, "model.input_dropout", "a number in [0, 1)", m.input_dropout)
    _check(m.input_dropout == 0.0 or m.name == "mlp", "model.input_dropout", "0 for models other than mlp",
           m.input_dropout)
    _check(m.activation in ("relu", "linear"), "model.activation", "'relu' or 'linear'", m.activation)
    _check(m.activation == "relu" or m.name == "mlp", "model.activation", "'relu' for non-mlp models", m.activation,
           "The no-ReLU ablation is available for model.name=\"mlp\" only.")

    _check(t.optimizer in OPTIMIZERS, "train.optimizer", f"one of {', '.join(OPTIMIZERS)}", t.optimizer)
    _check(-1.0 <= t.layca_alpha <= 1.0, "train.layca_alpha", "a number in [-1, 1]", t.layca_alpha)
    _check(not (t.optimizer.startswith("layca") and t.weight_decay > 0), "train.weight_decay", "0 with a layca optimizer",
           t.weight_decay, "Layca keeps every kernel's norm fixed, so weight decay has no effect; set train.weight_decay=0.")
    _check(t.lr > 0, "train.lr", "a number > 0", t.lr, "Typical values are 0.01 to 0.1 for sgd, 1e-4 to 1e-3 for adam.")
    _check(0.0 <= t.momentum < 1.0, "train.momentum", "a number in [0, 1)", t.momentum)
    _check(t.weight_decay >= 0, "train.weight_decay", "a number >= 0", t.weight_decay)
    _check(t.weight_decay_style in WEIGHT_DECAY_STYLES, "train.weight_decay_style", "'torch' or 'keras_l2'",
           t.weight_decay_style, "'torch' adds weight_decay*w to every parameter's gradient (PyTorch's weight_decay); "
           "'keras_l2' adds 2*weight_decay*w to conv and linear kernels only (Keras's l2(weight_decay), the thesis's).")
    _check(t.batch_size >= 1, "train.batch_size", "an integer >= 1", t.batch_size)
    _check(t.epochs >= 1, "train.epochs", "an integer >= 1", t.epochs)
    _check(all(1 <= e <= t.epochs for e in t.lr_steps), "train.lr_steps", f"epochs in [1, train.epochs={t.epochs}]", list(t.lr_steps))
    _check(t.lr_factor > 0, "train.lr_factor", "a number > 0", t.lr_factor)
    _check(t.early_stop_loss >= 0, "train.early_stop_loss", "a number >= 0 (0 = off)", t.early_stop_loss)
    _check(t.divergence_patience >= 0, "train.divergence_patience", "an integer >= 0", t.divergence_patience)
    _check(t.seed >= 0, "train.seed", "an integer >= 0", t.seed)
    _check(bool(re.match(r"^(auto|cpu|cuda(:\d+)?|mps)$", t.device)), "train.device", "auto, cpu, cuda, cuda:N or mps", t.device)
    lab = t.labels
    _check(all(v >= 0 for v in lab.relabel), "train.labels.relabel", "fine labels >= 0", list(lab.relabel))
    _check(not lab.relabel or lab.relabel_from <= t.epochs, "train.labels.relabel_from",
           f"an epoch in [1, train.epochs={t.epochs}] when train.labels.relabel is set", lab.relabel_from)
    _check(lab.random_epochs < t.epochs, "train.labels.random_epochs",
           f"an integer in [0, train.epochs={t.epochs}) (the true labels must be trained on afterwards)", lab.random_epochs)

    _check(all(0 <= e <= t.epochs for e in s.epochs), "snapshots.epochs", f"epochs in [0, train.epochs={t.epochs}]", list(s.epochs))
    _check(s.reduction in ("max", "mean"), "snapshots.reduction", "'max' or 'mean'", s.reduction)
    _check(s.probe_train >= 0, "snapshots.probe_train", "an integer >= 0", s.probe_train)
    _check(s.probe_test >= 0, "snapshots.probe_test", "an integer >= 0", s.probe_test)
    _check(s.probe_train + s.probe_test >= 1, "snapshots.probe_train + snapshots.probe_test", "at least 1", s.probe_train + s.probe_test)
    _check(s.probe_seed >= 0, "snapshots.probe_seed", "an integer >= 0", s.probe_seed)
    _check(s.batch_size >= 1, "snapshots.batch_size", "an integer >= 1", s.batch_size)
    dy = cfg.dynamics
    _check(dy.every >= 1, "dynamics.every", "an integer >= 1", dy.every)
    _check(dy.probe_size >= 1, "dynamics.probe_size", "an integer >= 1", dy.probe_size)
    _check(dy.probe_seed >= 0, "dynamics.probe_seed", "an integer >= 0", dy.probe_seed)
    _check(dy.units >= 0, "dynamics.units", "an integer >= 0 (0 = every unit)", dy.units)
    _check(dy.select in ("top_outgoing", "first"), "dynamics.select", "'top_outgoing' or 'first'", dy.select,
           "'top_outgoing' records the units with the largest outgoing weights at the end of training (the thesis's); "
           "'first' records units 0..N-1.")
    validate_analysis(cfg.analysis)
    from backend.config_limits import check_limits  # then the bounds of every numeric key

    check_limits(cfg)


def validate_analysis(a: AnalysisConfig) -> None:
    _check(a.input in ("post_relu", "pre"), "analysis.input", "'post_relu' or 'pre'", a.input)
    _check(a.pca_components >= 2, "analysis.pca_components", "an integer >= 2", a.pca_components)
    _check(a.n_neighbors >= 2, "analysis.n_neighbors", "an integer >= 2", a.n_neighbors,
           "Small values (5-15) keep local detail, large ones (50+) keep global structure.")
    _check(a.metric in ("cosine", "euclidean"), "analysis.metric", "'cosine' or 'euclidean'", a.metric)
    _check(0.0 <= a.min_dist <= 1.0, "analysis.min_dist", "a number in [0, 1]", a.min_dist)
    _check(a.umap_epochs >= 10, "analysis.umap_epochs", "an integer >= 10", a.umap_epochs)
    _check(a.cluster_space in ("umap", "pca"), "analysis.cluster_space", "'umap' or 'pca'", a.cluster_space)
    _check(a.change_space in ("pca", "full"), "analysis.change_space", "'pca' or 'full'", a.change_space)
    _check(a.cluster_dims >= 2, "analysis.cluster_dims", "an integer >= 2", a.cluster_dims)
    _check(a.cluster_epochs == 0 or a.cluster_epochs >= 10, "analysis.cluster_epochs", "0 (= umap_epochs) or an integer >= 10",
           a.cluster_epochs)
    _check(a.min_cluster_size == 0 or a.min_cluster_size >= 2, "analysis.min_cluster_size", "0 (auto) or an integer >= 2",
           a.min_cluster_size)
    _check(a.min_samples >= 1, "analysis.min_samples", "an integer >= 1", a.min_samples)
    _check(a.trust_k >= 1, "analysis.trust_k", "an integer >= 1", a.trust_k)
    _check(a.trust_samples >= 10, "analysis.trust_samples", "an integer >= 10", a.trust_samples)
    _check(0.5 <= a.hap_quantile < 1.0, "analysis.hap_quantile", "a number in [0.5, 1)", a.hap_quantile)
    for key in ("k_c1", "k_c3", "layer_top_k"):
        _check(getattr(a, key) >= 1, f"analysis.{key}", "an integer >= 1", getattr(a, key))
    for key in ("k_c2", "k_c4"):
        _check(getattr(a, key) >= 0, f"analysis.{key}", "an integer >= 0 (0 = the thesis's default)", getattr(a, key))
    _check(a.c4_max_per_class >= 2, "analysis.c4_max_per_class", "an integer >= 2", a.c4_max_per_class)
    _check(a.max_samples >= 10, "analysis.max_samples", "an integer >= 10", a.max_samples)
    _check(a.device in ("cpu", "auto"), "analysis.device", "'cpu' or 'auto' (both the CPU in this version)", a.device,
           "The GPU analysis path is not in this version: it has not yet run on a GPU (docs/config.md, \"Devices\"); "
           "set analysis.device = \"cpu\"." if re.fullmatch(r"cuda(:\d+)?", a.device) else "")
    _check(a.seed >= 0, "analysis.seed", "an integer >= 0", a.seed)
    _check(a.cka_batch == 0 or a.cka_batch >= 4, "analysis.cka_batch", "0 (closed form) or an integer >= 4", a.cka_batch)
    _check(a.cka_max_samples == 0 or a.cka_max_samples >= 10, "analysis.cka_max_samples", "0 (all) or an integer >= 10",
           a.cka_max_samples)
    _check(a.cka_max_epochs == 0 or a.cka_max_epochs >= 2, "analysis.cka_max_epochs", "0 (all) or an integer >= 2",
           a.cka_max_epochs)
    _check(a.probe_space in ("pca", "full"), "analysis.probe_space", "'pca' or 'full'", a.probe_space)
    for key in ("c0_pairs", "sharpness_draws", "sharpness_steps", "sharpness_ascent_steps"):
        _check(getattr(a, key) >= 1, f"analysis.{key}", "an integer >= 1", getattr(a, key))
    _check(a.sharpness_samples >= 10, "analysis.sharpness_samples", "an integer >= 10", a.sharpness_samples)
    _check(0.0 < a.sharpness_target < 1.0, "analysis.sharpness_target", "a number in (0, 1)", a.sharpness_target)
    from backend.config_limits import check_limits

    check_limits(a, "analysis.")
