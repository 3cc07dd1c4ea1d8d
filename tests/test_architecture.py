"""Import direction (STYLE.md habit 8) and lint, checked as tests."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_backend_never_imports_streamlit() -> None:
    offenders = [str(p) for p in (ROOT / "backend").rglob("*.py") if any(n.split(".")[0] == "streamlit" for n in imports(p))]
    assert offenders == []


def test_app_uses_only_the_backend_facade() -> None:
    bad = {}
    for p in (ROOT / "app").rglob("*.py"):
        for name in imports(p):
            top = name.split(".")[0]
            if top in {"torch", "torchvision", "umap", "hdbscan", "sklearn"}:
                bad[str(p)] = name
            if top == "backend" and not (name == "backend" or name.startswith("backend.api")):
                bad[str(p)] = name
    assert bad == {}


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "backend", "app", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_app_scripts_do_not_rely_on_streamlit_magic() -> None:
    """`clusterscope app` turns Streamlit's "magic" off (runner.magicEnabled): no page may show a value by
    leaving a bare, non-call expression on a line (docstrings aside)."""
    bare = []
    for p in [ROOT / "app" / "main.py", *(ROOT / "app" / "views").glob("*.py")]:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            value = getattr(node, "value", None)
            docstring = isinstance(value, ast.Constant) and isinstance(value.value, str)
            if isinstance(node, ast.Expr) and not isinstance(value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)) and not docstring:
                bare.append(f"{p.name}:{node.lineno}")
    assert bare == []
