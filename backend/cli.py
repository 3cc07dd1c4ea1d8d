"""The ``clusterscope`` command line: a thin layer over :mod:`backend.api`.

Every user error prints one line ``error: ...`` and exits with code 2; Ctrl-C or SIGTERM during
training marks the run ``interrupted`` and exits with 130.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from backend import api
from backend.cli_support import STORE_HELP, json_table, store_option, user_errors
from backend.errors import ClusterScopeError
from backend.jobs.analyse import analyze_runs
from backend.liveness import sigterm_as_interrupt
from backend.serve import app_environment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clusterscope")
@click.option("--store", "store_root", type=click.Path(path_type=Path), default=None, help=STORE_HELP)
def cli(store_root: Path | None) -> None:
    """ClusterScope: record how a network organises its data, layer by layer and epoch by epoch."""


@cli.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.lr=0.1 (repeatable; values are TOML).")
@click.option("--resume", "resume_id", default=None, metavar="RUN_ID", help="Continue an interrupted run.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--config-json", default=None, hidden=True,
              help="The whole validated config as JSON (config.to_dict): how the dashboard hands a run to this process.")
@store_option
@user_errors
def train(config: Path | None, overrides: tuple[str, ...], resume_id: str | None, no_progress: bool,
          config_json: str | None, store_root: Path | None) -> None:
    """Train a model from a TOML CONFIG (plus --set overrides) and record snapshots into the store."""
    from backend.config import config_from_json, load_config

    store = api.open_store(store_root)
    sigterm_as_interrupt()
    if (resume_id or config_json) and (config or overrides or (resume_id and config_json)):
        raise ClusterScopeError("--resume continues a run with its recorded config, --config-json takes the whole "
                                "config; drop CONFIG and --set.")
    if resume_id:
        run_id = api.resume(resume_id, store, progress=not no_progress)
    else:
        cfg = config_from_json(config_json) if config_json else load_config(config, overrides)
        run_id = api.train(cfg, store, progress=not no_progress)
    info = api.run_info(store, run_id)
    final = info.final
    click.echo(f"run {run_id}: {info.status}, train accuracy {final.get('train_accuracy', float('nan')):.3f}, "
               f"test accuracy {final.get('test_accuracy', float('nan')):.3f} -> {store.run_dir(run_id)}")
    if info.status == "diverged":
        click.echo(f"error: run {run_id} {info.error}", err=True)
        sys.exit(1)
    if info.status == "complete" and api.analysis_config(store, run_id).auto:
        analyze_runs(store, [run_id], progress=not no_progress)


@cli.command()
@click.argument("run_ids", nargs=-1)
@click.option("--all", "all_runs", is_flag=True, help="Analyse every run of the store.")
@click.option("--set", "overrides", multiple=True, metavar="analysis.KEY=VALUE",
              help="Override an analysis setting, e.g. --set analysis.n_neighbors=15 (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Analyse this many runs at once, one process each (UMAP with a fixed seed uses one core).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Analyse each run's layers as Ray tasks, one per layer (this machine, or a cluster with --address).")
@click.option("--address", default=None, metavar="ADDR", help="With --ray: join this Ray cluster (ray://HOST:10001 or auto).")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="With --ray: local Ray CPUs, one layer at a time each (default: every core); with --address, "
                   "the most layers in flight.")
@click.option("--retries", type=click.IntRange(0, 100), default=2, show_default=True,
              help="With --ray: times a failed layer task (crashed worker, lost node) is submitted again.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@store_option
@user_errors
def analyze(run_ids: tuple[str, ...], all_runs: bool, overrides: tuple[str, ...], jobs: int, use_ray: bool,
            address: str | None, workers: int | None, retries: int, no_progress: bool, store_root: Path | None) -> None:
    """Compute embeddings, clusters and the thesis's measures for every snapshot of RUN_IDS.

    Only snapshots that are missing or whose parameters changed are computed. Exit code 1 when a
    snapshot could not be analysed (each is listed with run, layer and epoch). With --ray the layers
    of a run are analysed in parallel, with the same results.
    """
    store = api.open_store(store_root)
    ids = list(run_ids) or (store.run_ids() if all_runs else [])
    if not ids:
        raise ClusterScopeError("name at least one run (see `clusterscope runs`) or pass --all.")
    if not use_ray and (address or workers):
        raise ClusterScopeError("--address and --workers spread one run's layers over Ray: add --ray.")
    if use_ray and jobs > 1:
        raise ClusterScopeError("--jobs runs several runs at once, --ray one run's layers at once: choose one.")
    for run_id in ids:
        api.analysis_config(store, run_id, overrides)  # every bad input is reported before any work
    if use_ray:
        from backend.jobs.analyse_ray import analyze_runs_ray

        ok = analyze_runs_ray(store, ids, overrides, address=address, workers=workers, retries=retries,
                              progress=not no_progress)
    else:
        ok = analyze_runs(store, ids, overrides, jobs=jobs, progress=not no_progress)
    if not ok:
        sys.exit(1)


@cli.command()
@click.argument("run_ids", nargs=-1)
@click.option("--sweep", "sweep_name", default=None, metavar="NAME",
              help="Compare the complete runs of this sweep, with the sweep's axes as the hyperparameter columns.")
@click.option("--all-data", is_flag=True,
              help="Without RUN_IDS: compare every run, whatever its data set (default: the runs of the data set "
                   "and training target with the most runs).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None, help="Also write the table as CSV.")
@store_option
@user_errors
def compare(run_ids: tuple[str, ...], sweep_name: str | None, all_data: bool, csv_path: Path | None,
            store_root: Path | None) -> None:
    """Kendall tau of every measure against test accuracy across RUN_IDS (without them: the runs of the
    data set and training target with the most runs; a warning when the runs mix data sets).

    tau: the reference coefficient (SCIENCE.md 3.2: a pair tied in the measure or in test accuracy scores 0,
    one tied in both is left out); tau_b: scipy's tie-corrected tau-b; psi[key]: granulated tau per
    hyperparameter (config key) that differs between the runs, or "not measurable" when no two runs share
    the other settings; granulated_total: the mean of the measurable psi, over total_axes axes.
    """
    store = api.open_store(store_root)
    if sweep_name and run_ids:
        raise ClusterScopeError("give either RUN_IDS or --sweep NAME, not both.")
    if sweep_name:
        runs, table = api.compare_sweep(store, sweep_name)
    else:
        runs, table = api.compare(store, list(run_ids) or _default_runs(store, all_data))
    mixed = api.mixed_data(runs)
    if mixed:
        click.echo(f"warning: {mixed}", err=True)
    export = api.kendall_export(table)
    with pd_options():
        click.echo(runs.drop(columns=[c for c in runs.columns if c == "epoch"]).to_string(index=False))
        click.echo("")
        click.echo(export.map(_cell).to_string(index=False))
    notes = api.kendall_notes(table)
    for key in ("not_measurable", "ties"):
        if notes[key]:
            click.echo(notes[key])
    for note in compare_notes(store, runs):
        click.echo(note)
    if notes["ties_warning"]:
        click.echo(f"warning: {notes['ties_warning']}", err=True)
    if csv_path:
        export.to_csv(csv_path, index=False)
        click.echo(f"wrote {csv_path}")


def _default_runs(store: api.RunStore, all_data: bool) -> list[str]:
    """compare's runs when none are named: one data set's (api.default_compare_runs), saying which are left out."""
    ids, main, left_out = api.default_compare_runs(store, all_data=all_data)
    if left_out:
        others = ", ".join(f"{n} on {api.data_set_label(k)}" for k, n in left_out.items())
        click.echo(f"comparing the {len(ids)} runs on {api.data_set_label(main or '')}, the data set with the most runs; "
                   f"left out: {others}. Name the runs, or pass --all-data to compare every run.", err=True)
    return ids


def _cell(value: object) -> object:
    """A Kendall table cell as printed: 3 decimals; a not-measurable ψ shortened (the note below says why)."""
    if isinstance(value, float):
        return f"{value:.3f}"
    return "not measurable" if isinstance(value, str) and value.startswith("not measurable") else value


def compare_notes(store: api.RunStore, runs: Any) -> list[str]:
    """What the compare table's numbers mean: noise floors, k's share of the units, runs without c1/c2."""
    notes = ["", "c1_shuffled, c2_shuffled: noise floor, the same measure with subclasses shuffled within "
                 "superclasses (SCIENCE.md 3.1); k_c1, k_c3: top-k of n_units units.",
             "nc1_* ... twonn_id: representation geometry (SCIENCE.md 7), the mean over layers at the last analysed "
             "epoch; NC1, NC2, TwoNN lower = more collapsed (tau < 0: collapse goes with accuracy); k-NN, probe, NC4 "
             "higher = more separable."]
    for _, row in runs.iterrows():
        if warning := api.k_warning(row):
            notes.append(f"note: run {row['run_id']}: {warning}")
        if reason := api.intraclass_reason(store.read_run(row["run_id"])):
            notes.append(f"note: run {row['run_id']}: no c1, c2, subclass purity, WTM. {reason}")
    return notes


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50, "display.precision", 3)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@store_option
@user_errors
def runs(as_json: bool, store_root: Path | None) -> None:
    """List the runs of the store with status and final accuracies."""
    store = api.open_store(store_root)
    store.check_is_store()  # a missing or empty store is fine: it has no runs yet
    df = api.list_runs(store)
    if as_json:
        click.echo(json.dumps(json.loads(df.to_json(orient="records")), indent=2))
        return
    if df.empty:
        click.echo(f"no runs in {store.root}; create some with `clusterscope demo` or `clusterscope train CONFIG`.")
        return
    show = df[["run_id", "status", "dataset", "model", "epochs_completed", "train_accuracy", "test_accuracy"]].copy()
    for col in ("train_accuracy", "test_accuracy"):
        show[col] = show[col].map(lambda v: "" if v is None or v != v else f"{v:.3f}")
    show["epochs_completed"] = show["epochs_completed"].map(lambda v: "" if v is None or v != v else str(int(v)))
    click.echo(show.to_string(index=False))


@cli.command()
@click.option("--if-missing", is_flag=True, help="Do nothing when every demo run is already complete.")
@click.option("--detach", is_flag=True, help="Build in a background process (log: <store>/.demo.log) and return.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
@store_option
@user_errors
def demo(if_missing: bool, detach: bool, no_progress: bool, store_root: Path | None) -> None:
    """Build the built-in demo store (digits and SynthClust runs; about 2 minutes on 2 cores)."""
    from backend.jobs.demo import build_demo, missing_runs, spawn_builder

    store = api.open_store(store_root)
    store.ensure_writable()
    missing = missing_runs(store)
    if if_missing and not missing:
        click.echo(f"demo store {store.root} is complete.")
        return
    if detach:
        proc = spawn_builder(store)
        click.echo(f"building {len(missing)} demo run(s) in the background (pid {proc.pid}, log {store.demo_log_path()}).")
        return
    sigterm_as_interrupt()
    done = build_demo(store, progress=not no_progress)
    click.echo(f"demo store {store.root}: {len(done)} run(s) trained; {len(missing_runs(store))} missing.")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@store_option
@click.option("--allow-torchscript", is_flag=True,
              help="Let visitors load TorchScript (it runs code on this server) even when the page is reachable "
                   "from other machines; same as CLUSTERSCOPE_ALLOW_TORCHSCRIPT=1.")
@click.option("--allow-server-paths", is_flag=True,
              help="Let visitors name folders of this server as data even when the page is reachable from other "
                   "machines; same as CLUSTERSCOPE_ALLOW_SERVER_PATHS=1.")
@click.argument("streamlit_args", nargs=-1, type=click.UNPROCESSED)
@user_errors
def app(store_root: Path | None, allow_torchscript: bool, allow_server_paths: bool,
        streamlit_args: tuple[str, ...]) -> None:
    """Serve the dashboard on 127.0.0.1 (this machine only). Extra arguments and STREAMLIT_* variables go
    to Streamlit, e.g. `clusterscope app --server.port 8600`; `--server.address 0.0.0.0` serves a lab, with
    TorchScript and server folders off unless switched on (docs/security.md)."""
    main_py = Path(__file__).resolve().parent.parent / "app" / "main.py"
    if not main_py.is_file():
        raise ClusterScopeError(f"the dashboard's entry point {main_py} is missing; reinstall clusterscope.")
    env = app_environment(streamlit_args, os.environ, allow_torchscript=allow_torchscript,
                          allow_server_paths=allow_server_paths)
    store = api.open_store(store_root)
    for path in api.clean_leftovers(store):  # what killed imports left (backend/store/leftovers.py)
        click.echo(f"removed the leftover {path.relative_to(store.root)}", err=True)
    env["CLUSTERSCOPE_STORE"] = str(store.root.resolve())
    cmd = [sys.executable, "-m", "streamlit", "run", str(main_py), *streamlit_args]
    os.execvpe(cmd[0], cmd, env)


# ------------------------------------------------------------------------------------------ import


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--arch", default="auto", show_default=True, metavar="NAME",
              help="auto (recognise from the weights), mlp, vgg, resnet or tv:<torchvision name>, e.g. tv:resnet18.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Data set and recording settings: data.*, snapshots.*, analysis.*, train.device, run_id "
                   "(e.g. --set data.name=\"digits\"; repeatable; values are TOML).")
@click.option("--epochs", default=None, metavar="E1,E2,...",
              help="The epoch (or step) of each file, in the order given [default: read from the names, e.g. epoch=3.pt].")
@click.option("--data-zip", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Probe with an image-folder zip (one folder per class, optional superclasses.csv); checked before extraction.")
@click.option("--trust-torchscript", is_flag=True,
              help="Load TorchScript files. TorchScript runs the code it carries: only for files you trust.")
@click.option("--no-analyze", is_flag=True, help="Do not analyse the run after importing it.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
@click.option("--job", "job_id", default=None, hidden=True, help="Report progress in <store>/.imports/JOB/status.json.")
@click.option("--name", "names", multiple=True, hidden=True, help="Display name of each file (uploads).")
@click.option("--data-zip-name", default="", hidden=True)
@click.option("--settings-json", default=None, hidden=True, help="The checked --set settings as JSON (from the dashboard).")
@store_option
@user_errors
def import_(paths: tuple[Path, ...], arch: str, overrides: tuple[str, ...], epochs: str | None, data_zip: Path | None,
            trust_torchscript: bool, no_analyze: bool, no_progress: bool, job_id: str | None, names: tuple[str, ...],
            data_zip_name: str, settings_json: str | None, store_root: Path | None) -> None:
    """Import checkpoints of one model (files or a folder, one per epoch) as a run, and analyse it.

    Formats: PyTorch state_dict (.pt/.pth, wrappers and `module.` prefixes are removed), safetensors, and
    TorchScript with --trust-torchscript. Files are never unpickled. The epoch of each file is read from its
    name (epoch=3.pt, epoch_003.pt, step-1000.safetensors) or given with --epochs.
    """
    from backend.jobs.import_job import run_import_job
    from backend.jobs.uploads import check_settings, user_overrides

    store = api.open_store(store_root)
    epoch_list = api.parse_epochs(epochs, what="--epochs")
    settings = user_overrides(overrides) | (check_settings(json_table(settings_json, "--settings-json")) if settings_json else {})
    try:
        run_id = run_import_job(store, list(paths), arch=arch, settings=settings, epochs=epoch_list, data_zip=data_zip,
                                trust_torchscript=trust_torchscript, analyze=not no_analyze, progress=not no_progress,
                                job_id=job_id, names=names, data_zip_name=data_zip_name)
    except KeyboardInterrupt:
        click.echo("interrupted: a run interrupted while importing is not kept; one interrupted while being analysed is "
                   "listed by `clusterscope runs` and `clusterscope analyze RUN` finishes it.", err=True)
        sys.exit(130)
    click.echo(f"imported run {run_id} -> {store.run_dir(run_id)}")


# ------------------------------------------------------------------------------------------ sweeps


@cli.command()
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--address", default=None, metavar="ADDRESS",
              help="Join an existing Ray cluster at its head's address (HOST:6379, as `ray start --head` prints it, or auto); "
                   "the store must be on a filesystem every node sees (docs/sweeps.md). Default: start Ray on this machine.")
@click.option("--workers", type=click.IntRange(1, 4096), default=None,
              help="Local: Ray CPUs, i.e. trials at once [default: every core]. With --address: most trials in flight.")
@click.option("--retries", type=click.IntRange(0, 100), default=None, help="Extra attempts of a failed trial [default: sweep.retries].")
@click.option("--dry-run", is_flag=True, help="List the runs the sweep expands to and which are finished; start nothing.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@store_option
@user_errors
def sweep(sweep_file: Path, address: str | None, workers: int | None, retries: int | None, dry_run: bool,
          no_progress: bool, store_root: Path | None) -> None:
    """Train and analyse every run of a SWEEP_FILE (grid or random search) as Ray tasks.

    Finished runs are skipped, interrupted or failed ones resumed, so running it again continues an
    interrupted sweep. Exit code 1 when a trial failed after its retries (each is listed).
    """
    from backend.jobs.sweep import finished
    from backend.jobs.sweep_spec import expand

    spec = api.load_sweep(sweep_file)
    store = api.open_store(store_root)
    trials = expand(spec)
    if dry_run:
        for t in trials:
            state = "finished" if finished(store, t.run_id, analyze=spec.analyze) else "to run"
            click.echo(f"{t.run_id}  {state:8s}  " + "  ".join(f"{a}={v}" for a, v in t.axes.items()))
        click.echo(f"{len(trials)} run(s) in sweep {spec.name}.")
        return
    sigterm_as_interrupt()
    try:
        report = api.run_sweep(spec, store, address=address, workers=workers, retries=retries, progress=not no_progress)
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished runs are kept; run `clusterscope sweep {sweep_file}` again to continue "
                   "(runs cut short are resumed from their last finished epoch).", err=True)
        sys.exit(130)
    click.echo(report.summary())
    click.echo(f"compare them with `clusterscope compare --sweep {spec.name}` or on the dashboard's Compare page.")
    if report.failed:
        sys.exit(1)


def main() -> None:
    cli(prog_name="clusterscope")


if __name__ == "__main__":
    main()
