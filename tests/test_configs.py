"""Every shipped config file loads and validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import load_config
from backend.jobs.demo import demo_configs
from backend.jobs.sweep_spec import expand, load_sweep

ROOT = Path(__file__).resolve().parent.parent / "configs"
SWEEPS = sorted((ROOT / "sweeps").glob("*.toml"))
CONFIGS = sorted(p for p in ROOT.rglob("*.toml") if p not in SWEEPS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path: Path) -> None:
    load_config(path)


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_shipped_sweep_files_are_valid(path: Path) -> None:
    trials = expand(load_sweep(path))
    assert len(trials) >= 12  # the thesis-style grid the issue asks for


def test_demo_runs_differ_from_the_base_in_one_hyperparameter() -> None:
    from backend.config import to_dict

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    configs = {r.run_id: flat(to_dict(c)) for r, c in demo_configs()}
    base = configs["demo-digits-base"]
    for run_id in ("demo-digits-lr-low", "demo-digits-augment", "demo-digits-wide"):
        diff = {k for k in base if base[k] != configs[run_id][k]} - {"run_id"}
        assert len(diff) == 1, (run_id, diff)
        assert configs[run_id]["data.target"] == "superclass"
    assert configs["demo-synthclust"]["data.name"] == "synthclust"
