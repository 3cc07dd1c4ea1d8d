"""Training dynamics (SCIENCE.md 3.4): derivative signs, recording without side effects, winner-take-most."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from backend import api
from backend.analysis import dynamics as ad
from backend.config import ModelConfig, SynthClustConfig, load_config
from backend.data.builtin import synthclust_centroids, synthclust_difficulty
from backend.errors import ConfigError
from backend.training.dynamics import probe_pass
from backend.training.models import build_model
from backend.training.snapshots import probe_layers
from tests.conftest import tiny_config


def test_derivative_signs_match_a_hand_computed_network() -> None:
    model = build_model(ModelConfig(name="mlp", depth=1, width=3, batch_norm=False, bias=False), (2,), 2, seed=0)
    with torch.no_grad():
        model.fc1.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        model.classifier.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 0.25]]))
    x = torch.tensor([[2.0, 1.0], [0.5, 3.0]])
    y = torch.tensor([0, 1])
    pre, sign, loss = probe_pass(model, x, y, probe_layers(model, (2,)), units=0)
    # By hand: h = W1 x; a = relu(h); z = W2 a; dL/da = W2^T (softmax(z) - onehot(y)).
    w1, w2 = model.fc1.linear.weight.detach().numpy(), model.classifier.weight.detach().numpy()
    h = x.numpy() @ w1.T
    z = np.maximum(h, 0) @ w2.T
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    dz = p - np.eye(2)[y.numpy()]
    np.testing.assert_allclose(pre["fc1.relu"], h, rtol=1e-6)
    np.testing.assert_array_equal(sign["fc1.relu"], np.sign(dz @ w2))
    np.testing.assert_allclose(loss, -np.log(p[[0, 1], y.numpy()]), rtol=1e-4)
    assert sign["fc1.relu"].dtype == np.int8
    assert (h[:, 2] < 0).all() and (sign["fc1.relu"][:, 2] != 0).all()  # off units still get the activation's sign
    assert all(prm.grad is None for prm in model.parameters())  # no parameter gradient left behind


def test_probe_pass_runs_in_eval_mode_and_leaves_batch_norm_alone() -> None:
    model = build_model(ModelConfig(name="mlp", depth=2, width=5, batch_norm=True, dropout=0.5), (4,), 3, seed=0)
    model.train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    gen = model.fc1.dropout.generator.get_state()
    pre, sign, _ = probe_pass(model, torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), probe_layers(model, (4,)), units=2)
    assert model.training
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    assert torch.equal(gen, model.fc1.dropout.generator.get_state())
    assert pre["fc2.relu"].shape == (6, 2) and sign["fc1.relu"].shape == (6, 2)


def test_average_sign_loss_share_and_cube() -> None:
    sign = np.array([[[-1, 0]], [[-1, 0]], [[1, 0]]])  # (3 steps, 1 sample, 2 units)
    avg = ad.average_derivative_sign(sign)
    assert avg[0, 0] == pytest.approx(-1 / 3) and np.isnan(avg[0, 1])  # exact zeros are ignored
    share = ad.loss_share(np.array([[1.0, 3.0], [0.0, 0.0]]), difficult=np.array([False, True]))
    assert share[0] == pytest.approx(0.75) and np.isnan(share[1])
    frame = pd.DataFrame({"step": [0, 0, 5, 5], "sample_id": [7, 3, 7, 3], "unit": [0, 0, 0, 0], "pre": [1.0, 2.0, 3.0, 4.0]})
    (steps, ids, units), cube = ad.to_cube(frame, "pre")
    assert steps.tolist() == [0, 5] and ids.tolist() == [3, 7] and cube[:, :, 0].tolist() == [[2.0, 1.0], [4.0, 3.0]]
    with pytest.raises(ValueError, match="one row per"):
        ad.to_cube(frame.iloc[:3], "pre")


def test_synthclust_difficulty_by_hand() -> None:
    cfg = SynthClustConfig(dim=12, classes=2, clusters_per_class=2, active_per_centroid=3)
    c = synthclust_centroids(cfg)
    # A sample sitting on its own centroid (cluster 0, class 0): 0 - 3 = -3 (easy); halfway to class 1's: difficult.
    x = np.stack([c[0], 0.4 * c[0] + c[2] + c[3]])
    np.testing.assert_allclose(synthclust_difficulty(x, np.array([0, 0]), cfg), [-3.0, 6.0 - 1.2])


def test_recording_does_not_change_training_and_writes_the_dynamics_files(store: api.RunStore) -> None:
    plain = api.train(tiny_config('run_id="plain"', "model.dropout=0.2"), store, progress=False)
    rec = api.train(tiny_config('run_id="rec"', "model.dropout=0.2", "dynamics.enabled=true", "dynamics.every=4",
                                "dynamics.probe_size=50", "dynamics.units=8", 'dynamics.layers=["fc2.relu"]'),
                    store, progress=False)
    a, b = store.load_checkpoint(plain, 2), store.load_checkpoint(rec, 2)
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights with and without recording
    assert api.dynamics_layers(store, rec) == ["fc2.relu"] and api.dynamics_layers(store, plain) == []
    units = api.read_dynamics(store, rec, "fc2.relu")
    steps_per_epoch = -(-1437 // 64)
    expected_steps = list(range(0, 2 * steps_per_epoch, 4))
    assert sorted(units["step"].unique()) == expected_steps
    assert len(units) == len(expected_steps) * 50 * 8
    assert set(units["grad_sign"].unique()) <= {-1, 0, 1}
    assert units.loc[units["step"] == 24, "epoch"].iloc[0] == 2  # step 24 is the second epoch's first recording
    loss = api.read_dynamics(store, rec)
    assert len(loss) == len(expected_steps) * 50 and (loss["loss"] > 0).all()
    probe = store.read_dynamics_probe(rec)
    assert len(probe) == 50 and probe["difficulty"].isna().all()  # digits: no easy/difficult split
    store.delete_snapshots_after(rec, 1)  # what a resume from epoch 1 does before redoing epoch 2
    assert sorted(api.read_dynamics(store, rec, "fc2.relu")["epoch"].unique()) == [1]
    assert sorted(api.read_dynamics(store, rec)["epoch"].unique()) == [1]


def test_unknown_dynamics_layer_is_refused_before_the_run_exists(store: api.RunStore) -> None:
    with pytest.raises(ConfigError, match=r"dynamics.layers names unknown layer\(s\) \['fc9.relu'\]"):
        api.train(tiny_config('run_id="bad"', "dynamics.enabled=true", 'dynamics.layers=["fc9.relu"]'), store, progress=False)
    assert not store.exists("bad")


# The thesis's SynthClust experiment (SCIENCE.md section 4, chapter 3) scaled down: 150-D inputs, 40 examples per
# cluster, 100 hidden units without biases, full batch, Layca at lr 3^-3, 60 epochs.
SYNTHCLUST_WTM = (
    'data.name="synthclust"', 'data.target="superclass"', "data.synthclust.dim=150", "data.synthclust.train_per_cluster=40",
    "data.synthclust.test_per_cluster=20", 'model.name="mlp"', "model.depth=1", "model.width=100", "model.batch_norm=false",
    "model.bias=false", 'train.optimizer="layca-sgd"', "train.lr=0.037037", "train.batch_size=1200", "train.epochs=60",
    'train.device="cpu"', "snapshots.epochs=[0, 60]", "snapshots.probe_train=60", "snapshots.probe_test=60",
    "dynamics.enabled=true", "dynamics.every=5", "dynamics.probe_size=300", "dynamics.units=0",
)


def _top_wtm(store: api.RunStore, run_id: str) -> tuple[float, float, pd.DataFrame]:
    m = api.mechanisms(store, run_id, "fc1.relu")
    top = m["units"].head(10)  # the 10 units with the largest outgoing weights (the thesis's choice)
    return float(top["wtm_last"].median()), float((top["wtm_last"] > 1).mean()), m["loss_share"]


def test_synthclust_relu_units_separate_one_class_clusters_but_not_without_relu(store: api.RunStore) -> None:
    relu = api.train(load_config(None, (*SYNTHCLUST_WTM, 'run_id="wtm-relu"')), store, progress=False)
    linear = api.train(load_config(None, (*SYNTHCLUST_WTM, 'run_id="wtm-linear"', 'model.activation="linear"')), store,
                       progress=False)
    median_relu, frac_relu, share = _top_wtm(store, relu)
    median_linear, frac_linear, _ = _top_wtm(store, linear)
    assert median_relu > 1.2 and frac_relu >= 0.8  # finding 7: clusters of one class pulled apart
    assert median_linear < 0.8 and frac_linear <= 0.2  # finding 8: no ReLU, no winner-take-most
    assert share["difficult"].iloc[-1] > share["difficult"].iloc[0]  # the difficult examples' loss share rises
    one = api.train(load_config(None, (*SYNTHCLUST_WTM, 'run_id="wtm-one"', "model.width=1")), store, progress=False)
    assert _top_wtm(store, one)[0] < 0.9  # finding 8: a single hidden unit does not do it either
