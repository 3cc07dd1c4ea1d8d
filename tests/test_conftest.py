"""The suite's own machinery (tests/conftest.py): which modules form the Ray unit of a parallel run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import RAY_MODULES, in_ray_module

ROOT = Path(__file__).resolve().parent.parent


def test_ray_modules_are_found_by_their_file_whatever_the_rootdir() -> None:
    assert in_ray_module(ROOT, "tests/test_sweep.py::test_x") and in_ray_module(ROOT, "tests/test_ray_cluster.py")
    assert in_ray_module(ROOT.parent, f"{ROOT.name}/tests/test_analyse_ray.py::test_x[a::b]")
    assert not in_ray_module(ROOT, "tests/test_training.py::test_x")
    assert not in_ray_module(ROOT.parent, "tests/test_sweep.py::test_x")  # another folder's test_sweep.py


def test_the_ray_modules_run_together_from_any_rootdir() -> None:
    """Node ids are relative to the rootdir: with another one the Ray tests are still known as such (they were
    refused as 'starts Ray: add its module to RAY_MODULES' when the module was matched by its node id). They run
    one module after another in RAY_MODULES' order, where the first of them would have run: the two modules that
    share one local Ray (ray_local) follow each other."""
    files = [str(ROOT / "tests" / name) for name in ("test_analyse_ray.py", "test_ports.py", "test_ray_cluster.py",
                                                      "test_sweep.py")]
    out = subprocess.run([sys.executable, "-m", "pytest", "--rootdir", str(ROOT.parent), "--collect-only", "-q",
                          "-p", "no:cacheprovider", *files], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert f"{ROOT.name}/tests/test_sweep.py::test_sweep_trains_analyses_and_records_axes" in ids, out.stdout[-2000:]
    modules = [line.split("::")[0].rsplit("/", 1)[1] for line in ids]
    assert sorted(set(modules), key=modules.index) == [*RAY_MODULES, "test_ports.py"]
    assert modules == sorted(modules, key=[*RAY_MODULES, "test_ports.py"].index)  # each module's tests together


def test_units_are_handed_out_the_ray_unit_first_then_the_slowest_modules() -> None:
    from tests.conftest import SLOW_MODULES, unit_seconds

    assert all((ROOT / "tests" / name).is_file() for name in SLOW_MODULES), "SLOW_MODULES names a missing module"
    assert not set(SLOW_MODULES) & set(RAY_MODULES)  # those are the Ray unit
    scopes = ["tests/test_config.py", "tests/test_e2e_scrub.py", "ray", "tests/test_demo.py", "tests/test_store.py"]
    assert sorted(scopes, key=lambda s: -unit_seconds(s)) == ["ray", "tests/test_demo.py", "tests/test_e2e_scrub.py",
                                                             "tests/test_config.py", "tests/test_store.py"]
