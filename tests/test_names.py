"""Names, refs, paths and ranges follow the Hub's and git's own rules, with full matches (issue 6, item 4)."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from conftest import Server
from test_bad_input import HEADER, assert_clean_4xx, auth, file_line, ndjson, raw

http = httpx.Client(timeout=60)


@pytest.fixture(scope="module")
def repo(server: Server, alice_token: str) -> str:
    repo_id = f"alice/names-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    api.create_commit(repo_id, [CommitOperationAdd("data.txt", bytes(range(100)))], commit_message="seed")
    return repo_id


def _listed(server: Server, token: str) -> set[str]:
    return {r["id"] for r in http.get(f"{server.url}/api/models", headers=auth(token)).json()}


@pytest.mark.parametrize("name", ["x\n", "x.git\n", "x.GIT", "x.Git", "a--b", "x-", "x.", "x\r", "x\t", "x "])
def test_repo_names_are_matched_whole(server: Server, alice_token: str, name: str) -> None:
    before = _listed(server, alice_token)
    for body in ({"name": name}, {"name": f"alice/{name}"}, {"name": "fine-name", "organization": name}):
        response = http.post(f"{server.url}/api/repos/create", json=body, headers=auth(alice_token))
        assert_clean_4xx(response.status_code, response.content)
    assert _listed(server, alice_token) == before


@pytest.mark.parametrize("namespace", ["datasets", "spaces", "models", "api", "Datasets"])
def test_reserved_namespaces(server: Server, namespace: str) -> None:
    server.admin_headers()  # creates the administrator "ops"
    # an admin may write anywhere, but not where no URL could reach the repo
    admin_write = auth(server.token("ops", "write"))
    response = http.post(f"{server.url}/api/repos/create", json={"name": "x", "organization": namespace},
                         headers=admin_write)
    assert response.status_code == 400, response.text
    assert "reserved" in assert_clean_4xx(response.status_code, response.content)["error"]
    response = http.post(f"{server.url}/api/repos/move", json={"fromRepo": "ops/nothing", "toRepo": f"{namespace}/x"},
                         headers=admin_write)
    assert_clean_4xx(response.status_code, response.content)


def test_space_sdk_is_one_of_the_hubs(server: Server, alice_token: str) -> None:
    for sdk in (" " * 1_000_000, "bogus", "GRADIO", 5):
        response = http.post(f"{server.url}/api/repos/create", json={"name": f"sp-{uuid.uuid4().hex[:6]}", "type": "space",
                                                                    "sdk": sdk}, headers=auth(alice_token))
        assert_clean_4xx(response.status_code, response.content)
        assert len(response.content) < 10_000


DOTGIT_PATHS = [".GIT/config", ".Git/hooks/x", "GIT~1/config", "git~1/config", ".git./config", ".git /config",
                ".git. . /config", "sub/.gIt/x", ".g\u200cit/config", "\u200d.git/config", ".git\ufeff/config",
                ".git\u200e/HEAD", ".git::$INDEX_ALLOCATION/config", ".GIT"]
CONTROL_PATHS = ["a\nb.txt", "a.txt\n", "a\tb", "a\rb", "a\x7fb", "a\x1bb", "a\u0085b", "a\x9bb", "x.txt ", "dir /x.txt"]


@pytest.mark.parametrize("path", DOTGIT_PATHS + CONTROL_PATHS)
def test_paths_git_would_refuse(server: Server, alice_token: str, repo: str, path: str) -> None:
    head = http.get(f"{server.url}/api/models/{repo}", headers=auth(alice_token)).json()["sha"]
    response = http.post(f"{server.url}/api/models/{repo}/commit/main", content=ndjson(HEADER, file_line(path)),
                         headers=auth(alice_token))
    assert_clean_4xx(response.status_code, response.content)
    response = http.post(f"{server.url}/api/models/{repo}/preupload/main", json={"files": [{"path": path, "size": 1}]},
                         headers=auth(alice_token))
    assert_clean_4xx(response.status_code, response.content)
    assert http.get(f"{server.url}/api/models/{repo}", headers=auth(alice_token)).json()["sha"] == head


def test_ordinary_paths_still_work(server: Server, alice_token: str, repo: str) -> None:
    paths = [".gitattributes", ".github/workflows/x.yml", "a.git/x", ".gitx/y", "git~2/z", "caf\u00e9 au lait.txt",
             "\u6587\u4ef6.txt", "a b/c d.txt", ".hidden"]
    body = ndjson(HEADER, *[file_line(p, p.encode()) for p in paths])
    response = http.post(f"{server.url}/api/models/{repo}/commit/main", content=body, headers=auth(alice_token))
    assert response.status_code == 200, response.text
    for path in paths:
        assert http.get(f"{server.url}/{repo}/resolve/main/{quote(path)}", headers=auth(alice_token)).content == path.encode()


BAD_REF_NAMES = ["HEAD", "-x", "--force", "m\u0430in", "ma\u200bin", "x\n", "x\x7f", "caf\u00e9", "a" * 201, "x.lock",
                 "a/.b", "a..b", "a@{0}", "@", "a//b", "x/", "a b", "a:b", "a^", "a~1", "a?", "a*", "a[b"]


@pytest.mark.parametrize("name", BAD_REF_NAMES)
def test_branch_and_tag_names_follow_git(server: Server, alice_token: str, repo: str, name: str) -> None:
    before = http.get(f"{server.url}/api/models/{repo}/refs", headers=auth(alice_token)).json()
    encoded = quote(name, safe="")
    response = http.post(f"{server.url}/api/models/{repo}/branch/{encoded}", json={}, headers=auth(alice_token))
    assert_clean_4xx(response.status_code, response.content)
    response = http.post(f"{server.url}/api/models/{repo}/tag/main", content=json.dumps({"tag": name}).encode(),
                         headers={**auth(alice_token), "Content-Type": "application/json"})
    assert_clean_4xx(response.status_code, response.content)
    assert http.get(f"{server.url}/api/models/{repo}/refs", headers=auth(alice_token)).json() == before


def test_ordinary_branch_names_still_work(server: Server, alice_token: str, repo: str) -> None:
    for name in ("dev", "release/v1.2", "feature_x-y", "v1.0", "HEADS"):
        response = http.post(f"{server.url}/api/models/{repo}/branch/{quote(name, safe='')}", json={},
                             headers=auth(alice_token))
        assert response.status_code == 200, (name, response.text)
        http.delete(f"{server.url}/api/models/{repo}/branch/{quote(name, safe='')}", headers=auth(alice_token))


@pytest.mark.parametrize("header", ["bytes=1_0-2_0", "bytes=+1-2", "bytes=\u0661-\u0662", "bytes=1-2_0", "bytes=-1_0",
                                    "bytes=0x1-2", "bytes=1 -2", "bytes=-"])
def test_lenient_range_syntax_is_ignored(server: Server, alice_token: str, repo: str, header: str) -> None:
    status, headers, body = raw(server, "GET", f"/{repo}/resolve/main/data.txt",
                                headers={**auth(alice_token), "Range": header.encode("utf-8").decode("latin-1")})
    assert status == 200 and body == bytes(range(100)), (status, headers.get("content-range"))


def test_strict_ranges_still_work(server: Server, alice_token: str, repo: str) -> None:
    for header, expected in (("bytes=10-20", bytes(range(10, 21))), ("bytes=-5", bytes(range(95, 100))),
                             ("bytes=98-", bytes([98, 99])), ("bytes=0-" + "9" * 40, bytes(range(100)))):
        response = http.get(f"{server.url}/{repo}/resolve/main/data.txt", headers={**auth(alice_token), "Range": header})
        assert response.status_code == 206 and response.content == expected, header
