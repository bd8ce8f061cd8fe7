"""One commit parser (issue 6, item 5): a line holding megabytes gives exactly the result of the
same line holding a few bytes: the file is the value's own `content` (not the first `"content":"`
anywhere), the last of duplicate keys wins, JSON escapes decode, the structure is checked."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Server, start_server

http = httpx.Client(timeout=120)
# The old parser took lines over max(4 MiB, 4/3 of the LFS threshold) by another path.
BIG = 5 * 1024 * 1024
SMALL = 3000


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    with start_server(tmp_path_factory.mktemp("parser"), env={"HUBGATE_LFS_THRESHOLD": "65536"}) as srv:
        srv.add_user("ann")
        token = srv.token("ann")
        http.post(f"{srv.url}/api/repos/create", json={"name": "parse"}, headers={"Authorization": f"Bearer {token}"})
        yield srv, token


def _b64(size: int, seed: int) -> tuple[bytes, str]:
    data = os.urandom(size - 16) + seed.to_bytes(16, "big")
    return data, base64.b64encode(data).decode()


def _commit(hub: tuple[Server, str], line: str) -> httpx.Response:
    server, token = hub
    header = json.dumps({"key": "header", "value": {"summary": "parser"}})
    return http.post(f"{server.url}/api/models/ann/parse/commit/main", content=f"{header}\n{line}\n".encode(),
                     headers={"Authorization": f"Bearer {token}"})


def _file(hub: tuple[Server, str], path: str) -> bytes | None:
    server, token = hub
    response = http.get(f"{server.url}/ann/parse/resolve/main/{path}", headers={"Authorization": f"Bearer {token}"})
    return response.content if response.status_code == 200 else None


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["small", "big"])
def test_the_value_content_not_the_first_content_key(hub: tuple[Server, str], size: int) -> None:
    decoy, decoy_b64 = _b64(size, 1)
    real, real_b64 = _b64(SMALL, 2)
    path = f"nested-{size}.bin"
    line = f'{{"key": "file", "value": {{"path": "{path}", "meta": {{"content": "{decoy_b64}"}}, "content": "{real_b64}"}}}}'
    assert _commit(hub, line).status_code == 200
    assert _file(hub, path) == real


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["small", "big"])
def test_duplicate_keys_last_wins(hub: tuple[Server, str], size: int) -> None:
    first, first_b64 = _b64(size, 3)
    last, last_b64 = _b64(SMALL, 4)
    path = f"dup-{size}.bin"
    line = f'{{"key": "file", "value": {{"path": "{path}", "content": "{first_b64}", "content": "{last_b64}"}}}}'
    assert _commit(hub, line).status_code == 200
    assert _file(hub, path) == last
    # and the other way round: the long one last
    line = f'{{"key": "file", "value": {{"path": "{path}", "content": "{last_b64}", "content": "{first_b64}"}}}}'
    assert _commit(hub, line).status_code == 200
    assert _file(hub, path) == first


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["small", "big"])
def test_escapes_in_content_decode(hub: tuple[Server, str], size: int) -> None:
    data, encoded = _b64(size, 5)
    escaped = encoded.replace("/", "\\/").replace("A", "\\u0041")
    path = f"escaped-{size}.bin"
    assert _commit(hub, f'{{"key": "file", "value": {{"path": "{path}", "content": "{escaped}"}}}}').status_code == 200
    assert _file(hub, path) == data


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["small", "big"])
@pytest.mark.parametrize("shape", [
    '{{"key": "file", "value": {{"path": "{path}", "meta": {{"content": "{b64}"}}}}}}',  # no content of its own
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}"}}}} trailing',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}",}}}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}"}}, "key": "bogus"}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}", "encoding": "utf-8"}}}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}\\u00e9"}}}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}\t"}}}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}\\x"}}}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}=="}}}}',
    '{{"key": "file", "value": {{"path": "{path}", "content": "{b64}", "content": 5}}}}',
    '{{"key": "file", "value": {{"path": "../{path}", "content": "{b64}"}}}}',
    '{{"key": "file", "value": [{{"path": "{path}", "content": "{b64}"}}]}}',
], ids=range(12))
def test_refused_alike(hub: tuple[Server, str], size: int, shape: str) -> None:
    _, b64 = _b64(size, 6)
    path = f"refused-{size}-{abs(hash(shape))}.bin"
    response = _commit(hub, shape.format(path=path, b64=b64))
    status = 422 if "../" in shape else 400  # an invalid path: the Hub's 422; a malformed line: 400
    assert response.status_code == status and isinstance(response.json()["error"], str), response.text[:300]
    assert _file(hub, path) is None


@pytest.mark.parametrize("size", [SMALL, BIG], ids=["small", "big"])
def test_long_strings_elsewhere(hub: tuple[Server, str], size: int) -> None:
    """A long string that is not a file's content is read like a short one: ignored when unused,
    taken as the description when it is one."""
    data, b64 = _b64(SMALL, 7)
    path = f"other-{size}.bin"
    line = f'{{"key": "file", "value": {{"path": "{path}", "note": "{"n" * size}", "content": "{b64}"}}}}'
    assert _commit(hub, line).status_code == 200
    server, token = hub
    header = json.dumps({"key": "header", "value": {"summary": "long", "description": "d" * min(size, 1024 * 1024)}})
    response = http.post(f"{server.url}/api/models/ann/parse/commit/main", content=f"{header}\n{line}\n".encode(),
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["commitDescription"] == "d" * min(size, 1024 * 1024)


def test_structure_outside_strings_is_bounded(hub: tuple[Server, str], tmp_path: Path) -> None:
    line = '{"key": "file", "value": {"path": "ws.txt", "content": "YQ=="' + " " * (17 * 1024 * 1024) + "}}"
    response = _commit(hub, line)
    assert response.status_code == 400 and "outside file contents" in response.json()["error"]
