"""User-facing errors.

Every error a user can cause (a bad config value, a wrong path, a corrupt file) is raised as a
:class:`ClusterScopeError` whose message names the input, what was expected, what was received
and what to do next. The CLI prints the message on one line and exits with code 2; the dashboard
shows it in the panel concerned. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ClusterScopeError(Exception):
    """An error caused by user input, with a message meant for the user."""

    exit_code = 2


class ConfigError(ClusterScopeError):
    """A configuration key or value is unknown or out of range."""


class StoreError(ClusterScopeError):
    """The run store or one of its files is missing, unwritable or malformed."""


class CorruptFileError(StoreError):
    """A store file exists but cannot be read (damaged, truncated, not what its name says)."""


class DataError(ClusterScopeError):
    """A data set is unknown, missing on disk or malformed."""


def expected(what: str, *, expected: str, got: object, hint: str = "") -> str:
    """Format the house error message: ``what must be expected; got X. hint``."""
    msg = f"{what} must be {expected}; got {got!r}."
    return f"{msg} {hint}".strip()


class AnalysisInputError(ClusterScopeError):
    """The run cannot be analysed at all (no snapshots, no samples, no initial weights for rotation)."""
