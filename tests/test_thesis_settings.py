"""Training settings as in the thesis's reference (SCIENCE.md 3.3, 3.4 and 4): rotation from the initial
weights, Layca's zero biases, the Keras-style weight decay and the units the dynamics follow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend import api
from backend.analysis.rotation import layer_rotation
from backend.errors import AnalysisInputError
from backend.jobs.analyse_rotation import rotation_of_run, run_rotation
from backend.training.models import build_model
from tests.conftest import tiny_config


# ------------------------------------------------------------------ 1. rotation from the initial weights
def test_rotation_is_measured_from_the_initial_weights_when_epoch_0_is_no_snapshot(store: api.RunStore) -> None:
    cfg = tiny_config('run_id="rot13"', "train.epochs=3", "train.lr=0.5", "snapshots.epochs=[1, 3]")
    run = api.train(cfg, store, progress=False)
    assert store.checkpoint_epochs(run) == [0, 1, 3]  # epoch 0 kept although no snapshot there
    init = build_model(cfg.model, (64,), 5, seed=cfg.train.seed).state_dict()
    ckpt = {e: store.load_checkpoint(run, e) for e in (0, 1, 3)}
    for name, w in init.items():
        torch.testing.assert_close(ckpt[0][name], w, rtol=0, atol=0)
    table, _ = rotation_of_run(store, run)
    assert sorted(set(table["epoch"])) == [0, 1, 3]
    for layer in ("fc1.linear", "fc2.linear", "classifier"):
        row = table[(table["epoch"] == 3) & (table["layer"] == layer)]
        truth = layer_rotation(init[f"{layer}.weight"].numpy(), ckpt[3][f"{layer}.weight"].numpy())
        from_first = layer_rotation(ckpt[1][f"{layer}.weight"].numpy(), ckpt[3][f"{layer}.weight"].numpy())
        assert float(row["rotation"].iloc[0]) == pytest.approx(truth, rel=1e-9)
        assert truth > from_first * 1.2  # what the first checkpoint gave instead: clearly smaller


def test_rotation_is_refused_without_an_initial_state(trained_store: tuple[api.RunStore, str], store: api.RunStore,
                                                      tmp_path: Path) -> None:
    original, run_id = trained_store
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for e in (1, 2):  # a checkpoint set without the weights before training
        torch.save(original.load_checkpoint(run_id, e), folder / f"epoch_{e}.pt")
    new = api.import_checkpoints(store, [folder], overrides=('data.name="digits"', 'train.device="cpu"'))
    assert store.checkpoint_epochs(new) == [1, 2]
    with pytest.raises(AnalysisInputError, match=r"no epoch-0 checkpoint .*Provide the weights before training"):
        rotation_of_run(store, new)
    # A table written earlier (measured from the first checkpoint) is not kept: the analysis removes it, says why.
    store.analysis.write(new, "rotation", rotation_of_run(original, run_id)[0], params="{}", params_hash="old")
    errors: dict[str, str] = {}
    run_rotation(store, new, ("{}", "h"), errors)
    assert "epoch-0 checkpoint" in errors["rotation"]
    assert not store.analysis.path(new, "rotation").exists()


# ------------------------------------------------------------------ 2. Layca configs: plain SGD
def test_shipped_layca_configs_use_plain_sgd_as_the_reference() -> None:
    from backend.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    layca = [p for p in sorted(root.rglob("*.toml")) if "[sweep]" not in p.read_text()
             and load_config(p).train.optimizer.startswith("layca")]
    assert len(layca) >= 5
    for path in layca:
        assert load_config(path).train.momentum == 0.0, path.name


# ------------------------------------------------------------------ 3. Layca: zero biases
def test_a_layca_runs_biases_start_at_zero_and_stay_there(store: api.RunStore) -> None:
    cfg = tiny_config('run_id="laycab"', 'train.optimizer="layca-sgd"', "train.lr=0.1", "model.batch_norm=false",
                      "snapshots.epochs=[0, 2]")
    run = api.train(cfg, store, progress=False)
    for epoch in (0, 2):
        state = store.load_checkpoint(run, epoch)
        biases = [k for k in state if k.endswith(".bias")]
        assert biases == ["fc1.linear.bias", "fc2.linear.bias", "classifier.bias"]
        for k in biases:
            assert torch.count_nonzero(state[k]) == 0, (epoch, k)
    first, last = store.load_checkpoint(run, 0), store.load_checkpoint(run, 2)
    assert not torch.equal(first["fc1.linear.weight"], last["fc1.linear.weight"])  # the kernels did train


# ------------------------------------------------------------------ 4. weight-decay conventions
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_styles_one_step_by_hand(optimizer: str) -> None:
    from torch import nn

    from backend.config import TrainConfig
    from backend.training.trainer import make_optimizer

    lam, lr = 0.1, 0.5
    for style in ("torch", "keras_l2"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))  # kernel 0.weight; biases; BN gamma 1.weight, beta
        with torch.no_grad():
            model[1].bias.fill_(0.5)
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        opt = make_optimizer(model, TrainConfig(optimizer=optimizer, lr=lr, momentum=0.9, weight_decay=lam,
                                                weight_decay_style=style))
        for p in model.parameters():
            p.grad = torch.zeros_like(p)  # a zero loss gradient: the step is the weight decay's alone
        opt.step()
        for k, w0 in before.items():
            decay = {"torch": lam, "keras_l2": 2 * lam if k == "0.weight" else 0.0}[style]
            g = decay * w0  # the gradient the L2 term adds
            if optimizer == "sgd":
                expected = w0 - lr * g  # first step: the momentum buffer is the gradient
            else:  # Adam's first step: m_hat = g, v_hat = g^2, so the step is lr * sign(g) (eps aside)
                expected = w0 - lr * g / (g.abs() + 1e-8)
            torch.testing.assert_close(model.get_parameter(k).detach(), expected, rtol=1e-6, atol=1e-7,
                                       msg=f"{style}, {k}")


def test_weight_decay_style_is_validated() -> None:
    from backend.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.weight_decay_style must be 'torch' or 'keras_l2'; got 'l2'\. 'torch' adds"):
        tiny_config('train.weight_decay_style="l2"')
    assert tiny_config().train.weight_decay_style == "torch"


# ------------------------------------------------------------------ 5. dynamics: the units the thesis shows
def test_dynamics_record_the_units_with_the_largest_outgoing_weights(store: api.RunStore,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    common = ("model.dropout=0.2", "dynamics.enabled=true", "dynamics.every=4", "dynamics.probe_size=50",
              'dynamics.layers=["fc1.relu", "fc2.relu"]')
    every = api.train(tiny_config('run_id="dyn-all"', *common, "dynamics.units=0"), store, progress=False)
    top = api.train(tiny_config('run_id="dyn-top"', *common, "dynamics.units=4"), store, progress=True)
    assert "dyn-top (dynamics pass): 100%" in capsys.readouterr().err  # the second pass shows its progress too
    first = api.train(tiny_config('run_id="dyn-first"', *common, "dynamics.units=4", 'dynamics.select="first"'), store,
                      progress=False)
    final = store.load_checkpoint(top, 2)
    for layer, reader in (("fc1.relu", "fc2.linear.weight"), ("fc2.relu", "classifier.weight")):
        norms = final[reader].double().norm(dim=0).numpy()  # outgoing-weight norm of each of the 16 units
        expected = sorted(int(u) for u in np.argsort(-norms)[:4])
        assert expected != [0, 1, 2, 3]
        rec = api.read_dynamics(store, top, layer)
        assert sorted(rec["unit"].unique()) == expected
        # The second pass recorded exactly what a run recording every unit saw for those units.
        full = api.read_dynamics(store, every, layer)
        both = rec.merge(full, on=["step", "sample_id", "unit"], suffixes=("", "_all"))
        assert len(both) == len(rec) > 0
        np.testing.assert_array_equal(both["pre"], both["pre_all"])
        np.testing.assert_array_equal(both["grad_sign"], both["grad_sign_all"])
        assert sorted(api.read_dynamics(store, first, layer)["unit"].unique()) == [0, 1, 2, 3]
    info = api.read_run(store, top)
    assert info["dynamics"]["replay_max_weight_diff"] == 0.0 and info["status"] == "complete"
    shown = api.mechanisms(store, top, "fc2.relu")["units"]
    np.testing.assert_allclose(shown["out_norm"], sorted(final["classifier.weight"].double().norm(dim=0).numpy())[::-1][:4])
