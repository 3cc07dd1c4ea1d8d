"""Layer rotation of a run (SCIENCE.md 3.3), the analysis's run-level step from the checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.errors import AnalysisInputError, StoreError
from backend.store import RunStore


def run_rotation(store: RunStore, run_id: str, ptag: tuple[str, str], errors: dict[str, str]) -> None:
    """Layer rotation per kernel and checkpoint epoch (SCIENCE.md 3.3), from checkpoints/epoch=*.pt.

    Without an epoch-0 checkpoint there is no rotation table (a stale one is removed) and the reason
    goes to ``errors["rotation"]``.
    """
    epochs = store.checkpoint_epochs(run_id)
    text, phash = ptag
    tag = f"{phash}:{','.join(map(str, epochs))}"
    if not epochs or store.analysis.params_hash(run_id, "rotation") == tag:
        return
    try:
        table, broken = rotation_of_run(store, run_id)
    except (StoreError, AnalysisInputError) as exc:
        store.analysis.remove(run_id, "rotation")
        errors["rotation"] = str(exc)
        return
    if broken:
        errors["rotation"] = broken
    if table is None:  # a diverged run whose first checkpoint after initialisation is already broken
        return
    store.analysis.write(run_id, "rotation", table, params=text, params_hash=tag)


def rotation_of_run(store: RunStore, run_id: str) -> tuple[pd.DataFrame | None, str | None]:
    """The run's layer-rotation table (:func:`backend.analysis.rotation.rotation_table`), every checkpoint
    measured from the epoch-0 checkpoint, the initial weights (SCIENCE.md 3.3).

    Raises :class:`AnalysisInputError` when the run has no epoch-0 checkpoint: measuring from the first
    checkpoint instead would understate the rotation. A diverged run's table stops before its first
    checkpoint with NaN or infinite weights (None when that is the first after initialisation), and the
    second value then says so (None for a run whose checkpoints are all finite).
    """
    from backend.analysis.rotation import rotation_table

    epochs = store.checkpoint_epochs(run_id)
    if 0 not in epochs:
        raise AnalysisInputError(
            f"layer rotation of run {run_id!r} needs the initial weights, since it measures each kernel's angle to its "
            f"initialisation (SCIENCE.md 3.3), but the run has no epoch-0 checkpoint (checkpoints at epochs "
            f"{epochs or 'none'}). Provide the weights before training as an epoch-0 checkpoint: import them with "
            "the other checkpoints (docs/import.md), or train the run again with snapshots.checkpoints = true."
        )
    states = {e: {k: v.numpy() for k, v in store.load_checkpoint(run_id, e).items() if hasattr(v, "numpy")}
              for e in epochs}
    bad = [e for e, st in states.items() if any(v.dtype.kind == "f" and not np.isfinite(v).all() for v in st.values())]
    if not bad:
        return rotation_table(states[0], states), None
    # a diverged run: its rotation stops before the first checkpoint with NaN or infinite weights
    states = {e: st for e, st in states.items() if e < bad[0]}
    message = (f"run {run_id!r}: the checkpoint(s) of epoch(s) {bad} hold NaN or infinite weights (training diverged); "
               f"layer rotation is left out from epoch {bad[0]} on.")
    return (rotation_table(states[0], states) if len(states) > 1 else None), message
