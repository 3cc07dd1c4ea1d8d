"""Real training of tiny models into temporary stores."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from backend import api
from backend.config import ModelConfig
from backend.data.builtin import digits
from backend.errors import ConfigError
from backend.training.models import build_model
from backend.training.snapshots import default_schedule, probe_layers, record
from backend.training.trainer import augment, to_tensor_data
from tests.conftest import TINY, tiny_config


def test_run_folder_is_complete(trained_store: tuple[api.RunStore, str]) -> None:
    store, run_id = trained_store
    info = api.read_run(store, run_id)
    assert info["status"] == "complete"
    assert info["seed"] == 0
    assert [layer["name"] for layer in info["layers"]] == ["fc1.relu", "fc2.relu"]
    assert [layer["units"] for layer in info["layers"]] == [16, 16]
    assert info["snapshot_epochs"] == [0, 1, 2] and info["recorded_epochs"] == [0, 1, 2]
    assert info["config"]["data"]["target"] == "superclass"
    assert info["versions"]["torch"].startswith("2.14.1")
    assert info["dataset"]["superclass_names"] == ["round", "stroke", "bend", "twin-curve", "hook"]

    metrics = pq.read_table(store.metrics_path(run_id)).to_pandas()
    assert metrics[["epoch", "split"]].values.tolist() == [[e, s] for e in range(3) for s in ("train", "test")]
    final_test = metrics.query("epoch == 2 and split == 'test'")["accuracy"].item()
    assert final_test > 0.5  # five superclasses: chance is 0.2
    assert final_test == pytest.approx(info["final"]["test_accuracy"])

    samples = pq.read_table(store.samples_path(run_id)).to_pandas()
    assert len(samples) == 1797 and samples["sample_id"].is_unique  # all of digits by default
    assert set(samples["split"]) == {"train", "test"}
    assert (samples["superclass_name"][samples["label"] == 7] == "stroke").all()
    img = Image.open(io.BytesIO(samples["thumbnail"].iloc[0]))
    assert img.size == (8, 8)

    for epoch in (0, 1, 2):
        table = pq.read_table(store.activation_path(run_id, "fc2.relu", epoch))
        assert table.num_rows == 1797 and table.column_names[1:] == [f"u{i:04d}" for i in range(16)]
        assert table.column("sample_id").to_pylist() == samples["sample_id"].tolist()
    assert store.checkpoint_epochs(run_id) == [0, 1, 2]
    preds = pq.read_table(store.predictions_path(run_id, 2)).to_pandas()
    assert preds["sample_id"].tolist() == samples["sample_id"].tolist()
    test_rows = (samples["split"] == "test").to_numpy()
    assert preds["correct"][test_rows].mean() == pytest.approx(final_test)  # the probe holds the whole test split
    assert preds["confidence"].between(0.2, 1.0).all()


def test_recorded_activations_match_the_checkpointed_model(trained_store: tuple[api.RunStore, str]) -> None:
    """The Parquet file holds the pre-activations of the model saved at that epoch."""
    store, run_id = trained_store
    cfg = tiny_config()
    data = digits()
    model = build_model(cfg.model, data.input_shape, 5, seed=123)
    state = torch.load(store.checkpoint_path(run_id, 2), weights_only=True)
    model.load_state_dict(state)
    samples = pq.read_table(store.samples_path(run_id)).to_pandas()
    x_all = np.concatenate([data.train.x, data.test.x])
    ids_all = np.concatenate([data.train.sample_id, data.test.sample_id])
    order = {int(s): i for i, s in enumerate(ids_all)}
    x = x_all[[order[int(s)] for s in samples["sample_id"]]]
    xt = to_tensor_data(x, np.zeros(len(x)), data.mean, data.std).x
    model.eval()
    with torch.no_grad():
        h = model.fc1.bn(model.fc1.linear(xt.flatten(1)))  # fc1's pre-activation, by hand
    stored = pq.read_table(store.activation_path(run_id, "fc1.relu", 2)).to_pandas().drop(columns="sample_id")
    np.testing.assert_allclose(stored.to_numpy(), h.numpy(), rtol=1e-5, atol=1e-5)


def test_conv_snapshots_are_max_pooled_pre_activations() -> None:
    data = digits()
    model = build_model(ModelConfig(name="vgg", stages=2, convs_per_stage=1, width_factor=0.25), (1, 8, 8), 5, seed=0)
    layers = probe_layers(model, (1, 8, 8))
    assert [(layer.name, layer.units, layer.kind) for layer in layers] == [("conv1_1.relu", 8, "conv"), ("conv2_1.relu", 16, "conv")]
    x = to_tensor_data(data.test.x[:20], data.test.label[:20], data.mean, data.std).x
    got = record(model, [x[:7], x[7:]], layers, "max")
    mean = record(model, [x], layers, "mean")
    model.eval()
    with torch.no_grad():
        pre = model.conv1_1.bn(model.conv1_1.conv(x))  # (20, 8, 8, 8)
    np.testing.assert_allclose(got["conv1_1.relu"], pre.amax(dim=(2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(mean["conv1_1.relu"], pre.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    # post-ReLU of a max-pooled channel is max(pre, 0): ReLU is monotone
    np.testing.assert_allclose(np.maximum(got["conv1_1.relu"], 0), torch.relu(pre).amax(dim=(2, 3)).numpy(), rtol=1e-6)


def test_probe_layers_of_each_architecture() -> None:
    resnet = build_model(ModelConfig(name="resnet", depth=8), (3, 32, 32), 10, seed=0)
    names = [layer.name for layer in probe_layers(resnet, (3, 32, 32))]
    assert names == ["stem.relu"] + [f"stage{s}.block1.relu{k}" for s in (1, 2, 3) for k in (1, 2)]
    tv = build_model(ModelConfig(name="tv:resnet18"), (3, 32, 32), 10, seed=0)
    tv_layers = probe_layers(tv, (3, 32, 32))
    tv_names = [layer.name for layer in tv_layers]
    assert tv_names[:3] == ["relu", "layer1.0.relu", "layer1.0.relu_1"]  # one module, called twice per block
    assert len(tv_names) == 17 and tv_layers[-1].units == 512
    vgg32 = build_model(ModelConfig(name="vgg", stages=4, convs_per_stage=2), (3, 32, 32), 10, seed=0)
    assert [layer.units for layer in probe_layers(vgg32, (3, 32, 32))] == [32, 32, 64, 64, 128, 128, 256, 256]
    with pytest.raises(ConfigError, match="model.stages must be at most 4 for 8x8 inputs"):
        build_model(ModelConfig(name="vgg", stages=5), (1, 8, 8), 10, seed=0)
    with pytest.raises(ConfigError, match="is not a torchvision classification model.*tv:resnet18"):
        build_model(ModelConfig(name="tv:resnet181"), (3, 32, 32), 10, seed=0)
    with pytest.raises(ConfigError, match="needs image inputs"):
        build_model(ModelConfig(name="vgg"), (500,), 2, seed=0)


def test_same_seed_same_run(store: api.RunStore) -> None:
    cfg = ("model.dropout=0.3", "train.epochs=1", "snapshots.epochs=[1]")
    a = api.train(tiny_config('run_id="a"', *cfg), store, progress=False)
    b = api.train(tiny_config('run_id="b"', *cfg), store, progress=False)
    c = api.train(tiny_config('run_id="c"', "train.seed=1", *cfg), store, progress=False)
    va = store.read_activations(a, "fc2.relu", 1)[1]
    np.testing.assert_array_equal(va, store.read_activations(b, "fc2.relu", 1)[1])
    assert not np.allclose(va, store.read_activations(c, "fc2.relu", 1)[1])
    assert api.read_metrics(store, a).equals(api.read_metrics(store, b))


def test_early_stop_records_the_last_epoch(store: api.RunStore) -> None:
    run = api.train(tiny_config('run_id="es"', "train.epochs=5", "train.early_stop_loss=100.0", "snapshots.epochs=[0]"),
                    store, progress=False)
    info = api.read_run(store, run)
    assert info["status"] == "complete" and info["stopped_early"] is True
    assert info["epochs_completed"] == 1 and info["recorded_epochs"] == [0, 1]


def test_synthclust_run(store: api.RunStore) -> None:
    cfg = tiny_config('run_id="sc"', 'data.name="synthclust"', "data.synthclust.train_per_cluster=20",
                      "data.synthclust.test_per_cluster=5", "data.synthclust.clusters_per_class=4", "model.depth=1",
                      "train.epochs=10", "snapshots.epochs=[10]")
    run = api.train(cfg, store, progress=False)
    info = api.read_run(store, run)
    assert info["dataset"]["input_shape"] == [500]
    assert info["final"]["test_accuracy"] > 0.9  # two linearly separable classes of clusters
    samples = api.read_samples(store, run)
    assert samples["label"].nunique() == 8 and samples["superclass"].nunique() == 2
    assert (samples["superclass"] == samples["label"] // 4).all()


def test_augmentation_shifts_and_flips() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    a = augment(x, torch.Generator().manual_seed(0), torch.zeros(3))
    b = augment(x, torch.Generator().manual_seed(0), torch.zeros(3))
    assert a.shape == x.shape and torch.equal(a, b)
    digits_like = torch.ones(64, 1, 8, 8)
    shifted = augment(digits_like, torch.Generator().manual_seed(1), torch.zeros(1))
    assert (shifted == 0).any()  # some samples were shifted, exposing the black padding
    assert (shifted.sum(dim=(1, 2, 3)) >= 49).all()  # by at most one pixel each way


def test_default_schedule() -> None:
    assert default_schedule(20) == (0, 1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 18, 20)
    sched = default_schedule(250)
    assert sched[0] == 0 and sched[-1] == 250 and 1 in sched and 2 in sched and 25 in sched
    assert len(sched) <= 25
    assert default_schedule(1) == (0, 1)


def test_superclass_target_needs_superclasses() -> None:
    from dataclasses import replace

    from backend.errors import DataError

    flat = replace(digits(), label_to_superclass=None, superclass_names=None)
    with pytest.raises(DataError, match="has no superclasses.*data.target"):
        flat.num_targets("superclass")
    assert flat.num_targets("label") == 10


def test_sigterm_marks_interrupted_and_resume_repeats_the_run(store: api.RunStore) -> None:
    """Kill a real training process mid-run, resume it, and compare with an uninterrupted twin. The kill lands
    after the first epoch, with three more to go: the margin, under load, before the run would end by itself."""
    common = ('model.name="vgg"', "model.stages=2", "model.width_factor=0.25", "model.dropout=0.2",
              "train.augment=true", "train.epochs=4", "snapshots.epochs=[0,2,4]")
    twin = api.train(tiny_config('run_id="twin"', *common), store, progress=False)
    args = [sys.executable, "-m", "backend.cli", "train", "--store", str(store.root), "--no-progress"]
    for o in (*TINY, 'run_id="victim"', *common):
        args += ["--set", o]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 300  # it imports torch and trains an epoch first: minutes on a machine under heavy load
    while time.time() < deadline and proc.poll() is None:
        try:
            if (store.read_run("victim").get("epochs_completed") or 0) >= 1:
                break
        except Exception:
            pass
        time.sleep(0.02)
    else:  # no kill mid-training to test: say why, rather than fail on the run's state later
        proc.kill()
        _, err = proc.communicate(timeout=60)
        pytest.fail(f"the training process (exit {proc.returncode}) did not finish its first epoch within 300 s:\n{err[-3000:]}")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    info = api.read_run(store, "victim")
    assert info["status"] == "interrupted" and 1 <= info["epochs_completed"] < 4
    api.resume("victim", store, progress=False)
    assert api.read_run(store, "victim")["status"] == "complete"
    for epoch in (0, 2, 4):
        for layer in ("conv1_1.relu", "conv2_2.relu"):
            np.testing.assert_array_equal(store.read_activations("victim", layer, epoch)[1],
                                          store.read_activations(twin, layer, epoch)[1])
    m_twin, m_victim = api.read_metrics(store, twin), api.read_metrics(store, "victim")
    assert m_victim[["epoch", "split", "loss", "accuracy"]].equals(m_twin[["epoch", "split", "loss", "accuracy"]])



def test_input_dropout_masks_inputs_in_training_only() -> None:
    """model.input_dropout (the thesis's SynthClust intervention, SCIENCE.md finding 9) zeroes inputs while
    training, scaling the kept ones by 1/(1-p), and leaves evaluation untouched; other models refuse it."""
    model = build_model(ModelConfig(name="mlp", depth=1, width=4, batch_norm=False, input_dropout=0.5), (200,), 2, seed=0)
    x = torch.ones(3, 200)
    model.train()
    dropped = model.input_dropout(x)
    assert set(torch.unique(dropped).tolist()) == {0.0, 2.0}
    assert 0.35 < (dropped == 0).float().mean().item() < 0.65
    model.eval()
    assert torch.equal(model.input_dropout(x), x)
    plain = build_model(ModelConfig(name="mlp", depth=1, width=4, batch_norm=False), (200,), 2, seed=0)
    assert torch.equal(plain(x), model(x))  # same initial weights; no dropout at evaluation
    with pytest.raises(ConfigError, match="model.input_dropout"):
        tiny_config('model.name="vgg"', "model.input_dropout=0.5")


def test_synthclust_test_noise_changes_the_test_samples_only() -> None:
    """data.synthclust.test_noise [P]: the test samples at another noise level, the training samples as they were."""
    from backend.config import SynthClustConfig
    from backend.data.builtin import synthclust

    small = {"dim": 40, "clusters_per_class": 3, "train_per_cluster": 30, "test_per_cluster": 30, "noise": 0.1}
    same, other = synthclust(SynthClustConfig(**small)), synthclust(SynthClustConfig(**small, test_noise=0.4))
    np.testing.assert_array_equal(same.train.x, other.train.x)
    np.testing.assert_array_equal(same.test.label, other.test.label)
    centres = np.zeros((6, 40), np.float32)  # each sample minus its centroid: the noise drawn for it
    for k in range(6):
        centres[k] = np.round(same.train.x[same.train.label == k].mean(axis=0))
    spread = {name: float((d.test.x - centres[d.test.label]).std()) for name, d in (("same", same), ("other", other))}
    assert abs(spread["same"] - 0.1) < 0.01 and abs(spread["other"] - 0.4) < 0.04
