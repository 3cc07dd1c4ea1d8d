from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import RunConfig, load_config, parse_override, replace, validate
from backend.errors import ConfigError


def test_defaults_are_valid() -> None:
    validate(RunConfig())


def test_toml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "synthclust"\n[data.synthclust]\nclusters_per_class = 3\n[train]\nlr = 0.2\nlr_steps = [2]\n')
    cfg = load_config(path, ["train.lr=0.3", "model.name=vgg", "snapshots.epochs=[0,1]"])
    assert cfg.data.name == "synthclust"
    assert cfg.data.synthclust.clusters_per_class == 3
    assert cfg.train.lr == 0.3  # the override wins over the file
    assert cfg.model.name == "vgg"  # a bare word is read as a string
    assert cfg.train.lr_steps == (2,)
    assert cfg.snapshots.epochs == (0, 1)


def test_parse_override_types() -> None:
    assert parse_override("train.augment=true") == ("train.augment", True)
    assert parse_override("train.epochs=3") == ("train.epochs", 3)
    assert parse_override('run_id="a-b"') == ("run_id", "a-b")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.lrr=0.1", r"unknown config key 'train.lrr'.*Did you mean 'train.lr'"),
        ("train.lr=-0.1", r"train.lr must be a number > 0; got -0.1"),
        ("train.batch_size=0", r"train.batch_size must be an integer >= 1; got 0"),
        ("train.batch_size=1.5", r"train.batch_size must be an integer; got 1.5"),
        ("data.name=imagenet", r"data.name must be one of digits, synthclust"),
        ("model.name=transformer", r"model.name must be one of mlp, vgg, resnet or tv:"),
        ("run_id=../../etc", r"run_id must be 1-64 characters"),
        ("model.depth=5", None),  # fine for an mlp
        ("train.epochs=0", r"train.epochs must be an integer >= 1; got 0"),
        ("snapshots.reduction=median", r"snapshots.reduction must be 'max' or 'mean'; got 'median'"),
        ("nonsense", r"override 'nonsense' must look like key=value"),
    ],
)
def test_bad_values_name_the_key(override: str, match: str | None) -> None:
    if match is None:
        load_config(None, [override])
        return
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_resnet_depth_rule() -> None:
    with pytest.raises(ConfigError, match=r"model.depth must be 6n\+2"):
        load_config(None, ["model.name=resnet", "model.depth=10"])
    assert load_config(None, ["model.name=resnet", "model.depth=8"]).model.depth == 8


def test_missing_and_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr=")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)


def test_replace_validates() -> None:
    cfg = replace(RunConfig(), **{"train.lr": 0.5})
    assert cfg.train.lr == 0.5
    with pytest.raises(ConfigError, match="train.lr"):
        replace(cfg, **{"train.lr": 0.0})
