"""What a running server tells other processes on the same data folder (the CLI's `mirror
status`, `config check`): its pid, version, listen address, mode and config file, in
`DATA/server.json`, written atomically at start and removed at exit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "server.json"


def publish(data: Path, state: dict[str, Any]) -> Path:
    path = data / FILE_NAME
    tmp = path.with_name(f"{FILE_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **state}, indent=2))
    os.replace(tmp, path)
    return path


def withdraw(data: Path) -> None:
    """Remove the state file if this process wrote it (a newer server's stays)."""
    current = running(data)
    if current is not None and current.get("pid") == os.getpid():
        (data / FILE_NAME).unlink(missing_ok=True)


def running(data: Path) -> dict[str, Any] | None:
    """The state of the server running on `data`, or None (no file, or its process is gone)."""
    try:
        state = json.loads((data / FILE_NAME).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, dict) else None
