"""NC3 (SCIENCE.md 7) only where the analysed values are the classifier's input (backend.jobs.analyse_geometry):
checked against the models themselves, and on a real analysed run; the reasons stored where it is not."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from backend import api
from backend.store import RunStore

SETUPS = [("mlp", "relu"), ("mlp", "linear"), ("vgg", "relu"), ("resnet", "relu")]


@pytest.mark.parametrize("reduction", ["max", "mean"])
@pytest.mark.parametrize("analysis_input", ["post_relu", "pre"])
@pytest.mark.parametrize("setup", SETUPS)
def test_nc3_is_measured_exactly_where_the_analysed_values_are_the_classifiers_input(
        setup: tuple[str, str], analysis_input: str, reduction: str) -> None:
    """For every model, activation, snapshots.reduction and analysis.input: the rule says "" exactly when the
    recorded values of the feeding layer, taken as the analysis takes them, equal what the classifier receives
    (read by a forward pre-hook on the model's classifier)."""
    from backend.config import load_config
    from backend.jobs.analyse_geometry import classifier_input_mismatch
    from backend.store import RunInfo
    from backend.training.models import build_model
    from backend.training.snapshots import probe_layers, record

    name, activation = setup
    cfg = load_config(None, (f'model.name="{name}"', "model.width=8", "model.width_factor=0.25", "model.stages=2", "model.dropout=0.5",
                             f'model.activation="{activation}"', "model.depth=8" if name == "resnet" else "model.depth=2"))
    shape = (8,) if name == "mlp" else (3, 8, 8)
    net = build_model(cfg.model, shape, 3, seed=0)
    last = probe_layers(net, shape)[-1]
    seen: list[torch.Tensor] = []
    handle = net.classifier.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    x = torch.randn((16, *shape), generator=torch.Generator().manual_seed(1))
    values = record(net, [x], [last], reduction)[last.name]
    handle.remove()
    analysed = np.maximum(values, 0.0) if analysis_input == "post_relu" else values
    same = np.allclose(analysed, seen[0].numpy(), atol=1e-6)
    info = RunInfo.from_dict({"model": {"name": name}, "config": {"model": dataclasses.asdict(cfg.model),
                                                                  "snapshots": {"reduction": reduction}}})
    why = classifier_input_mismatch(info, analysis_input)
    assert (why == "") == same, (setup, analysis_input, reduction, why)
    expected = {("mlp", "relu"): analysis_input == "post_relu", ("mlp", "linear"): analysis_input == "pre",
                ("vgg", "relu"): analysis_input == "post_relu" and reduction == "max", ("resnet", "relu"): False}
    assert same == expected[setup]
    if why:  # what the classifier receives, what was recorded, what would make it measurable
        assert why.startswith("the classifier receives") and f'analysis.input = "{analysis_input}"' in why
        assert ("no setting records it" in why) if name == "resnet" else ("to measure NC3" in why)


def _copy(src: RunStore, run_id: str, tmp_path: Path) -> RunStore:
    dst = RunStore(tmp_path / "copy")
    shutil.copytree(src.run_dir(run_id), dst.root / run_id)
    return dst


def test_nc3_of_pre_activations_is_nan_with_its_reason(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """The tiny ReLU MLP analysed with analysis.input = "pre": its classifier receives max(x, 0), not the
    pre-activations, so NC3 is NaN and its stored reason says which setting measures it."""
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    report = api.analyze(store, run_id, api.analysis_config(store, run_id, ['analysis.input="pre"']))
    assert len(report.analysed) == 6 and not report.errors, report.summary()
    geo = api.layer_geometry(store, run_id)
    last = geo[geo["layer"] == "fc2.relu"]
    assert last["nc3_class"].isna().all() and geo["nc1_class"].notna().all()
    assert last["nc3_reason"].str.contains('analyse with analysis.input = "post_relu" to measure NC3').all()
    assert last["nc3_reason"].str.startswith("the classifier receives the last hidden layer's max(x, 0)").all()


def test_an_unreadable_checkpoint_gives_a_reason_without_a_path(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """A corrupt checkpoint: NC3 is NaN and its stored reason (shown on the Geometry page) names the file relative
    to the run, never the server's path (the store's CorruptFileError text has it)."""
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    store.checkpoint_path(run_id, 1).write_bytes(b"not a torch file")
    store.analysis.remove(run_id, "layers", "fc2.relu", 1)
    report = api.analyze(store, run_id)
    assert report.analysed == [("fc2.relu", 1)], report.summary()
    reason = api.layer_geometry(store, run_id).set_index(["layer", "epoch"]).loc[("fc2.relu", 1), "nc3_reason"]
    assert reason.startswith("the checkpoint of epoch 1 (checkpoints/epoch=0001.pt) cannot be read: the file is corrupt")
    assert str(tmp_path) not in reason and "/" not in reason.replace("checkpoints/epoch", "")


def test_nc3_of_zero_weights_a_dead_layer_or_non_finite_values_is_nan_with_its_reason() -> None:
    """||W|| = 0, coinciding class means (a dead feeding layer) and non-finite inputs: NaN without a RuntimeWarning
    (an error in this suite), and nc3_problem names the cause instead of a class mismatch."""
    import warnings

    from backend.analysis import geometry

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = np.maximum(rng.normal(size=(3, 6))[y] * 3 + rng.normal(size=(60, 6)), 0)
    w = rng.normal(size=(3, 6))
    inf_w = w.copy()
    inf_w[0, 0] = np.inf
    nan_x = x.copy()
    nan_x[0, 0] = np.nan
    cases = {"all 0: no direction": (np.zeros((3, 6)), x), "class means of the layer coincide": (w, np.zeros((60, 6))),
             "weights hold NaN or infinite": (inf_w, x), "layer's values hold NaN or infinite": (w, nan_x)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for words, (weights, values) in cases.items():
            assert np.isnan(geometry.nc3_of(weights, values, y)), words
            assert words in geometry.nc3_problem(weights, values, y)
        assert np.isnan(geometry.nc3(np.zeros((3, 6)), x, y)) and np.isnan(geometry.nc3(w, np.ones((60, 6)), y))
    assert geometry.nc3_problem(w, x, y) == "" and 0 < geometry.nc3_of(w, x, y) < 4
    assert "no row" in geometry.nc3_problem(w[:2], x, y) and "at least 2" in geometry.nc3_problem(w, x, np.zeros(60, int))


def test_a_zero_classifier_is_stored_with_its_reason(analysed_store: tuple[RunStore, str], tmp_path: Path) -> None:
    """A checkpoint whose classifier weights are all 0: the analysis stores NaN with that reason (it warned, an
    error in this suite, and would have said that the classes do not match)."""
    store = _copy(*analysed_store, tmp_path)
    run_id = analysed_store[1]
    state = store.load_checkpoint(run_id, 2)
    state["classifier.weight"] = torch.zeros_like(state["classifier.weight"])
    torch.save(state, store.checkpoint_path(run_id, 2))
    store.analysis.remove(run_id, "layers", "fc2.relu", 2)
    report = api.analyze(store, run_id)
    assert report.analysed == [("fc2.relu", 2)] and not report.errors, report.summary()
    geo = api.layer_geometry(store, run_id).set_index(["layer", "epoch"])
    assert np.isnan(geo.loc[("fc2.relu", 2), "nc3_class"])
    assert geo.loc[("fc2.relu", 2), "nc3_reason"] == "the classifier's weights of these classes are all 0: no direction to compare"
