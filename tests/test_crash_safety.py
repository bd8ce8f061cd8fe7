"""A server killed in the middle of an upload or a commit leaves no partial file and no commit."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from huggingface_hub import HfApi

from conftest import Server, start_server


def send_partial(url: str, method: str, headers: dict[str, str], body: bytes, total: int) -> socket.socket:
    """Send the request line, headers and only `body` (of `total` announced bytes); keep it open."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {total}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return sock


def kill_when_spooled(server: Server, folder: Path, pattern: str, minimum: int) -> None:
    """SIGKILL the server once a temporary file matching `pattern` holds `minimum` bytes."""
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size >= minimum for p in folder.glob(pattern) if p.exists()):
        assert time.monotonic() < deadline, "the server never spooled the partial request"
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)


def test_killed_during_lfs_upload_and_commit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    srv.add_user("alice")
    token = srv.token("alice")
    api = HfApi(endpoint=srv.url, token=token)
    api.create_repo("alice/crash")
    head_before = api.model_info("alice/crash").sha
    payload = os.urandom(4 * 1024 * 1024)
    oid = hashlib.sha256(payload).hexdigest()
    batch = httpx.post(
        f"{srv.url}/alice/crash.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(payload)}]},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"},
    ).json()
    upload_url = batch["objects"][0]["actions"]["upload"]["href"]
    upload = send_partial(upload_url, "PUT", {}, payload[: len(payload) // 2], len(payload))
    line = json.dumps({"key": "file", "value": {"path": "big.txt", "encoding": "base64", "content": "QUFB" * 2_000_000}})
    body = (json.dumps({"key": "header", "value": {"summary": "half"}}) + "\n" + line + "\n").encode()
    commit = send_partial(f"{srv.url}/api/models/alice/crash/commit/main", "POST",
                          {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
                          body[: len(body) // 2], len(body))
    kill_when_spooled(srv, data / "tmp", "*", 1024 * 1024)
    upload.close()
    commit.close()

    again = start_server(data)
    try:
        api = HfApi(endpoint=again.url, token=token)
        assert api.model_info("alice/crash").sha == head_before
        assert api.list_repo_files("alice/crash") == [".gitattributes"]
        assert not (data / "blobs" / oid[:2] / oid[2:4] / oid).exists()
        assert not list((data / "tmp").glob("blob-*"))
        retry = httpx.post(
            f"{again.url}/alice/crash.git/info/lfs/objects/batch",
            json={"operation": "upload", "objects": [{"oid": oid, "size": len(payload)}]},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert "upload" in retry["objects"][0]["actions"]  # the half upload does not count
    finally:
        again.stop()
