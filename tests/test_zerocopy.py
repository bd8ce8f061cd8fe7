"""The zero-copy path (http/zerocopy.py) under both of uvicorn's HTTP implementations, the chunked
fallback for a `send` it does not recognise, and /metrics counting which path served each answer."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import huggingface_hub.constants
import pytest
from huggingface_hub import HfApi

from conftest import Server, start_server
from hubgate.http.responses import ContentResponse
from hubgate.repos.base import Content
from test_metrics import BIG, samples


@pytest.fixture(scope="module", params=["guarded-h11", "httptools"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server, str]]:
    env = {"HUBGATE_UVICORN_HTTP": request.param}
    with start_server(tmp_path_factory.mktemp(request.param) / "data", env=env) as srv, pytest.MonkeyPatch.context() as patch:
        srv.add_user("alice")
        token = srv.token("alice", "write")
        api = HfApi(endpoint=srv.url, token=token)
        api.create_repo("alice/m")
        patch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # LFS: the file is a local blob
        api.upload_file(path_or_fileobj=BIG, path_in_repo="big.bin", repo_id="alice/m")
        yield request.param, srv, token


def raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_sendfile_under_each_uvicorn_implementation(served: tuple[str, Server, str]) -> None:
    """Whole, ranged and repeated downloads on one keep-alive connection: right bytes, the
    connection still usable after each (uvicorn's byte count was advanced), all by sendfile."""
    implementation, srv, token = served
    # which protocol answers: only hubgate's guarded h11 refuses a bare LF line ending
    refused = raw(srv.url, b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n")
    assert (b"bare LF" in refused) == (implementation == "guarded-h11"), refused[:200]
    before = samples(httpx.get(f"{srv.url}/metrics", headers=srv.admin_headers()).text)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=srv.url, headers=auth, timeout=60) as http:
        for _ in range(2):
            whole = http.get("/alice/m/resolve/main/big.bin")
            assert whole.status_code == 200 and whole.content == BIG
        part = http.get("/alice/m/resolve/main/big.bin", headers={"Range": "bytes=1000000-1999999"})
        assert part.status_code == 206 and part.content == BIG[1_000_000:2_000_000]
        assert http.head("/alice/m/resolve/main/big.bin").headers["content-length"] == str(len(BIG))
        assert http.get("/api/whoami-v2").json()["name"] == "alice"  # the same connection, still in step
        after = samples(http.get("/metrics", headers=srv.admin_headers()).text)

    def grew(name: str, path: str) -> float:
        key = (name, (("path", path),))
        return float(after.get(key, 0) - before.get(key, 0))

    assert grew("hubgate_file_responses_total", "sendfile") == 3 and grew("hubgate_file_responses_total", "chunked") == 0
    assert grew("hubgate_response_bytes_total", "sendfile") == 2 * len(BIG) + 1_000_000


class LooksLikeUvicorn:
    """A `send` whose owner claims uvicorn's httptools module but has not its cycle's shape."""

    def __init__(self, **attributes: Any) -> None:
        self.messages: list[dict[str, Any]] = []
        self.__dict__.update(attributes)

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


LooksLikeUvicorn.__module__ = "uvicorn.protocols.http.httptools_impl"


@pytest.mark.parametrize("attributes", [{}, {"expected_content_length": 10, "disconnected": False},
                                        {"expected_content_length": 10, "disconnected": False, "transport": None}],
                         ids=["no-cycle-attributes", "no-transport-attribute", "no-transport"])
def test_an_unrecognised_send_gets_the_body_in_chunks(tmp_path: Path, attributes: dict[str, Any]) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "blob").write_bytes(data)
    response = ContentResponse(Content(size=len(data), opener=(tmp_path / "blob").open), {}, (7, len(data) - 1))
    owner = LooksLikeUvicorn(**attributes)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never goes away
        return {"type": "http.disconnect"}

    asyncio.run(response({"type": "http", "method": "GET"}, receive, owner.send))
    assert response.served_by == "chunked"
    assert owner.messages[0]["status"] == 206
    body = b"".join(message.get("body", b"") for message in owner.messages[1:])
    assert body == data[7:] and owner.messages[-1]["more_body"] is False
