"""The command line's plumbing: the ``--store`` option accepted before or after a subcommand, and how a bad
input becomes one line on stderr with exit code 2 (never a traceback)."""

from __future__ import annotations

import errno
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from backend.errors import ClusterScopeError

F = TypeVar("F", bound=Callable[..., Any])

STORE_HELP = "Run store folder [default: $CLUSTERSCOPE_STORE or data/store]."


def _store_or_global(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """A subcommand's ``--store``, else the one given before the subcommand (``clusterscope --store X runs``)."""
    if value is not None:
        return value
    return ctx.find_root().params.get("store_root")


# accepted after the subcommand (``clusterscope runs --store X``) and, through the group, before it
store_option = click.option("--store", "store_root", type=click.Path(path_type=Path), default=None, help=STORE_HELP,
                            callback=_store_or_global)


DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only", errno.EIO: "the disk reported an input/output error"}


# what Ctrl-C leaves behind, per command (its function's name), and how to go on; others say "interrupted."
INTERRUPTED = {
    "train": "the run is marked 'interrupted'; continue it with `clusterscope train --resume RUN_ID`.",
    "analyze": "the snapshots analysed so far are kept; run the same `clusterscope analyze` command again to "
               "analyse the rest (finished snapshots are skipped).",
    "sweep": "runs that finished are kept; run the same `clusterscope sweep` command again to continue "
             "(finished runs are skipped, interrupted ones resumed).",
    "import_": "a run is published only once every checkpoint is recorded, so nothing half-imported is kept: run "
               "the import again. If it was already analysing, the imported run is kept (`clusterscope runs`); "
               "finish its analysis with `clusterscope analyze RUN_ID`.",
    "demo": "run `clusterscope demo` again: complete demo runs are kept, interrupted ones resumed.",
}


def user_errors(fn: F) -> F:
    """Turn ClusterScopeError into one line on stderr and exit code 2; interrupts into 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClusterScopeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted" + (f": {INTERRUPTED[fn.__name__]}" if fn.__name__ in INTERRUPTED else "."), err=True)
            sys.exit(130)
        except OSError as exc:
            if exc.errno not in DISK_ERRORS:
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"error: {DISK_ERRORS[exc.errno]}{where}; free space (or choose another store with --store) and "
                       "run the command again. A training run it stopped continues with `clusterscope train --resume "
                       "RUN_ID`.", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def json_table(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterScopeError(f"{what} must be a JSON object; {exc}.") from None
    if not isinstance(value, dict):
        raise ClusterScopeError(f"{what} must be a JSON object; got {type(value).__name__}.")
    return value
