"""Two servers on one data folder (a rolling restart): start-up cleanup leaves live uploads alone
(issue 6, item 11)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from conftest import Server, start_server
from processes import until

PART = 256 * 1024


def upload_href(server: Server, token: str, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    answer = httpx.post(
        f"{server.url}/alice/r.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["objects"][0]["actions"]["upload"]["href"]


def test_second_server_keeps_the_first_ones_uploads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    second: Server | None = None
    try:
        first.add_user("alice")
        token = first.token("alice")
        assert httpx.post(f"{first.url}/api/repos/create", json={"name": "r"},
                          headers={"Authorization": f"Bearer {token}"}).status_code == 200
        data = os.urandom(4 * PART)
        href = upload_href(first, token, data)
        dead = data_dir / "tmp" / "blob-left-by-a-crash"  # no live writer: must go
        dead.write_bytes(b"partial")

        release = threading.Event()
        result: dict[str, httpx.Response] = {}

        def body() -> Iterator[bytes]:
            yield data[:PART]
            release.wait(60)  # the upload pauses here while the second server starts
            for start in range(PART, len(data), PART):
                yield data[start:start + PART]

        def put() -> None:
            result["answer"] = httpx.put(href, content=body(), timeout=120,
                                         headers={"Content-Length": str(len(data))})

        uploader = threading.Thread(target=put)
        uploader.start()
        try:
            live = lambda: [p for p in (data_dir / "tmp").glob("blob-*") if p != dead]  # noqa: E731
            until(lambda: bool(live()), "the first server to write the upload", timeout=20)
            second = start_server(data_dir)  # its start-up cleanup runs now
            assert live(), "the second server deleted a live upload"
            assert not dead.exists(), "a dead writer's leftover was kept"
        finally:
            release.set()
            uploader.join(120)
        assert result["answer"].status_code == 200, result["answer"].text
        blob = data_dir / "blobs" / hashlib.sha256(data).hexdigest()[:2]
        assert any(blob.rglob(hashlib.sha256(data).hexdigest()))
    finally:
        first.stop()
        if second is not None:
            second.stop()
