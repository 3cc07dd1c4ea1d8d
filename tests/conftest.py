"""Shared fixtures: tiny seeded runs trained for real into temporary stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import api
from backend.config import RunConfig, load_config

# A tiny MLP on digits, trained on superclasses; all probe samples, every epoch recorded.
TINY = (
    'data.name="digits"', 'data.target="superclass"', 'model.name="mlp"', "model.depth=2", "model.width=16",
    "train.epochs=2", "train.batch_size=64", "train.lr=0.05", 'train.device="cpu"', "snapshots.epochs=[0, 1, 2]",
)


def tiny_config(*overrides: str) -> RunConfig:
    return load_config(None, TINY + overrides)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[api.RunStore, str]:
    """One real 2-epoch run, shared read-only by the tests that only read it."""
    store = api.open_store(tmp_path_factory.mktemp("store"))
    run_id = api.train(tiny_config('run_id="tiny"'), store, progress=False)
    return store, run_id


@pytest.fixture
def store(tmp_path: Path) -> api.RunStore:
    return api.open_store(tmp_path / "store")


def figure_of(chart) -> dict:
    """The Plotly spec of an AppTest plotly_chart element, with typed arrays decoded to lists."""
    import base64
    import json

    import numpy as np

    def decode(node):
        if isinstance(node, dict):
            if set(node) >= {"dtype", "bdata"}:
                arr = np.frombuffer(base64.b64decode(node["bdata"]), dtype=node["dtype"])
                if "shape" not in node:
                    return arr.tolist()
                shape = node["shape"]  # Plotly writes it as "2, 3"
                dims = [int(d) for d in shape.split(",")] if isinstance(shape, str) else list(shape)
                return arr.reshape(dims).tolist()
            return {k: decode(v) for k, v in node.items()}
        if isinstance(node, list):
            return [decode(v) for v in node]
        return node

    return decode(json.loads(chart.proto.spec))


@pytest.fixture(scope="session")
def analysed_store(trained_store: tuple[api.RunStore, str]) -> tuple[api.RunStore, str]:
    """The tiny run, analysed once (UMAP, HDBSCAN, all measures) for the tests that read analysis tables."""
    store, run_id = trained_store
    report = api.analyze(store, run_id)
    assert not report.errors, report.errors
    return store, run_id


def highlighted_ids(at) -> set[int]:
    """The sample ids the Embeddings page highlights: the ids it hands the browser's highlight script
    (app/views/embeddings_highlight.py), which sets the plots' opacities there (tests/test_e2e_selection.py
    checks the browser side). Empty when nothing is highlighted."""
    import json
    import re

    calls = [m for h in at.get("html") for m in re.findall(r"window\.__csHighlight\((\[[^\]]*\])\)", h.proto.body)]
    assert len(calls) <= 1, calls
    return set(json.loads(calls[0])) if calls else set()
