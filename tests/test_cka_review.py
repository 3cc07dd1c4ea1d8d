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


def test_debiased_cka_of_unrelated_representations_is_about_zero() -> None:
    """Two independent 512-unit representations of 2,000 samples (the default cka_max_samples): the biased closed
    form gives about d/(n + d) = 0.20, the debiased one about 0; both keep CKA(X, X) = 1 and the invariances."""
    from backend.analysis import geometry

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 512)).astype(np.float32)
    y = rng.normal(size=(2000, 512)).astype(np.float32)
    biased, debiased = geometry.linear_cka(x, y), geometry.linear_cka(x, y, debiased=True)
    assert abs(biased - 512 / 2512) < 0.01 and abs(debiased) < 0.01, (biased, debiased)
    q, _ = np.linalg.qr(rng.normal(size=(512, 512)))
    assert abs(geometry.linear_cka(x, x, debiased=True) - 1.0) < 1e-8  # 6.5e-10 off on an AMD EPYC, exactly 1 elsewhere
    assert abs(geometry.linear_cka(x, 3.0 * x @ q.astype(np.float32), debiased=True) - 1.0) < 1e-4
    related = x[:, :256] @ rng.normal(size=(256, 64)).astype(np.float32)
    assert 0.3 < geometry.linear_cka(x, related, debiased=True) < geometry.linear_cka(x, related)
    m = geometry.cka_matrix([x, y, related], debiased=True)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1) and abs(m[0, 1] - debiased) < 1e-9


def test_the_debiased_closed_form_is_the_unbiased_hsic_of_song_et_al() -> None:
    """_hsic_debiased (features only) equals n(n − 3) times the unbiased estimator on the Gram matrices."""
    from backend.analysis.geometry import _hsic_debiased, _hsic_unbiased, _row_norms

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 7)), rng.normal(size=(40, 3))
    y[:, 0] += x[:, 0]
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = len(x)
    ours = _hsic_debiased(float(np.linalg.norm(yc.T @ xc) ** 2), _row_norms(xc), _row_norms(yc)) / (n * (n - 3))
    assert np.isclose(ours, _hsic_unbiased(xc @ xc.T, yc @ yc.T), rtol=1e-10, atol=0)


def test_the_run_stores_debiased_cka_and_its_sample_count(analysed_store: tuple[api.RunStore, str]) -> None:
    """cka.parquet holds the debiased values (analysis.cka_debiased, default) and its parameters say on how many of
    the embedded samples, for the Geometry page's caption."""
    from backend.analysis.geometry import cka_matrix

    store, run_id = analysed_store
    n = len(store.read_samples(run_id, columns=["sample_id"]))
    params = api.cka_params(store, run_id)
    assert params["cka_samples"] == n == params["cka_of"] and params["cka_debiased"] is True
    reps = [np.maximum(store.read_activations(run_id, "fc2.relu", e)[1], 0) for e in (0, 1, 2)]
    np.testing.assert_allclose(api.cka_epochs(api.read_cka(store, run_id), "fc2.relu").to_numpy(),
                               cka_matrix(reps, debiased=True), rtol=1e-6)
