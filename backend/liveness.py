"""Is the process that marked a run 'running' still alive? (A killed run cannot update its status.)"""

from __future__ import annotations

import os
import socket
from typing import Any


def process_alive(info: dict[str, Any]) -> bool:
    """Whether the process recorded in a run.json still runs. Only knowable on the same host:
    for a run written on another machine the file is trusted."""
    if info.get("host") != socket.gethostname() or not info.get("pid"):
        return True
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True
