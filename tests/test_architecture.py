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


def test_no_pages_folder_beside_the_entry_point() -> None:
    """The pages live in app/views/, never app/pages/: Streamlit treats a folder named ``pages`` beside the main
    script as the old automatic multipage app (PagesManager.uses_pages_directory), and a shared link such as
    ``/embeddings?run=...`` then runs that page's file alone, without main.py's navigation and presentation
    switch, until main.py has run once in the process (tests/test_e2e_browser.py saw it)."""
    assert not (ROOT / "app" / "pages").exists()
    assert sorted(p.stem for p in (ROOT / "app" / "views").glob("*.py") if "\ndef page() -> None:" in p.read_text(
        encoding="utf-8")) == ["compare", "embeddings", "geometry", "layers", "mechanisms", "neurons", "runs", "upload"]


def test_chart_builders_are_pure() -> None:
    """app/charts/ builds figures from DataFrames (STYLE.md habit 10): no Streamlit, so it is tested without one,
    and nothing of the app's that imports Streamlit (its pages, loaders, widgets, state)."""
    bad = {}
    for p in (ROOT / "app" / "charts").rglob("*.py"):
        for name in imports(p):
            if name.split(".")[0] == "streamlit" or (name.startswith("app.") and not name.startswith("app.charts")):
                bad[p.name] = name
    assert bad == {}
    assert len(list((ROOT / "app" / "charts").glob("*.py"))) > 1  # the package is where this test looks


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


# ---- the facade and the import contracts (issue 15) ------------------------------------------------------


def api_uses(paths: list[Path]) -> set[str]:
    """Names the files take from the facade: ``api.X`` attributes and ``from backend.api import X``."""
    used: set[str] = set()
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "api":
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module == "backend.api":
                used |= {a.name for a in node.names}
    return used


def test_the_facade_exports_exactly_what_its_users_take() -> None:
    """Every name the app and the CLI take from backend.api is in its __all__, and every name of __all__ is
    used by the app, the CLI, the tests or the benchmarks (the error and config classes are for users' scripts)."""
    from backend import api

    front = api_uses([*(ROOT / "app").rglob("*.py"), ROOT / "backend" / "cli.py"])
    assert front - set(api.__all__) == set()
    assert [n for n in api.__all__ if not hasattr(api, n)] == []
    everyone = front | api_uses([*(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
    for_scripts = {"ConfigError", "CorruptFileError", "DataError", "RunConfig", "AnalysisConfig"}
    assert set(api.__all__) - everyone - for_scripts == set()
    assert len(api.__all__) == len(set(api.__all__))


def backend_modules() -> dict[str, Path]:
    out = {}
    for p in (ROOT / "backend").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def backend_graph() -> dict[str, set[str]]:
    """module -> the backend modules it imports, at the top or inside a function (a lazy import still ties them)."""
    mods = backend_modules()
    return {m: {n for n in imports(p) if n in mods and n not in (m, "backend")} for m, p in mods.items()}


def test_nothing_in_the_backend_imports_the_facade() -> None:
    """backend.api is the app's door; inside the backend it would close a circle (api -> jobs -> api).
    The command line (backend/cli.py) is, like app/, a front end over the facade."""
    graph = backend_graph()
    assert sorted(m for m, deps in graph.items() if "backend.api" in deps and m != "backend.cli") == []


def test_analysis_is_pure() -> None:
    """backend.analysis reads no store and starts no job: arrays in, arrays or DataFrames out. Only the
    sharpness baselines use torch (they perturb the model's weights; docs/store.md names that file)."""
    bad = {}
    for p in (ROOT / "backend" / "analysis").rglob("*.py"):
        for name in imports(p):
            top = name.split(".")[0]
            if name.startswith(("backend.store", "backend.jobs", "backend.api", "backend.training", "backend.data")) or (
                    top in ("torch", "torchvision", "streamlit") and p.name != "baselines.py"):
                bad[p.name] = name
    assert bad == {}


def test_the_store_imports_only_its_leaves() -> None:
    """The backend.store package depends on config (run ids), schema and errors, and on liveness (the process
    records of its locks and claims, standard library only); nothing else."""
    graph = backend_graph()
    store = [m for m in graph if m == "backend.store" or m.startswith("backend.store.")]
    assert len(store) > 5
    leaves = {"backend.config", "backend.schema", "backend.errors", "backend.liveness", *store}
    assert {m: graph[m] - leaves for m in store if graph[m] - leaves} == {}
    assert graph["backend.liveness"] == set()


def store_path_methods() -> set[str]:
    """The store's methods that return a path (RunStore's and AnalysisFiles's), read from their annotations."""
    from backend.store import AnalysisFiles, RunStore

    return {name for cls in (RunStore, AnalysisFiles) for name in dir(cls) if not name.startswith("__")
            and callable(getattr(cls, name)) and getattr(getattr(cls, name), "__annotations__", {}).get("return") == "Path"}


def layout_names() -> set[str]:
    """The store's file and folder names that cannot be mistaken for anything else: hidden names and file names."""
    from backend.store import layout

    names = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)}
    return {n for n in names if n.startswith(".") or "." in n[1:]}


def builds_store_paths(path: Path, methods: set[str], names: set[str]) -> list[str]:
    """Where a module spells a store name, or joins onto the store's root or onto a path the store gave."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append(f"{node.lineno}: the store's name {node.value!r}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left = node.left.func if isinstance(node.left, ast.Call) else node.left
            if isinstance(left, ast.Attribute) and (left.attr == "root" or left.attr in methods):
                found.append(f"{node.lineno}: joins onto .{left.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            mods += [f"{m}.{a.name}" for m in mods for a in node.names] if isinstance(node, ast.ImportFrom) else []
            found += [f"{node.lineno}: imports {m}" for m in mods if m == "backend.store.layout"]
    return found


def test_only_the_store_builds_paths_under_its_root() -> None:
    """No backend module outside backend/store/ (and the data-set readers of backend/data/, whose data.root is
    the user's folder) spells a store file or folder name, joins a path onto a store's root or onto a path the
    store returned, or uses the store's layout module: the layout lives in backend/store/layout.py alone."""
    methods, names = store_path_methods(), layout_names()
    assert {"run_dir", "activation_path", "path", "root"} <= methods and {"run.json", ".jobs", ".demo.log"} <= names
    bad = {}
    for p in (ROOT / "backend").rglob("*.py"):
        rel = p.relative_to(ROOT).as_posix()
        if not rel.startswith(("backend/store/", "backend/data/")) and (found := builds_store_paths(p, methods, names)):
            bad[rel] = found
    assert bad == {}


def test_no_import_cycles_in_the_backend() -> None:
    """No module reaches itself through the backend's imports (lazy ones included): Tarjan's components."""
    graph = backend_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


# Where app/ may import a file-system module, each for something that is not the store (by file name, so a
# page moved to another folder keeps its reason):
APP_FILE_SYSTEM_USES = {
    ("main.py", "pathlib"): "puts the project's own folder on sys.path (Path(__file__))",
    ("layers.py", "pathlib"): "the Embeddings page's script beside it, for st.page_link (Path(__file__))",
    ("geometry.py", "pathlib"): "the Embeddings page's script beside it, for st.page_link (Path(__file__))",
    ("runs.py", "pathlib"): "the page scripts beside it, for st.page_link (Path(__file__))",
    ("upload.py", "pathlib"): "the Embeddings page's script beside it, for st.page_link (Path(__file__))",
    ("widgets.py", "shutil"): "finds Chrome/Chromium for kaleido's PNG and SVG export (shutil.which)",
    ("widgets.py", "tempfile"): "renders an animation's frames in a temporary folder for the GIF download",
    ("widgets.py", "pathlib"): "the frame files in that temporary folder",
    ("widgets.py", "read_bytes"): "reads those frames back (kaleido writes files)",
    ("widgets.py", "is_file"): "finds the frames kaleido left unwritten in that folder, to draw them again",
    ("embeddings_scrub.py", "os"): "reads CLUSTERSCOPE_SCRUB_POINTS from the environment (os.environ)",
    ("embeddings_density.py", "os"): "reads CLUSTERSCOPE_DRAW_POINTS from the environment (os.environ)",
}
FILE_SYSTEM_MODULES = {"os", "pathlib", "glob", "shutil", "tempfile", "fcntl"}
FILE_SYSTEM_CALLS = {"open", "stat", "lstat", "glob", "rglob", "iterdir", "exists", "is_dir", "is_file", "listdir",
                     "scandir", "walk", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "mkdir",
                     "rmdir", "rmtree", "getmtime", "getsize"}


def file_system_uses(path: Path, methods: set[str]) -> list[tuple[str, int]]:
    """File-system modules a file imports (outside ``if TYPE_CHECKING:``), and its calls that touch files (the
    builtin open(), Path and os methods by name) or ask the store for a path: (name, line) each."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                   and node.test.id == "TYPE_CHECKING" for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], node.lineno) for a in node.names if a.name.split(".")[0] in FILE_SYSTEM_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FILE_SYSTEM_MODULES:
            found.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append(("open", node.lineno))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and (node.func.attr in FILE_SYSTEM_CALLS - {"open"} or node.func.attr in methods)):
            found.append((node.func.attr, node.lineno))
    return found


def test_the_app_makes_no_file_system_calls() -> None:
    """app/ holds no path of the store and touches no file: it asks the facade for data and for version tokens
    (app/loaders.py keys its caches on them). The few file-system modules it imports, for things that are not
    the store, are listed in APP_FILE_SYSTEM_USES with their reason; no file calls open(), stat(), glob() and
    the like, or a store method that returns a path."""
    methods = {m for m in store_path_methods() if m.endswith(("_path", "_dir")) or m in ("path", "root")}
    bad = {}
    for p in (ROOT / "app").rglob("*.py"):
        uses = [u for u in file_system_uses(p, methods) if (p.name, u[0]) not in APP_FILE_SYSTEM_USES]
        if uses:
            bad[p.relative_to(ROOT).as_posix()] = uses
    assert bad == {}


# Modules allowed over the budget for now (none: config.py's sections moved to config_types.py).
OVER_BUDGET_FOR_NOW: set[str] = set()


def test_modules_stay_under_400_lines() -> None:
    """STYLE.md habit 15: a module past ~400 lines is split along a responsibility. The list of modules still
    over the budget may only shrink: a listed module that fits is to be taken off it."""
    long = {str(p.relative_to(ROOT)) for d in ("backend", "app") for p in (ROOT / d).rglob("*.py")
            if len(p.read_text(encoding="utf-8").splitlines()) > 400}
    assert long - OVER_BUDGET_FOR_NOW == set()
    assert OVER_BUDGET_FOR_NOW - long == set(), "these fit now: take them off OVER_BUDGET_FOR_NOW"


def test_mypy_passes_on_the_backend() -> None:
    """The backend is typed (STYLE.md habit 13); mypy's settings are in pyproject.toml ([tool.mypy])."""
    mypy = shutil.which("mypy") or str(Path(sys.executable).parent / "mypy")
    result = subprocess.run([mypy, "--no-error-summary"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
