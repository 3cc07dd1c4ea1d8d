"""Deployment switches: what a dashboard visitor may do, decided by the operator, never by the page.

``clusterscope app`` binds 127.0.0.1 unless the operator names another address, and records the
address it serves on in ``CLUSTERSCOPE_SERVED_ADDRESS`` (read here, inherited by the jobs it starts).
On a loopback address only people on this machine reach the page, so the features that run code or
read the server's folders are on; on any other address (a lab, a container) they are off unless the
operator sets their switch (docs/security.md):

- ``CLUSTERSCOPE_ALLOW_TORCHSCRIPT``: loading TorchScript, which runs the code the file carries;
- ``CLUSTERSCOPE_ALLOW_SERVER_PATHS``: naming a folder of the server as data (``data.root``,
  ``data.superclass_map``).

A switch set to 1/true/yes/on turns its feature on, 0/false/no/off turns it off, wherever the server
listens. Outside a served dashboard (the command line, scripts) the variable is unset and the
features are on, as the user running the command is the operator.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

SERVED_ADDRESS = "CLUSTERSCOPE_SERVED_ADDRESS"
TORCHSCRIPT = "CLUSTERSCOPE_ALLOW_TORCHSCRIPT"
SERVER_PATHS = "CLUSTERSCOPE_ALLOW_SERVER_PATHS"
LOCAL_ADDRESS = "127.0.0.1"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def is_loopback(address: str) -> bool:
    """Whether a bind address is reachable only from this machine ('' and 0.0.0.0 mean every interface)."""
    address = address.strip().strip("[]")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name or '': it may resolve to, or mean, any interface
        return False


def served_address(env: Mapping[str, str] | None = None) -> str | None:
    """The address the dashboard of this process tree listens on; None outside ``clusterscope app``.
    ``env``: the environment to read (default: this process's)."""
    return (os.environ if env is None else env).get(SERVED_ADDRESS)


def exposed(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process serves (or was started by) a dashboard other machines can reach."""
    address = served_address(env)
    return address is not None and not is_loopback(address)


def allowed(variable: str, env: Mapping[str, str] | None = None) -> bool:
    """A deployment switch: its explicit value if the operator set one, else on unless :func:`exposed`."""
    value = (os.environ if env is None else env).get(variable, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    return not exposed(env)


def why_off(variable: str) -> str:
    """Why a switch is off and how the operator turns it on (for the page and error messages)."""
    value = os.environ.get(variable, "").strip().lower()
    if value in _OFF:
        return f"the operator switched it off ({variable}={os.environ.get(variable)})"
    return (f"this server is reachable from other machines (it listens on {served_address() or 'every interface'!r}); "
            f"the operator can turn it on by restarting it with {variable}=1 (docs/security.md says what that opens)")


def torchscript_allowed() -> bool:
    """Whether TorchScript files may be loaded at all here (``CLUSTERSCOPE_ALLOW_TORCHSCRIPT``; off by default
    on a dashboard reachable from other machines, where one visitor's upload must not run code on the server)."""
    return allowed("CLUSTERSCOPE_ALLOW_TORCHSCRIPT")


def server_paths_allowed() -> bool:
    """Whether dashboard users may name folders on the server as data (data.root; ``CLUSTERSCOPE_ALLOW_SERVER_PATHS``,
    off by default on a dashboard reachable from other machines: visitors probe with built-in data or a zip)."""
    return allowed("CLUSTERSCOPE_ALLOW_SERVER_PATHS")


def require_torchscript_allowed(trust_torchscript: bool) -> None:
    from backend.errors import ClusterScopeError

    if trust_torchscript and not torchscript_allowed():
        raise ClusterScopeError("TorchScript loading is switched off on this server: "
                                f"{why_off('CLUSTERSCOPE_ALLOW_TORCHSCRIPT')}. Import the weights as a "
                                "state_dict (.pt) or safetensors file instead.")


def require_server_paths_allowed(keys: Iterable[str]) -> None:
    """Refuse config keys (dotted: ``data.root``) that name a folder of the server where the switch is off."""
    from backend.errors import ClusterScopeError

    for key in keys:
        if key in ("data.root", "data.superclass_map") and not server_paths_allowed():
            raise ClusterScopeError(f"{key} names a folder of the server, which is switched off here: "
                                    f"{why_off('CLUSTERSCOPE_ALLOW_SERVER_PATHS')}. Use a built-in data "
                                    "set or upload a zip.")


_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~])/(?:[^\s/'\"`()\[\]{},;]+/)*[^\s/'\"`()\[\]{},;]*")


def visitor_text(text: str, store_root: Path | str | None = None) -> str:
    """``text`` as a page may show it to a visitor: no path of the server (issue 13, docs/security.md).

    An absolute path under ``store_root`` becomes its part inside the store (``run/analysis/...``), any other
    absolute path its last component; the rest of the message (which input, what was expected, what to do)
    is kept. The server's log keeps the full text.
    """
    root = str(Path(store_root).resolve()) if store_root is not None else None

    def redact(match: re.Match[str]) -> str:
        path = match.group(0).rstrip(".:")
        tail = match.group(0)[len(path):]
        if root and (path == root or path.startswith(root + "/")):
            inner = path[len(root):].lstrip("/")
            return (f"<store>/{inner}" if inner else "<store>") + tail
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return (f".../{name}" if name else "<server path>") + tail

    return _ABSOLUTE_PATH.sub(redact, text)
