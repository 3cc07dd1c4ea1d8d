"""Shared fixtures: tiny seeded runs trained for real into temporary stores.

The whole session runs with a temporary HOME (and XDG folders in it), so nothing a test starts writes into
the user's: Ray's ``~/.ray/auth_token``, Streamlit's ``~/.streamlit/machine_id_v4``, Chromium's profile
folders. It is made in :func:`pytest_configure`, before any test module is imported, and removed at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend import api
from backend.config import RunConfig, load_config

# A tiny MLP on digits, trained on superclasses; all probe samples, every epoch recorded.
TINY = (
    'data.name="digits"', 'data.target="superclass"', 'model.name="mlp"', "model.depth=2", "model.width=16",
    "train.epochs=2", "train.batch_size=64", "train.lr=0.05", 'train.device="cpu"', "snapshots.epochs=[0, 1, 2]",
)


HOME_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")
_home: dict[str, str | None] = {}  # the environment's own values, put back at the end


def pytest_configure(config: pytest.Config) -> None:
    """The session's temporary HOME (see the module's docstring); each process of a parallel run makes its own."""
    home = tempfile.mkdtemp(prefix="clusterscope-home-")
    _home.update({var: os.environ.get(var) for var in HOME_VARS} | {"": home})
    os.environ["HOME"] = home
    for var, sub in zip(HOME_VARS[1:], (".config", ".cache", ".local/share", ".local/state"), strict=True):
        os.environ[var] = os.path.join(home, sub)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _home:
        return
    shutil.rmtree(_home.pop(""), ignore_errors=True)
    for var, value in _home.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    _home.clear()


# The modules (of this folder) whose tests start Ray (markers ray and cluster): `make test` runs them in one of its
# processes, in this order: the multi-node cluster's first, then the two that share one local Ray (ray_local).
TESTS = Path(__file__).resolve().parent
RAY_MODULES = ("test_ray_cluster.py", "test_analyse_ray.py", "test_sweep.py")


def in_ray_module(rootpath: Path, nodeid: str) -> bool:
    """Whether the test ``nodeid`` (relative to the session's ``rootpath``, as pytest writes node ids) is in a module
    of RAY_MODULES: by its file, wherever pytest runs from and whatever its rootdir."""
    path = (rootpath / nodeid.split("::")[0]).resolve()
    return path.parent == TESTS and path.name in RAY_MODULES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ray or cluster outside RAY_MODULES would run beside the others: refused by name. The tests of
    RAY_MODULES run one module after another, in its order, where the first of them would have run: the modules
    that use ray_local follow each other, so one local Ray serves them all."""
    for item in items:
        if (item.get_closest_marker("ray") or item.get_closest_marker("cluster")) and not in_ray_module(config.rootpath, item.nodeid):
            raise pytest.UsageError(f"{item.nodeid} starts Ray: add its module to RAY_MODULES in tests/conftest.py")
    ray = [item for item in items if in_ray_module(config.rootpath, item.nodeid)]
    if ray:
        first, rest = items.index(ray[0]), [item for item in items if not in_ray_module(config.rootpath, item.nodeid)]
        ray.sort(key=lambda item: RAY_MODULES.index(item.path.name))  # stable: each module's own order kept
        items[:] = rest[:first] + ray + rest[first:]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The local Ray of ray_local is stopped once this process leaves the modules of RAY_MODULES (or ends)."""
    if nextitem is not None and in_ray_module(nextitem.config.rootpath, nextitem.nodeid):
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


# The modules that take longest, in seconds of one `make test` on a loaded 2-core machine (pytest --durations,
# summed per module; the Ray unit aside): handed out first, the longest first, so the units handed out last are
# short and neither process waits long for the other at the end. Any other module counts as a few seconds.
SLOW_MODULES = {
    "test_security.py": 100, "test_demo.py": 100, "test_training.py": 85, "test_e2e_selection.py": 85,
    "test_dynamics.py": 72, "test_analysis_pipeline.py": 65, "test_geometry_store.py": 55, "test_e2e_browser.py": 55,
    "test_faults.py": 50, "test_trustworthy_measures.py": 50, "test_e2e_density.py": 45, "test_e2e_trajectories.py": 39,
    "test_e2e_presentation.py": 39, "test_app_meeting.py": 37, "test_app_compare_runs.py": 35, "test_app_upload.py": 32,
    "test_e2e_query.py": 28, "test_e2e_geometry.py": 27, "test_baselines.py": 25, "test_e2e_search.py": 19,
    "test_app_embeddings.py": 18, "test_export.py": 16, "test_e2e_scrub.py": 15, "test_changes.py": 14,
    "test_import.py": 12,
}


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """How `make test` shares the tests out among its processes (pytest-xdist, ``-n``): module by module, so a
    module's fixtures (a trained run, a server) are built once, except the modules of RAY_MODULES, which form one
    unit, handed out first: one process runs them one after another, so two Rays never compete for the cores,
    and they start at once, being the longest unit. The other modules follow, the slowest first (SLOW_MODULES;
    the others by number of tests, as pytest-xdist orders them). The controller sees node ids only, hence paths,
    not markers."""
    from xdist.scheduler import LoadScopeScheduling

    class OneRayAtATime(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if in_ray_module(self.config.rootpath, nodeid) else nodeid.split("::")[0]

        def _assign_work_unit(self, node: Any) -> None:
            order = sorted(self.workqueue, key=lambda scope: -unit_seconds(scope))  # stable: ties keep xdist's order
            for scope in order:
                self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return OneRayAtATime(config, log)


def unit_seconds(scope: str) -> float:
    """The expected seconds of a unit of work of OneRayAtATime: the Ray unit longest, then SLOW_MODULES, then 0."""
    return float("inf") if scope == "ray" else SLOW_MODULES.get(scope.rsplit("/", 1)[-1], 0)


def tiny_config(*overrides: str) -> RunConfig:
    return load_config(None, TINY + overrides)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[api.RunStore, str]:
    """One real 2-epoch run, shared read-only by the tests that only read it."""
    store = api.open_store(tmp_path_factory.mktemp("store"))
    run_id = api.train(tiny_config('run_id="tiny"'), store, progress=False)
    return store, run_id


@pytest.fixture(scope="module")
def ray_local() -> Any:
    """A local Ray with 2 CPUs for the tests marked ``ray`` (tests/test_analyse_ray.py, tests/test_sweep.py), started
    once for both modules (they run one after the other, pytest_collection_modifyitems) and stopped when the process
    leaves them (pytest_runtest_teardown): its start-up stays out of every other test, and its workers, kept between
    the modules, compile UMAP's numba code once. Its workers run at the normal priority, as those of the Ray that
    `clusterscope sweep` and `analyze --ray` start (backend.jobs.sweep.ray_session); at Ray's default (nice 15) the
    other tests of a parallel `make test` would starve them."""
    import ray

    if not ray.is_initialized():
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RAY_worker_niceness", "0")  # read by the raylet, which starts the workers
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


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


@pytest.fixture(scope="session")
def server(analysed_store: tuple[api.RunStore, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run app/main.py` on a free local port over the analysed tiny run; yields its base URL. One for the
    session: the browser tests only read the run, each in a browser session of its own. A module that needs
    another store or setting defines its own ``server`` (tests/test_e2e_density.py, tests/test_e2e_presentation.py)."""
    from tests.test_e2e_browser import serve

    yield from serve(analysed_store[0].root, tmp_path_factory)


def highlighted_ids(at) -> set[int]:
    """The sample ids the Embeddings page highlights: the ids it hands the browser's highlight script
    (app/views/embeddings_highlight.py), which sets the plots' opacities there (tests/test_e2e_selection.py
    checks the browser side). Empty when nothing is highlighted."""
    import json
    import re

    calls = [m for h in at.get("html") for m in re.findall(r"window\.__csHighlight\((\[[^\]]*\])\)", h.proto.body)]
    assert len(calls) <= 1, calls
    return set(json.loads(calls[0])) if calls else set()
