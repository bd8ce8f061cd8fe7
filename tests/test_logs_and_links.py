"""Signed URLs stay out of logs; links handed to clients believe forwarded headers only from trusted proxies
(issue 6, item 14)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clients.harness import synced_log
from conftest import Server, start_server

DATA = b"private weights " * 100


def setup_repo(server: Server) -> tuple[str, str]:
    """alice's private repo with one file stored as LFS; (token, oid)."""
    server.add_user("alice")
    token = server.token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{server.url}/api/repos/create", json={"name": "secret", "private": True},
                      headers=auth).status_code == 200
    lines = [{"key": "header", "value": {"summary": "add"}},
             {"key": "file", "value": {"path": "w.bin", "content": base64.b64encode(DATA).decode(), "encoding": "base64"}}]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    answer = httpx.post(f"{server.url}/api/models/alice/secret/commit/main", content=body,
                        headers={**auth, "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    return token, hashlib.sha256(DATA).hexdigest()


def batch_href(server: Server, token: str, oid: str, headers: dict[str, str] | None = None) -> str:
    answer = httpx.post(
        f"{server.url}/alice/secret.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": [{"oid": oid, "size": len(DATA)}]},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json", **(headers or {})},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["objects"][0]["actions"]["download"]["href"]


@pytest.fixture(scope="module")
def lfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    server = start_server(tmp_path_factory.mktemp("links"), env={"HUBGATE_LFS_THRESHOLD": "100"})
    try:
        yield server, *setup_repo(server)
    finally:
        server.stop()


def test_presigned_urls_are_not_logged_with_their_signature(lfs_server: tuple[Server, str, str]) -> None:
    server, token, oid = lfs_server
    href = batch_href(server, token, oid)
    signature = re.search(r"[?&]sig=([0-9a-f]+)", href).group(1)  # type: ignore[union-attr]
    assert httpx.get(href).content == DATA  # the link works without authentication...
    assert httpx.get(href.replace(signature, "0" * len(signature))).status_code == 403
    httpx.get(href.replace("sig=", "x=1&sig="))  # ...and however it is spelled,
    log = "".join(synced_log(server))
    assert f"/_hubgate/lfs/download/{oid}" in log  # the request was logged
    assert signature not in log  # ...but never with its signature
    assert "sig=REDACTED" in log


def test_forwarded_headers_are_not_believed_from_untrusted_peers(lfs_server: tuple[Server, str, str]) -> None:
    server, token, oid = lfs_server
    href = batch_href(server, token, oid, {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.9.9"})
    assert href.startswith(server.url + "/"), href


@pytest.mark.parametrize("host", ["evil.example/steal?x=", "evil.example:80@x"])
def test_malformed_host_does_not_flow_into_links(lfs_server: tuple[Server, str, str], host: str) -> None:
    server, token, oid = lfs_server
    href = batch_href(server, token, oid, {"Host": host})  # Starlette's URL checks the Host header
    assert href.startswith(server.url + "/_hubgate/"), href


def test_forwarded_headers_from_a_trusted_proxy_are_used(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"HUBGATE_LFS_THRESHOLD": "100",
                                                   "HUBGATE_HTTP": json.dumps({"trusted_proxies": ["127.0.0.1"]})})
    try:
        token, oid = setup_repo(server)
        href = batch_href(server, token, oid, {"X-Forwarded-Proto": "https", "Host": "hub.example.com"})
        assert href.startswith("https://hub.example.com/_hubgate/lfs/download/"), href
    finally:
        server.stop()


def test_presigned_download_links_are_short_lived(lfs_server: tuple[Server, str, str]) -> None:
    server, token, oid = lfs_server
    answer = httpx.post(
        f"{server.url}/alice/secret.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": [{"oid": oid, "size": len(DATA)}]},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"},
    ).json()
    action = answer["objects"][0]["actions"]["download"]
    expires = int(re.search(r"[?&]exp=(\d+)", action["href"]).group(1))  # type: ignore[union-attr]
    assert action["expires_in"] <= 600
    assert expires - time.time() <= 600 + 5
