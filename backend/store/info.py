"""RunInfo: a run's run.json read once into typed fields (docs/store.md, "run.json"); the file's format is unchanged.

The store reads and writes run.json as a dict (:meth:`RunStore.read_run`, :meth:`RunStore.update_run`) and
:meth:`RunStore.run_info` turns it into a :class:`RunInfo`, so readers name fields instead of spelling keys
(``info.layers`` rather than ``[x["name"] for x in info.get("layers") or []]``). ``raw`` keeps the whole
dict for what has no field here (versions, origin, the process record that liveness reads).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, eq=False)
class RunInfo:
    """One run's metadata. Sections of the config (``config["data"]``, ...) and ``dataset`` stay plain dicts as
    written; treat them as read-only (they are copies of the file's, not shared with the store)."""

    run_id: str
    status: str  # as written: 'running', 'complete', 'interrupted', 'failed', 'diverged', 'cancelled'
    config: dict[str, Any]  # the validated RunConfig as a dict (backend.config.to_dict)
    dataset: dict[str, Any]  # name, kind, target, label_names, superclass_names, sizes
    model_name: str | None
    layers: tuple[str, ...]  # recorded layers' names, in network order
    recorded_epochs: tuple[int, ...]
    epochs_completed: int | None
    final: dict[str, Any]  # train/test accuracy and loss of the last finished epoch; {} before the first
    created: str | None
    updated: str | None
    error: str | None
    raw: dict[str, Any] = field(repr=False)  # the whole run.json

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> RunInfo:
        """A RunInfo from run.json's dict (missing keys become None, empty dicts or tuples)."""
        raw = copy.deepcopy(info)
        return cls(
            run_id=str(raw.get("run_id", "")), status=str(raw.get("status")), config=dict(raw.get("config") or {}),
            dataset=dict(raw.get("dataset") or {}), model_name=(raw.get("model") or {}).get("name"),
            layers=tuple(str(x["name"]) for x in raw.get("layers") or []),
            recorded_epochs=tuple(int(e) for e in raw.get("recorded_epochs") or []),
            epochs_completed=raw.get("epochs_completed"), final=dict(raw.get("final") or {}),
            created=raw.get("created"), updated=raw.get("updated"), error=raw.get("error"), raw=raw)

    def section(self, name: str) -> dict[str, Any]:
        """One section of the run's config (``data``, ``model``, ``train``, ``snapshots``, ``analysis``, ...); {}
        when the run has none."""
        return dict(self.config.get(name) or {})

    @property
    def target(self) -> str | None:
        """What the network was trained on: ``label`` or ``superclass`` (as recorded in ``dataset``)."""
        return self.dataset.get("target")

    @property
    def train_accuracy(self) -> float | None:
        return self.final.get("train_accuracy")

    @property
    def test_accuracy(self) -> float | None:
        return self.final.get("test_accuracy")
