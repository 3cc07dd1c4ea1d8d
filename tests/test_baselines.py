"""c0 and the sharpness baselines (SCIENCE.md 3.1, 3.2): hand-computable cases, then a real digits run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from scipy.stats import norm
from torch import nn

from backend import api
from backend.analysis import baselines as b
from backend.cli import cli
from tests.conftest import tiny_config

SIG = 1.0 / (1.0 + math.exp(-1.0)), 1.0 / (1.0 + math.exp(2.0))  # σ(1), σ(-2)


class Bowl(nn.Module):
    """1-D input; logits [3(x−2)² − 1, 0], so p(class 0) = σ(3(x−2)² − 1): high at x = 1 and 3, low at 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 3.0 * (x[:, 0] - 2.0) ** 2 - 1.0
        return torch.stack([z, torch.zeros_like(z)], dim=1)


def test_c0_on_a_model_whose_interpolation_drop_is_known() -> None:
    # one superclass (0) with subclasses at x = 1 and x = 3, four identical samples each: a same-subclass
    # mix stays at x = 1 (drop 1 − σ(2) = σ(−2)); the other-subclass mix passes x = 2 at f = 0.5 (drop σ(1))
    x = torch.tensor([[1.0]] * 4 + [[3.0]] * 4)
    value, ratios = b.c0(Bowl(), x, superclass=np.zeros(8, np.int64), subclass=np.repeat([0, 1], 4), pairs=3, seed=0)
    assert ratios == pytest.approx([SIG[0] / SIG[1]] * 2, rel=1e-5)
    assert value == pytest.approx(SIG[0] / SIG[1], rel=1e-5)  # ≈ 6.18


def test_c0_is_the_median_over_subclasses_and_skips_a_subclass_without_sibling() -> None:
    # superclass 0 as above; superclass 1 holds one subclass only (no other subclass to pair with: NaN)
    x = torch.tensor([[1.0]] * 4 + [[3.0]] * 4 + [[2.0]] * 3)
    sup = np.array([0] * 8 + [1] * 3)
    value, ratios = b.c0(Bowl(), x, superclass=sup, subclass=np.repeat([0, 1, 2], [4, 4, 3]), pairs=10, seed=1)
    assert np.isnan(ratios[2]) and value == pytest.approx(SIG[0] / SIG[1], rel=1e-5)


def one_hot_linear(n: int, a: float) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Sample i is the one-hot e_i; weights W[0, i] = a, W[1, i] = 0: each sample's decision has its own weights."""
    model = nn.Linear(n, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0].fill_(a)
    return model, torch.eye(n), torch.zeros(n, dtype=torch.int64)


def test_sigma_matches_the_closed_form_of_a_linear_model() -> None:
    # sample i stays correct iff a + m(a+ε)·n0 > m·ε·n1 (n0, n1 ~ N(0,1)): accuracy Φ(a / (m·s)), s = ‖(a+ε, ε)‖;
    # 90 % accuracy at m* = a / (s·Φ⁻¹(0.9)); the bisection stops within 0.005 of 90 %, i.e. m in [0.76, 0.80]
    a, eps = 1.0, b.EPS_WEIGHT
    model, x, y = one_hot_linear(2000, a)
    s = b.sharpness_random(model, x, y, kernels_only=False, batch_stats=False, samples=2000, draws=4, steps=20, seed=0)
    expected = a / (math.hypot(a + eps, eps) * norm.ppf(0.9))
    assert s.reason == "" and abs(s.accuracy - 0.9) < 0.01
    assert s.scale == pytest.approx(expected, abs=0.03)  # ≈ 0.779
    assert torch.equal(model.weight[0], torch.full((2000,), a))  # the caller's model is untouched


def test_alpha_matches_the_worst_corner_of_the_box() -> None:
    # x = 1 for every sample, logits (w0·x, w1·x): the worst point of the box lowers w0 by m(w0+ε) and raises
    # w1 by m(w1+ε), so every sample flips at m* = (w0 − w1) / (w0 + w1 + 2ε); one ascent step reaches the corner
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.1], [0.9]]))
    x, y = torch.ones(64, 1), torch.zeros(64, dtype=torch.int64)
    s = b.sharpness_worstcase(model, x, y, kernels_only=True, batch_stats=False, samples=64, ascent_steps=3,
                              steps=30, seed=0, ascent_batch=16)
    assert s.scale == pytest.approx(0.2 / (2.0 + 2 * b.EPS_WEIGHT), abs=1e-4)  # ≈ 0.0999


def test_kernels_only_leaves_the_biases_alone() -> None:
    # the decision sits in the bias (1 vs 0) and the kernel is zero: perturbing kernels only scales the noise
    # by m·ε, which never flips a sample, so σ″-style bisection climbs to the top of [0, 2]
    model = nn.Linear(10, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0]))
    x, y = torch.eye(10).repeat(20, 1), torch.zeros(200, dtype=torch.int64)
    common = {"batch_stats": False, "samples": 200, "draws": 3, "steps": 12, "seed": 0}
    assert b.sharpness_random(model, x, y, kernels_only=True, **common).scale > 1.99
    assert b.sharpness_random(model, x, y, kernels_only=False, **common).scale < 1.5


def test_batch_statistics_mode_ignores_the_running_statistics() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.9))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[1].running_mean.copy_(torch.tensor([100.0, 0.0]))  # inference mode: class 0 never wins
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 50)
    y = torch.tensor([0, 1] * 50)
    assert b.accuracy(model, x, y, batch_stats=True) == 1.0  # batch statistics, no dropout
    assert b.accuracy(model, x, y) == 0.5
    assert model.training and model[1].running_mean.tolist() == [100.0, 0.0]  # mode and statistics restored


def test_a_model_below_the_target_gets_nan_with_the_reason() -> None:
    model, x, y = one_hot_linear(50, -1.0)  # every sample wrong
    for s in (b.sharpness_random(model, x, y, kernels_only=False, batch_stats=False, samples=50, draws=1, steps=3, seed=0),
              b.sharpness_worstcase(model, x, y, kernels_only=False, batch_stats=False, samples=50, ascent_steps=1,
                                    steps=3, seed=0)):
        assert math.isnan(s.scale) and "below the target 0.9" in s.reason


def test_the_same_seed_gives_the_same_values() -> None:
    model, x, y = one_hot_linear(300, 1.0)
    kw = {"kernels_only": False, "batch_stats": False, "samples": 100, "steps": 6, "seed": 3}
    assert b.sharpness_random(model, x, y, draws=2, **kw) == b.sharpness_random(model, x, y, draws=2, **kw)
    assert b.sharpness_worstcase(model, x, y, ascent_steps=2, **kw) == b.sharpness_worstcase(model, x, y, ascent_steps=2, **kw)


# ------------------------------------------------------------------------- real runs, end to end


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[api.RunStore, list[str]]:
    """Two tiny digits MLPs trained on superclasses at two learning rates, analysed with the defaults."""
    store = api.open_store(tmp_path_factory.mktemp("baselines"))
    ids = []
    for i, lr in enumerate((0.02, 0.1)):
        cfg = tiny_config(f'run_id="lr{i}"', f"train.lr={lr}", "train.epochs=4", "snapshots.epochs=[4]")
        ids.append(api.train(cfg, store, progress=False))
        report = api.analyze(store, ids[-1])
        assert not report.errors, report.errors
    return store, ids


def test_digits_runs_give_finite_baselines_in_every_kendall_table(two_runs, tmp_path: Path) -> None:
    store, ids = two_runs
    table = api.read_analysis(store, ids[0], "baselines")
    assert table["epoch"].tolist() == [4] and table["reason"].tolist() == [""]
    assert table[["c0", "sigma_prime", "sigma_dprime", "alpha_prime", "alpha_dprime"]].notna().all(axis=None)
    assert (table["c0_subclasses"] == 10).all()  # every digit has a sibling digit in its superclass
    runs, kendall = api.compare(store, ids)
    rows = kendall.set_index("measure")
    for m in ("c0", "1/σ′", "1/σ″", "1/α′", "1/α″"):
        assert rows.loc[m, "runs"] == 2 and np.isfinite(rows.loc[m, "tau"])
        assert np.isfinite(runs[m]).all()
    assert runs["1/σ′"].iloc[0] == pytest.approx(1.0 / table["sigma_prime"].iloc[0])
    result = CliRunner().invoke(cli, ["compare", *ids, "--csv", str(tmp_path / "k.csv"), "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert {"c0", "1/σ′", "1/α″"} <= set(pd.read_csv(tmp_path / "k.csv")["measure"])


def test_a_baseline_knob_redoes_the_baselines_only(two_runs) -> None:
    store, ids = two_runs
    run = ids[1]
    before = store.analysis.params_hash(run, "points", "fc1.relu", 4)
    old = api.read_analysis(store, run, "baselines")
    report = api.analyze(store, run, api.analysis_config(store, run, ["analysis.c0_pairs=7", "analysis.sharpness_steps=3"]))
    assert not report.errors and not report.analysed  # no snapshot redone
    assert store.analysis.params_hash(run, "points", "fc1.relu", 4) == before
    new = api.read_analysis(store, run, "baselines")
    assert new["c0"].iloc[0] != old["c0"].iloc[0]
    assert new["sigma_prime"].iloc[0] in {2.0 * k / 16 for k in range(1, 16)}  # 3 bisection steps on [0, 2]


def copy_without_baselines(store: api.RunStore, run_id: str, tmp_path: Path) -> tuple[api.RunStore, dict]:
    """The run copied into a new store without its baselines file, and its run.json (to edit)."""
    copy = api.open_store(tmp_path / "store")
    shutil.copytree(store.run_dir(run_id), copy.run_dir(run_id))
    copy.analysis.path(run_id, "baselines").unlink()
    return copy, json.loads(copy.run_json_path(run_id).read_text())


def test_a_failing_baseline_is_one_error_of_the_report(two_runs, tmp_path: Path) -> None:
    store, ids = two_runs
    copy, info = copy_without_baselines(store, ids[0], tmp_path)
    info["config"]["data"]["name"] = "mnist"  # its files are not there: the data set cannot be loaded
    info["config"]["data"]["root"] = str(tmp_path / "nowhere")
    copy.run_json_path(ids[0]).write_text(json.dumps(info))
    report = api.analyze(copy, ids[0])
    assert list(report.errors) == ["baselines"] and "c0 and the sharpness baselines failed" in report.errors["baselines"]
    assert not copy.analysis.path(ids[0], "baselines").exists()
    assert not api.read_analysis(copy, ids[0], "network").empty  # the other artefacts are there
    assert np.isnan(api.run_measures(copy, ids[0])["1/σ′"])


def test_a_version_1_store_reads_without_baselines(two_runs, tmp_path: Path) -> None:
    store, ids = two_runs
    copy, info = copy_without_baselines(store, ids[0], tmp_path)
    copy.run_json_path(ids[0]).write_text(json.dumps(info | {"schema_version": 1}))
    assert copy.read_run(ids[0])["schema_version"] == 1
    measures = api.run_measures(copy, ids[0])
    assert np.isfinite(measures["c3"]) and all(np.isnan(measures[m]) for m in ("c0", "1/σ′", "1/σ″", "1/α′", "1/α″"))


def test_a_run_without_hierarchy_has_nan_c0_with_the_reason() -> None:
    from backend.config import AnalysisConfig, to_dict
    from backend.jobs.baselines import _model_and_data, baselines_row

    cfg = tiny_config('data.target="label"')
    model, inputs = _model_and_data({"config": to_dict(cfg)}, 0)
    assert not inputs["hierarchical"]
    row = baselines_row(model, inputs, AnalysisConfig(sharpness_steps=1, sharpness_target=0.05), epoch=0)
    assert np.isnan(row["c0"]) and row["c0_subclasses"] == 0
    assert "c0 needs hierarchical labels" in row["reason"]


def test_over_training_gives_one_row_per_checkpoint(trained_store, tmp_path: Path) -> None:
    from backend.config import AnalysisConfig
    from backend.jobs.baselines import run_baselines

    src, run_id = trained_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run_id), store.run_dir(run_id))
    errors: dict[str, str] = {}
    seen: list[str] = []
    a = AnalysisConfig(baselines_over_training=True, sharpness_steps=2, sharpness_ascent_steps=1, c0_pairs=5)
    run_baselines(store, run_id, store.read_run(run_id), a, errors, progress=lambda d, n, what: seen.append(what))
    table = api.read_analysis(store, run_id, "baselines")
    assert not errors and table["epoch"].tolist() == [0, 1, 2] == store.checkpoint_epochs(run_id)
    assert seen[0] == "baselines @ epoch 0: c0" and seen[-1] == "baselines @ epoch 2: done"
    # the untrained network misses the 90 % target: NaN scales, each with its reason
    assert np.isnan(table.loc[0, "sigma_prime"]) and "below the target 0.9" in table.loc[0, "reason"]
