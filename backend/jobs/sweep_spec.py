"""Hyperparameter sweeps: a TOML file expanded into run configurations (``docs/sweeps.md``).

A sweep file names the sweep, a base run configuration and the hyperparameter axes to vary::

    [sweep]
    name = "thesis-digits"          # runs are named <name>-<hash of the run's config>
    base = "../digits_vgg.toml"     # optional run config (path relative to this file)
    retries = 1                     # extra attempts of a failed trial
    analyze = true                  # analyse every run once trained
    cpus_per_trial = 1              # Ray CPUs (and torch and numba threads) per trial

    [base]                          # run-config keys on top of `base`
    train.epochs = 12

    [grid]                          # the cross product of every axis
    "train.lr" = [0.01, 0.05]
    "train.lr,train.weight_decay" = [[0.01, 0.0], [0.1, 4e-5]]   # a linked axis: values move together

    [random]                        # `samples` draws per grid point (seeded by `seed`)
    "train.weight_decay" = { log_uniform = [1e-5, 1e-3] }

Everything is validated before any run starts; every error names the file and the key. This
module is pure configuration: running the trials on Ray lives in :mod:`backend.jobs.sweep`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.config import RunConfig, _set_dotted, from_dict, read_toml, to_dict, validate
from backend.errors import ConfigError

SWEEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
SWEEP_KEYS = {"name": str, "base": str, "retries": int, "analyze": bool, "cpus_per_trial": int, "samples": int,
              "seed": int}
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")
NOT_AXES = ("run_id",)  # a sweep names its runs itself


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: its id, effective config and the values of the sweep's axes."""

    run_id: str
    config: RunConfig
    axes: dict[str, Any]  # axis name -> value (a list for a linked axis)
    index: int  # position in the expansion order


@dataclass(frozen=True)
class Sweep:
    name: str
    path: str  # the sweep file ("" for a sweep built in code)
    base: dict[str, Any]  # raw run config (nested), before the axes
    grid: dict[str, list[Any]] = field(default_factory=dict)  # axis -> values (linked axis: lists of values)
    random: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # key -> {distribution: args}
    samples: int = 0
    seed: int = 0
    retries: int = 1
    analyze: bool = True
    cpus_per_trial: int = 1

    @property
    def axes(self) -> list[str]:
        return [*self.grid, *self.random]


def axis_keys(axis: str) -> list[str]:
    """``"train.lr,train.weight_decay"`` -> ``["train.lr", "train.weight_decay"]``."""
    return [k.strip() for k in axis.split(",")]


# ------------------------------------------------------------------------------------- loading


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; raise :class:`ConfigError` naming the file and key at fault."""
    p = Path(path)
    raw = read_toml(p, what=f"sweep file {str(p)!r}", missing="; give the path of a TOML file, e.g. configs/sweeps/thesis_digits.toml.")
    try:
        return sweep_from_dict(raw, path=str(p), folder=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"sweep file {str(p)!r}: {exc}") from None


def sweep_from_dict(raw: dict[str, Any], *, path: str = "", folder: Path = Path()) -> Sweep:
    unknown = sorted(set(raw) - {"sweep", "base", "grid", "random"})
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r}; expected [sweep], [base], [grid] and [random].")
    head = dict(raw.get("sweep") or {})
    for key, value in head.items():
        if key not in SWEEP_KEYS:
            raise ConfigError(f"unknown key 'sweep.{key}'; expected one of {', '.join('sweep.' + k for k in SWEEP_KEYS)}.")
        tp = SWEEP_KEYS[key]
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"sweep.{key} must be {'an integer' if tp is int else 'true or false' if tp is bool else 'a string'}; "
                              f"got {value!r}.")
    name = head.get("name", "")
    if not SWEEP_NAME.match(name):
        raise ConfigError(f"sweep.name must be 1-48 lowercase letters, digits, '_' or '-', starting with a letter or "
                          f"digit (it prefixes every run id); got {name!r}.")
    base = _base_config(head.get("base", ""), raw.get("base") or {}, folder)
    sweep = Sweep(name=name, path=path, base=base, grid=_grid(raw.get("grid") or {}), random=_random(raw.get("random") or {}),
                  samples=head.get("samples", 0), seed=head.get("seed", 0), retries=head.get("retries", 1),
                  analyze=head.get("analyze", True), cpus_per_trial=head.get("cpus_per_trial", 1))
    _check_sweep(sweep)
    return sweep


def _base_config(base_path: str, inline: dict[str, Any], folder: Path) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if base_path:
        p = (folder / base_path) if not Path(base_path).is_absolute() else Path(base_path)
        raw = read_toml(p, what=f"sweep.base {base_path!r}",
                        missing=f" (looked for {p}); give a run config's path relative to the sweep file.")
    for key, value in _flatten(inline).items():
        _set_dotted(raw, key, value)
    raw.pop("run_id", None)
    try:
        validate(from_dict(RunConfig, raw))
    except ConfigError as exc:
        raise ConfigError(f"[base]: {exc}") from None
    return raw


def _flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def _grid(raw: dict[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for axis, values in _flatten(raw).items():
        keys = axis_keys(axis)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[grid] {axis!r} must be a non-empty list of values; got {values!r}.")
        if len(keys) > 1 and not all(isinstance(v, list) and len(v) == len(keys) for v in values):
            raise ConfigError(f"[grid] {axis!r} links {len(keys)} keys, so each value must be a list of {len(keys)} "
                              f"values, e.g. [[0.01, 0.0], [0.1, 4e-5]]; got {values!r}.")
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"[grid] {axis!r} lists a value twice; got {values!r}.")
        grid[axis] = values
    return grid


def _random(raw: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for key, spec in raw.items():
        if "," in key:
            raise ConfigError(f"[random] {key!r}: linked axes are for [grid] only; draw each key on its own.")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ConfigError(f"[random] {key!r} must be one of {{uniform = [low, high]}}, {{log_uniform = [low, high]}} "
                              f"or {{choice = [values]}}; got {spec!r}.")
        (dist, args), = spec.items()
        if not isinstance(args, list) or not args:
            raise ConfigError(f"[random] {key!r}: {dist} needs a non-empty list; got {args!r}.")
        if dist != "choice":
            ok = len(args) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) and args[0] < args[1]
            if not ok or (dist == "log_uniform" and args[0] <= 0):
                raise ConfigError(f"[random] {key!r}: {dist} needs [low, high] with low < high"
                                  f"{' and low > 0' if dist == 'log_uniform' else ''}; got {args!r}.")
        out[key] = {dist: args}
    return out


def _check_sweep(s: Sweep) -> None:
    if s.retries < 0:
        raise ConfigError(f"sweep.retries must be an integer >= 0; got {s.retries}.")
    if s.cpus_per_trial < 1:
        raise ConfigError(f"sweep.cpus_per_trial must be an integer >= 1; got {s.cpus_per_trial}.")
    if s.random and s.samples < 1:
        raise ConfigError(f"sweep.samples must be >= 1 when [random] is given (draws per grid point); got {s.samples}.")
    if s.samples and not s.random:
        raise ConfigError(f"sweep.samples is {s.samples} but there is no [random] section to draw from; add one or drop samples.")
    if not s.grid and not s.random:
        raise ConfigError("a sweep needs a [grid] or a [random] section with at least one axis.")
    seen: dict[str, str] = {}
    for axis in s.axes:
        for key in axis_keys(axis):
            if key in NOT_AXES or key.split(".")[0] == "analysis":
                raise ConfigError(f"axis {axis!r}: {key!r} cannot vary in a sweep (runs are named by the sweep; "
                                  "analysis settings belong in [base]).")
            if key in seen:
                raise ConfigError(f"key {key!r} appears in two axes ({seen[key]!r} and {axis!r}); vary it in one.")
            seen[key] = axis
    if s.seed < 0:
        raise ConfigError(f"sweep.seed must be an integer >= 0; got {s.seed}.")
    for trial in _points(s)[:1]:  # one expansion checks every axis key and value type; ranges per trial below
        _config(s, trial)


# ------------------------------------------------------------------------------------- expansion


def _draw(rng: np.random.Generator, spec: dict[str, list[Any]]) -> Any:
    (dist, args), = spec.items()
    if dist == "choice":
        return args[int(rng.integers(len(args)))]
    low, high = float(args[0]), float(args[1])
    value = float(np.exp(rng.uniform(math.log(low), math.log(high)))) if dist == "log_uniform" else float(rng.uniform(low, high))
    return float(f"{value:.4g}")  # readable values; 4 significant digits are plenty for a hyperparameter


def _points(s: Sweep) -> list[dict[str, Any]]:
    """Axis values of every trial, in order: grid points (last axis fastest), each with ``samples`` draws."""
    rng = np.random.default_rng(s.seed)
    grid = [dict(zip(s.grid, combo, strict=True)) for combo in itertools.product(*s.grid.values())] or [{}]
    points = []
    for g in grid:
        for _ in range(max(1, s.samples) if s.random else 1):
            points.append(g | {key: _draw(rng, spec) for key, spec in s.random.items()})
    return points


def _config(s: Sweep, point: dict[str, Any]) -> RunConfig:
    raw = json.loads(json.dumps(s.base))  # a deep copy
    for axis, value in point.items():
        keys = axis_keys(axis)
        for key, v in zip(keys, value if len(keys) > 1 else [value], strict=True):
            _set_dotted(raw, key, v)
    where = ", ".join(f"{a}={v}" for a, v in point.items())
    try:
        cfg = from_dict(RunConfig, raw)
        validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"trial {where}: {exc}") from None
    return cfg


def config_digest(cfg: RunConfig) -> str:
    """10 hex digits of the SHA-256 of the effective config (run id left out): same config, same run."""
    body = {k: v for k, v in to_dict(cfg).items() if k != "run_id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]


def expand(s: Sweep) -> list[Trial]:
    """Every trial of the sweep with a deterministic run id ``<name>-<config digest>``.

    The id depends only on the sweep's name and the run's effective configuration, so an
    interrupted sweep finds its runs again, a changed base config makes new runs, and two sweeps
    with different names never write to the same run.
    """
    trials: list[Trial] = []
    seen: dict[str, int] = {}
    for i, point in enumerate(_points(s)):
        cfg = _config(s, point)
        run_id = f"{s.name}-{config_digest(cfg)}"
        if run_id in seen:  # random draws (or choice) can repeat a configuration: one run is enough
            continue
        seen[run_id] = i
        trials.append(Trial(run_id=run_id, config=_with_run_id(cfg, run_id), axes=point, index=i))
    return trials


def _with_run_id(cfg: RunConfig, run_id: str) -> RunConfig:
    from dataclasses import replace

    return replace(cfg, run_id=run_id)


def run_record(s: Sweep, trial: Trial) -> dict[str, Any]:
    """What a sweep's run records in run.json under ``"sweep"`` (docs/store.md)."""
    return {"name": s.name, "file": s.path, "axes": json.loads(json.dumps(trial.axes)), "trial": trial.index}
