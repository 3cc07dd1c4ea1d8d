"""The command line: success paths and every bad-input case (one line, exit code 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backend.cli import cli
from tests.conftest import TINY


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def test_train_then_runs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('run_id = "cli-run"\n[train]\nepochs = 1\n')
    code, out, err = run("train", str(cfg), "--store", str(store), "--no-progress", *sets(*TINY, "train.epochs=1",
                                                                                            "snapshots.epochs=[1]"))
    assert code == 0, err
    assert "run cli-run: complete" in out
    code, out, _ = run("runs", "--json", "--store", str(store))
    rows = json.loads(out)
    assert code == 0 and rows[0]["run_id"] == "cli-run" and rows[0]["status"] == "complete"
    assert 0.2 < rows[0]["test_accuracy"] <= 1.0
    code, out, _ = run("runs", "--store", str(store))
    assert "cli-run" in out and "complete" in out


def test_runs_on_empty_store(tmp_path: Path) -> None:
    code, out, _ = run("runs", "--store", str(tmp_path / "nothing"))
    assert code == 0 and "clusterscope demo" in out


def test_store_is_accepted_before_and_after_the_subcommand(tmp_path: Path) -> None:
    """README: `--store PATH` names the store for every command; both places work, the later one wins."""
    first, second = tmp_path / "first", tmp_path / "second"
    for args in (["--store", str(first), "runs"], ["runs", "--store", str(first)],
                 ["--store", str(second), "runs", "--store", str(first)]):
        code, out, err = run(*args)
        assert code == 0, err
        assert f"no runs in {first}" in out, (args, out)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=0.1"], "unknown config key 'train.lrr'"),
        (["train.lr=-0.5"], "train.lr must be a number > 0; got -0.5"),
        (["train.batch_size=0"], "train.batch_size must be an integer >= 1; got 0"),
        (['data.name="imagenet"'], "data.name must be one of"),
        (['model.name="bigmodel"'], "model.name must be one of"),
        (['snapshots.layers=["fc9.relu"]'], "snapshots.layers names unknown layer(s) ['fc9.relu']"),
        (['data.name="mnist"', 'data.root="/nonexistent/mnist"', 'data.target="label"'], "/nonexistent/mnist"),
        (['data.name="synthclust"', "train.augment=true"], "train.augment is for image data sets only"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, overrides: list[str], message: str) -> None:
    store = tmp_path / "store"
    code, out, err = run("train", "--store", str(store), "--no-progress", *sets(*TINY, 'run_id="bad"', *overrides))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (store / "bad").exists()


def test_existing_run_id_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "taken").mkdir(parents=True)
    (store / "taken" / "run.json").write_text('{"status": "complete", "marker": 1}')
    code, _, err = run("train", "--store", str(store), *sets(*TINY, 'run_id="taken"'))
    assert code == 2 and "run 'taken' already exists" in err and "--resume taken" in err
    assert json.loads((store / "taken" / "run.json").read_text()) == {"status": "complete", "marker": 1}


def test_unwritable_store(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run("train", "--store", str(blocker / "store"), *sets(*TINY))
    assert code == 2 and "is not writable" in err and "--store" in err


def test_missing_config_file(tmp_path: Path) -> None:
    code, _, err = run("train", str(tmp_path / "missing.toml"), "--store", str(tmp_path))
    assert code == 2 and "missing.toml" in err and "does not exist" in err


def test_resume_errors(tmp_path: Path) -> None:
    code, _, err = run("train", "--resume", "nope", "--store", str(tmp_path))
    assert code == 2 and "run 'nope' not found" in err
    code, _, err = run("train", "--resume", "../x", "--store", str(tmp_path))
    assert code == 2 and "is not valid" in err


def test_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(tmp_path / "env-store"))
    code, out, _ = run("runs")
    assert code == 0 and str(tmp_path / "env-store") in out


def test_train_takes_a_config_as_json(tmp_path: Path) -> None:
    """The dashboard hands its child process the validated config as JSON (--config-json); bad JSON or a bad
    value gets one line and exit code 2, and --config-json does not mix with CONFIG or --set."""
    from backend.config import load_config, to_dict

    store = tmp_path / "store"
    cfg = to_dict(load_config(None, [*TINY, "train.epochs=1", "snapshots.epochs=[1]", 'run_id="from-json"',
                                     "analysis.auto=false"]))
    code, _, err = run("train", "--store", str(store), "--no-progress", "--config-json", json.dumps(cfg))
    assert code == 0, err
    assert json.loads((store / "from-json" / "run.json").read_text())["config"] == cfg
    for bad, message in [("{not json", "not valid JSON"), (json.dumps(cfg | {"train": {"lr": -1}}), "train.lr")]:
        code, _, err = run("train", "--store", str(store), "--config-json", bad)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run("train", "--store", str(store), "--config-json", json.dumps(cfg), "--set", "train.lr=0.1")
    assert code == 2 and "drop CONFIG and --set" in err


@pytest.mark.parametrize(("command", "says"), [("train", "clusterscope train --resume"),
                                               ("analyze", "run the same `clusterscope analyze` command again"),
                                               ("sweep", "run the same `clusterscope sweep` command again"),
                                               ("import_", "run the import again"), ("runs", "interrupted.")])
def test_ctrl_c_says_how_to_go_on_for_that_command(command: str, says: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from backend.cli_support import INTERRUPTED, user_errors

    def interrupted() -> None:
        raise KeyboardInterrupt

    interrupted.__name__ = command
    with pytest.raises(SystemExit) as exit_:
        user_errors(interrupted)()
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    # every message names a real command, so none can go stale
    assert {cmd.callback.__wrapped__.__name__ for cmd in cli.commands.values()} >= set(INTERRUPTED)  # type: ignore[union-attr]
