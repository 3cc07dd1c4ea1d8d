"""How ``clusterscope app`` starts Streamlit: our defaults under the user's STREAMLIT_* variables, the bind
address (127.0.0.1 unless named) recorded for backend.deployment, and the operator's switches (docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import click

# Streamlit options `clusterscope app` sets unless the user does (command-line options and STREAMLIT_*
# variables override them); benchmarks/dashboard.py runs the pages with the same.
APP_STREAMLIT_DEFAULTS: dict[str, bool | str] = {
    "browser.gatherUsageStats": False,  # a lab tool phones nobody home (and skips per-command telemetry)
    "client.toolbarMode": "viewer",  # no "Deploy" button in a meeting
    # The pages never use "magic" (bare expressions written to the page; tests/test_architecture.py checks),
    # so their scripts need not be rewritten before compiling.
    "runner.magicEnabled": False,
    # A visitor never sees a traceback or a server path: app/main.py shows one line and a reference into the
    # server log instead (docs/security.md).
    "client.showErrorDetails": "none",
    # No watching of source files: a served dashboard's code does not change under it. Watching costs every
    # run: after each script or fragment run Streamlit walks every imported module (torch, scikit-learn, umap...)
    # for files to watch, on the thread that sends the page, and its polling watcher keeps about half a core
    # busy (py-spy on a served page; benchmarks/README.md). A developer editing the pages sets
    # STREAMLIT_SERVER_FILE_WATCHER_TYPE=auto.
    "server.fileWatcherType": "none",
}


def streamlit_env_name(option: str) -> str:
    """The environment variable Streamlit reads for a config option: browser.gatherUsageStats ->
    STREAMLIT_BROWSER_GATHER_USAGE_STATS."""
    return "STREAMLIT_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", option.replace(".", "_")).upper()


def bind_address(streamlit_args: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The address Streamlit will listen on: ``--server.address`` among the arguments, else
    STREAMLIT_SERVER_ADDRESS, else ``server.address`` in ./.streamlit/config.toml or ~/.streamlit/config.toml
    (Streamlit's order), else None (our default applies)."""
    import tomllib

    for i, arg in enumerate(streamlit_args):
        if arg.startswith("--server.address="):
            return arg.partition("=")[2]
        if arg == "--server.address" and i + 1 < len(streamlit_args):
            return streamlit_args[i + 1]
    if "STREAMLIT_SERVER_ADDRESS" in env:
        return env["STREAMLIT_SERVER_ADDRESS"]
    for config in (Path.cwd() / ".streamlit" / "config.toml", Path.home() / ".streamlit" / "config.toml"):
        try:
            address = tomllib.loads(config.read_text(encoding="utf-8")).get("server", {}).get("address")
        except (OSError, ValueError, AttributeError):
            continue
        if address is not None:
            return str(address)
    return None


def app_streamlit_variables() -> dict[str, str]:
    """``APP_STREAMLIT_DEFAULTS`` as the STREAMLIT_* environment variables Streamlit reads."""
    return {streamlit_env_name(option): str(value).lower() if isinstance(value, bool) else str(value)
            for option, value in APP_STREAMLIT_DEFAULTS.items()}


def app_environment(streamlit_args: tuple[str, ...], environ: Mapping[str, str], *, allow_torchscript: bool = False,
                    allow_server_paths: bool = False) -> dict[str, str]:
    """The dashboard's environment: our Streamlit defaults under the user's STREAMLIT_* variables, the bind
    address (127.0.0.1 unless the user names one) recorded for backend.deployment, and the operator's switches.
    Warns on stderr when the page will be reachable from other machines."""
    from backend import deployment

    env = dict(environ)
    for name, value in app_streamlit_variables().items():  # the user's own STREAMLIT_* variables win
        env.setdefault(name, value)
    address = bind_address(streamlit_args, env)
    if address is None:  # Streamlit's own default is every interface
        address = env["STREAMLIT_SERVER_ADDRESS"] = deployment.LOCAL_ADDRESS
    env[deployment.SERVED_ADDRESS] = address
    for flag, variable in ((allow_torchscript, deployment.TORCHSCRIPT), (allow_server_paths, deployment.SERVER_PATHS)):
        if flag:
            env[variable] = "1"
    if not deployment.is_loopback(address):
        off = [v for v in (deployment.TORCHSCRIPT, deployment.SERVER_PATHS) if not deployment.allowed(v, env)]
        click.echo(f"serving on {address or 'every interface'}: anyone who reaches this port can use the dashboard"
                   + (f"; off for visitors: {', '.join(off)}" if off else "") + " (docs/security.md).", err=True)
    return env
