"""Commit files the way huggingface_hub >= 1.20 sends them: inline, base64, in one NDJSON request."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx


def commit_files(url: str, token: str, repo: str, files: dict[str, bytes], *, branch: str = "main",
                 extra: list[dict[str, Any]] | None = None) -> httpx.Response:
    """POST the commit; `extra` operations (e.g. a `deletedFile`) follow the files. Returns the answer."""
    lines = [json.dumps({"key": "header", "value": {"summary": "add files"}})]
    for path, data in files.items():
        content = base64.b64encode(data).decode()
        lines.append(json.dumps({"key": "file", "value": {"path": path, "encoding": "base64", "content": content}}))
    lines += [json.dumps(op) for op in extra or []]
    return httpx.post(f"{url}/api/models/{repo}/commit/{branch}", content="\n".join(lines).encode(), timeout=300,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
