"""The CKA tables as the Geometry page reads them (backend.queries_geometry, SCIENCE.md 7): the epoch grid read
from the pairs present (analysis.cka_max_epochs = 2, a snapshot left out)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import api


def _epoch_rows(epochs: list[int], grid: list[int], missing: set[int]) -> pd.DataFrame:
    """The ``epoch`` rows backend.jobs.analyse_geometry._epoch_block writes for one layer: every two readable grid
    epochs (diagonal included) and each other readable epoch against the last readable grid epoch and itself."""
    ok = [e for e in grid if e not in missing]
    ref = ok[-1]
    pairs = [(a, b) for a in ok for b in ok]
    pairs += [p for e in epochs if e not in grid and e not in missing for p in ((e, e), (e, ref), (ref, e))]
    return pd.DataFrame([("epoch", "x", a, "x", b, 0.5 + 0.01 * a + 0.01 * b) for a, b in pairs],
                        columns=["kind", "layer_a", "epoch_a", "layer_b", "epoch_b", "cka"])


def test_the_epoch_grid_is_read_from_the_pairs_present() -> None:
    cases = [  # (epochs, grid written, snapshots left out, the grid the heatmap shows, the reference epoch)
        (list(range(10)), [0, 3, 6, 9], set(), [0, 3, 6, 9], 9),
        (list(range(10)), [0, 3, 6, 9], {9}, [0, 3, 6], 6),  # the last snapshot unreadable: 6 is the reference
        (list(range(10)), [0, 3, 6, 9], {3}, [0, 6, 9], 9),
        (list(range(5)), [0, 4], set(), [0, 4], 4),  # analysis.cka_max_epochs = 2
        (list(range(5)), list(range(5)), {2}, [0, 1, 3, 4], 4),  # no cap, one snapshot left out
        ([0, 1], [0, 1], set(), [0, 1], 1),
    ]
    for epochs, grid, missing, shown, ref in cases:
        rows = _epoch_rows(epochs, grid, missing)
        m = api.cka_epochs(rows, "x")
        assert list(m.index) == shown == list(m.columns), (grid, missing, list(m.index))
        assert m.notna().all().all(), (grid, missing)
        to_last = api.cka_to_last(rows)
        assert list(to_last.sort_values("epoch")["epoch"]) == [e for e in epochs if e not in missing], (grid, missing)
        expected = [0.5 + 0.01 * e + 0.01 * ref for e in to_last["epoch"]]
        np.testing.assert_allclose(to_last["cka"], expected)
