"""The closed forms of the analysis (backend/analysis/accel.py) against scikit-learn, and the device setting.

Stated tolerance: silhouettes 1e-9 (float64, absolute). Their speed is not tested here (no timing in tests):
benchmarks/README.md gives it from the analysis benchmark's profile (34.9 CPU s per call before, 2.1 after).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples

from backend.analysis import accel, measures
from backend.config import AnalysisConfig, ConfigError, validate_analysis


def _post(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.maximum(np.random.default_rng(seed).normal(size=(n, d)), 0.0)
    x[:4] = 0.0  # dead rows: at distance 1 from every other row, 0 from themselves
    return x


def test_cosine_silhouettes_equal_sklearn() -> None:
    x = _post(500, 16)
    labels = np.random.default_rng(1).integers(0, 6, 500) * 3 + 2  # non-contiguous ids
    labels[7] = 99  # a sample alone in its cluster scores 0
    got = accel.cosine_silhouette_samples(x, labels)
    np.testing.assert_allclose(got, silhouette_samples(x, labels, metric="cosine"), rtol=0, atol=1e-9)
    assert got[7] == 0.0


def test_cosine_silhouettes_reject_one_label() -> None:
    with pytest.raises(ValueError, match="between 2 and"):
        accel.cosine_silhouette_samples(np.ones((5, 2)), np.zeros(5, dtype=int))


def test_subclass_silhouettes_match_sklearn() -> None:
    """c2's silhouettes through the closed form equal scikit-learn's O(n^2) ones."""
    rng = np.random.default_rng(0)
    n = 6000
    sub = rng.integers(0, 12, n)
    sup = sub // 4
    post = np.maximum(rng.normal(size=(n, 64)) + sub[:, None] * 0.05, 0.0)
    fast = measures.subclass_silhouettes(post, subclass=sub, superclass=sup)
    slow = []
    for s in range(3):
        m = sup == s
        per = silhouette_samples(post[m], sub[m], metric="cosine")
        slow += [per[sub[m] == g].mean() for g in np.unique(sub[m])]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


def test_device_setting() -> None:
    """The analysis runs on the CPU: "cpu" (the default) and "auto" are taken; a GPU is refused with the reason
    and what to set (the GPU path waits on the branch gpu-analysis until it has run on a GPU)."""
    assert AnalysisConfig().device == "cpu"
    validate_analysis(AnalysisConfig(device="auto"))
    for gpu in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=r"analysis.device must be 'cpu' or 'auto'.*not yet run on a GPU.*"
                                              r"set analysis.device = \"cpu\""):
            validate_analysis(AnalysisConfig(device=gpu))
    for bad in ("gpu", "tpu"):
        with pytest.raises(ConfigError, match="analysis.device must be") as err:
            validate_analysis(AnalysisConfig(device=bad))
        assert "GPU" not in str(err.value)


def test_default_cap_is_100k() -> None:
    assert AnalysisConfig().max_samples == 100_000


def test_device_is_not_in_the_parameters_hash() -> None:
    """A run analysed on one device is not redone on another (the devices agree within the tolerances above)."""
    from backend.jobs.analyse import params_of

    assert params_of(AnalysisConfig(device="auto"), {}) == params_of(AnalysisConfig(), {})
    assert params_of(AnalysisConfig(max_samples=10), {}) != params_of(AnalysisConfig(), {})
