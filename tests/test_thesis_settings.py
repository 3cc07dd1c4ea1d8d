"""Training settings as in the thesis's reference (SCIENCE.md 3.3, 3.4 and 4): rotation from the initial
weights, Layca's zero biases, the Keras-style weight decay and the units the dynamics follow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend import api
from backend.analysis.pipeline import AnalysisInputError, AnalysisReport, _rotation, rotation_of_run
from backend.analysis.rotation import layer_rotation
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
    table = rotation_of_run(store, run)
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
    store.analysis.write(new, "rotation", rotation_of_run(original, run_id), params="{}", params_hash="old")
    report = AnalysisReport(new)
    _rotation(store, new, ("{}", "h"), report)
    assert "epoch-0 checkpoint" in report.errors["rotation"]
    assert not store.analysis.path(new, "rotation").exists()
