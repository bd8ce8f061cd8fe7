"""Hostile and malformed input: every refusal is a clear 4xx with a JSON `{"error": ...}` and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from http.client import HTTPConnection
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from conftest import Server

http = httpx.Client(timeout=60)  # one client: a new one per request costs ~0.1 s


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw(server: Server, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request whose path reaches the server byte for byte (httpx would normalise `..`)."""
    parts = urlsplit(server.url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def assert_clean_4xx(status: int, body: bytes | str, *, allowed: tuple[int, ...] = ()) -> dict:
    """A 4xx whose body is a JSON object with a string `error`."""
    assert 400 <= status < 500 or status in allowed, (status, body[:300])
    data = json.loads(body)
    assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], data
    return data


def check(response: httpx.Response) -> dict:
    return assert_clean_4xx(response.status_code, response.content)


def ndjson(*lines: dict | str) -> bytes:
    return b"".join((line if isinstance(line, str) else json.dumps(line)).encode("utf-8", "surrogatepass") + b"\n"
                    for line in lines)


HEADER = {"key": "header", "value": {"summary": "bad input", "description": ""}}


def file_line(path: str, data: bytes = b"x") -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


@pytest.fixture(scope="module")
def target(server: Server, alice_token: str) -> dict:
    """alice's repo with a file, a folder and an uploaded LFS object; its state is checked after each test."""
    repo_id = f"alice/bad-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    head = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("sub/b.txt", b"b")],
                             commit_message="seed").oid
    api.create_tag(repo_id, tag="v1")
    return {"id": repo_id, "head": head, "api": api}


@pytest.fixture()
def unchanged(server: Server, target: dict, alice_token: str):  # type: ignore[no-untyped-def]
    """After the test: the branch head, refs and the repo list are what they were."""
    def state() -> tuple:
        refs = http.get(f"{server.url}/api/models/{target['id']}/refs", headers=auth(alice_token)).json()
        repos = {r["id"] for r in http.get(f"{server.url}/api/models", headers=auth(alice_token)).json()}
        return refs, repos
    before = state()
    assert before[0]["branches"][0]["targetCommit"] == target["head"]
    yield
    assert state() == before


def commit(server: Server, token: str, target: dict, body: bytes, rev: str = "main",
           content_type: str = "application/x-ndjson") -> httpx.Response:
    return http.post(f"{server.url}/api/models/{target['id']}/commit/{rev}", content=body,
                     headers={**auth(token), "Content-Type": content_type})


# -- path traversal --------------------------------------------------------------------------------

BAD_REPO_SEGMENTS = ["%2E%2E", "..", "%2E", ".hidden", "a%00b", "a%5Cb", "a%2F..", "x.git", "a%20b", "%C3%A9", "-dash",
                     "a" * 97]


@pytest.mark.parametrize("segment", BAD_REPO_SEGMENTS)
def test_bad_repo_ids_in_urls(server: Server, alice_token: str, segment: str, unchanged: None) -> None:
    for path in (f"/api/models/alice/{segment}", f"/api/models/{segment}/x", f"/api/models/alice/{segment}/tree/main",
                 f"/alice/{segment}/resolve/main/a.txt", f"/{segment}/x/resolve/main/a.txt",
                 f"/api/models/alice/{segment}/auth-check"):
        status, _, body = raw(server, "GET", path, headers=auth(alice_token))
        assert_clean_4xx(status, body)
    status, _, body = raw(server, "POST", f"/api/models/alice/{segment}/commit/main", body=ndjson(HEADER, file_line("x")),
                          headers=auth(alice_token))
    assert_clean_4xx(status, body)
    status, _, body = raw(server, "POST", f"/alice/{segment}.git/info/lfs/objects/batch",
                          body=json.dumps({"operation": "upload", "objects": []}).encode(), headers=auth(alice_token))
    assert_clean_4xx(status, body)


BAD_NAMES = ["..", ".", "../alice", "/etc", "a\x00b", "a\\b", "", "a b", "x.git", "a" * 97, "a/b/c", "%2E%2E", "\u00e9t\u00e9"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_repo_names_in_bodies(server: Server, alice_token: str, name: str, unchanged: None) -> None:
    check(http.post(f"{server.url}/api/repos/create", json={"name": name}, headers=auth(alice_token)))
    check(http.post(f"{server.url}/api/repos/create", json={"name": "fine", "organization": name}, headers=auth(alice_token)))
    check(http.request("DELETE", f"{server.url}/api/repos/delete", json={"name": name, "organization": "alice"},
                       headers=auth(alice_token)))
    check(http.post(f"{server.url}/api/repos/move", json={"fromRepo": f"alice/{name}", "toRepo": "alice/fine-target"},
                    headers=auth(alice_token)))


def test_bad_move_target(server: Server, alice_token: str, target: dict, unchanged: None) -> None:
    for to in ("alice/..", "alice", "../x", "alice/a/b", "", "alice/a\x00", 5, None):
        check(http.post(f"{server.url}/api/repos/move", json={"fromRepo": target["id"], "toRepo": to, "type": "model"},
                        headers=auth(alice_token)))
    check(http.post(f"{server.url}/api/repos/move", json={"fromRepo": target["id"], "toRepo": "alice/other", "type": "widget"},
                    headers=auth(alice_token)))


BAD_FILE_PATHS = ["../x", "../../etc/passwd", "/abs", "/etc/passwd", "a/../b", "a/../../b", "a\\b", "..\\x", "a\x00b", ".git/config",
                  "sub/.git/x", "", "a//b", "dir/", ".", "./a", "a/./b", "x" * 1100, "\ud800.txt"]


@pytest.mark.parametrize("path", BAD_FILE_PATHS)
def test_bad_paths_in_commit_operations(server: Server, alice_token: str, target: dict, path: str, unchanged: None) -> None:
    blob = b"lfs content"
    oid = hashlib.sha256(blob).hexdigest()
    for op in (file_line(path),
               {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": len(blob)}},
               {"key": "deletedFile", "value": {"path": path}}):
        check(commit(server, alice_token, target, ndjson(HEADER, op)))
    # with a valid operation before it: still nothing is committed
    check(commit(server, alice_token, target, ndjson(HEADER, file_line("fine.txt"), file_line(path))))


@pytest.mark.parametrize("path", ["../sub", "/sub", "/sub/", "/", "", "..", "sub/../..", "a\\b", "a\x00b", ".git"])
def test_bad_folder_deletions(server: Server, alice_token: str, target: dict, path: str, unchanged: None) -> None:
    check(commit(server, alice_token, target, ndjson(HEADER, {"key": "deletedFolder", "value": {"path": path}})))


@pytest.mark.parametrize("path", ["..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "sub/../a.txt", "%2Fetc%2Fpasswd", "/a.txt",
                                  "a%00b", "a%5Cb", "sub%5Cb.txt", ".git/config", "sub/./b.txt", "%2E%2E/a.txt"])
def test_bad_paths_in_resolve(server: Server, target: dict, path: str) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = raw(server, method, f"/{target['id']}/resolve/main/{path}")
        assert 400 <= status < 500, (path, status)
        if method == "GET":
            assert_clean_4xx(status, body)
        if status == 404:
            assert headers.get("x-error-code") == "EntryNotFound"
            assert headers.get("x-repo-commit") == target["head"]
    # the files that do exist next to these are untouched and still served
    assert http.get(f"{server.url}/{target['id']}/resolve/main/sub/b.txt").content == b"b"


BAD_REVISIONS = ["..", "..%2F..%2Fmain", "main%2F..%2Fmain", "a%00b", "a%5Cb", "%2Fmain", "main%2F", "a%2F%2Fb", "a~1",
                 "a%5E", "a%3Ab", "a%20b", "a%2A", "a%3Fb", "a%5Bb", "x" * 300, "a%0Ab"]


@pytest.mark.parametrize("rev", BAD_REVISIONS)
def test_bad_revisions(server: Server, alice_token: str, target: dict, rev: str, unchanged: None) -> None:
    repo = target["id"]
    for path in (f"/{repo}/resolve/{rev}/a.txt", f"/api/models/{repo}/revision/{rev}", f"/api/models/{repo}/tree/{rev}",
                 f"/api/models/{repo}/commits/{rev}"):
        status, _, body = raw(server, "GET", path, headers=auth(alice_token))
        assert_clean_4xx(status, body)
    for path, payload in ((f"/api/models/{repo}/branch/{rev}", {}),
                          (f"/api/models/{repo}/tag/main", None),
                          (f"/api/models/{repo}/preupload/{rev}", {"files": [{"path": "x", "size": 1, "sample": ""}]}),
                          (f"/api/models/{repo}/paths-info/{rev}", {"paths": ["a.txt"]})):
        if payload is None:
            payload = {"tag": unquote(rev)}
        status, _, body = raw(server, "POST", path, body=json.dumps(payload).encode(),
                              headers={**auth(alice_token), "Content-Type": "application/json"})
        assert_clean_4xx(status, body)
    status, _, body = raw(server, "POST", f"/api/models/{repo}/commit/{rev}", body=ndjson(HEADER, file_line("x.txt")),
                          headers=auth(alice_token))
    assert_clean_4xx(status, body)
    status, _, body = raw(server, "DELETE", f"/api/models/{repo}/branch/{rev}", headers=auth(alice_token))
    assert_clean_4xx(status, body)
    check(http.post(f"{server.url}/api/models/{repo}/branch/fine-name", json={"startingPoint": rev.replace("%2F", "/")},
                    headers=auth(alice_token)))


@pytest.mark.parametrize("name", ["refs/heads/x", "refs/tags/x", "a" * 40, "0123456789abcdef0123456789abcdef01234567",
                                  "x.lock", "x/.hidden", ".hidden", "a@{1}", "@", "x.", "a..b", "\ud800", "a/b.lock/c"])
def test_bad_branch_and_tag_names(server: Server, alice_token: str, target: dict, name: str, unchanged: None) -> None:
    repo = target["id"]
    encoded = quote(name.encode("utf-8", "surrogatepass"), safe="")
    check(http.post(f"{server.url}/api/models/{repo}/branch/{encoded}", json={}, headers=auth(alice_token)))
    body = json.dumps({"tag": name}).encode()
    check(http.post(f"{server.url}/api/models/{repo}/tag/main", content=body,
                    headers={**auth(alice_token), "Content-Type": "application/json"}))


# -- malformed bodies --------------------------------------------------------------------------------

MALFORMED_NDJSON = [
    b"",
    b"\n\n",
    b"not json\n",
    b"[1, 2]\n",
    b'"a string"\n',
    b'{"key": "header"}\n',
    b'{"key": "header", "value": "x"}\n',
    b'{"key": "header", "value": {"summary": "x"}',  # truncated, no newline
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "bogus", "value": {"path": "a"}}\n',
    b'{"key": "file", "value": {"path": "a.txt", "content": "YQ==", "encoding": "base64"}}\n',  # no header
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"content": "YQ=="}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"path": 5, "content": "YQ=="}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"path": "a", "content": 5}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"path": "a", "content": "YQ==", "encoding": "utf-8"}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256", "oid": "xyz"}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "lfsFile", "value": {"path": "a.bin", "algo": "md5", "oid": "'
    + b"a" * 64 + b'"}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "lfsFile", "value": {"path": "a.bin", "oid": "' + b"b" * 64
    + b'", "size": 10}}\n',  # never uploaded
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "lfsFile", "value": {"path": "a.bin", "oid": "' + b"c" * 64
    + b'", "size": "ten"}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "lfsFile", "value": {"path": "a.bin", "oid": "' + b"c" * 64
    + b'", "size": -1}}\n',
    b'{"key": "header", "value": {"summary": "x", "parentCommit": "abc"}}\n',
    b'{"key": "header", "value": {"summary": "x", "parentCommit": 12}}\n',
    b'{"key": "header", "value": {"summary": "x", "parentCommit": "' + b"G" * 40 + b'"}}\n',
    b"\xff\xfe\x00\n",
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"path": "a.txt", "content": "' + b"[" * 10 + b'"}}\n',
    b"[" * 200_000 + b"]" * 200_000 + b"\n",
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    b'{"key": "header", "value": {"summary": "\\ud800"}}\n{"key": "file", "value": {"path": "u.txt", "content": "YQ=="}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"path": "a.txt/inner", "content": "YQ=="}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "file", "value": {"path": "sub", "content": "YQ=="}}\n',
    b'{"key": "header", "value": {"summary": "x"}}\n{"key": "deletedFolder", "value": {"path": 7}}\n',
]


@pytest.mark.parametrize("body", MALFORMED_NDJSON, ids=range(len(MALFORMED_NDJSON)))
def test_malformed_ndjson(server: Server, alice_token: str, target: dict, body: bytes, unchanged: None) -> None:
    check(commit(server, alice_token, target, body))


@pytest.mark.parametrize("content", ["!!!", "YQ", "YQ=", "Y Q==", "YQ==\n", "YQ==YQ==x", "\u00e9"])
def test_bad_base64(server: Server, alice_token: str, target: dict, content: str, unchanged: None) -> None:
    body = ndjson(HEADER, {"key": "file", "value": {"path": "b64.txt", "content": content, "encoding": "base64"}})
    assert "base64" in check(commit(server, alice_token, target, body))["error"]


MALFORMED_JSON = [b"{bad json", b"[]", b'"text"', b"null", b"12", b"\xff\xfe", b"{" * 50_000, b"[" * 200_000 + b"]" * 200_000,
                  b'{"a": ' * 100_000]


@pytest.mark.parametrize("body", MALFORMED_JSON, ids=range(len(MALFORMED_JSON)))
def test_malformed_json_bodies(server: Server, alice_token: str, target: dict, body: bytes, unchanged: None) -> None:
    repo = target["id"]
    headers = {**auth(alice_token), "Content-Type": "application/json"}
    for method, path in (("POST", "/api/repos/create"), ("DELETE", "/api/repos/delete"), ("POST", "/api/repos/move"),
                         ("PUT", f"/api/models/{repo}/settings"), ("POST", f"/api/models/{repo}/tag/main"),
                         ("POST", f"/api/models/{repo}/preupload/main"), ("POST", f"/api/models/{repo}/paths-info/main"),
                         ("POST", f"/{repo}.git/info/lfs/objects/batch"), ("POST", f"/{repo}.git/info/lfs/objects/verify"),
                         ("POST", f"/api/models/{repo}/branch/from-bad-json")):
        response = http.request(method, server.url + path, content=body, headers=headers)
        if path.endswith("/branch/from-bad-json") and body in (b"[]", b'"text"', b"null", b"12"):
            # a branch needs no body: a body that is valid JSON but not an object is ignored
            assert response.status_code in (200, 400), response.text
            http.delete(server.url + path, headers=auth(alice_token))
            continue
        check(response)
    response = http.post(f"{server.url}/api/validate-yaml", content=body, headers={"Content-Type": "application/json"})
    assert 200 <= response.status_code < 500 and isinstance(response.json(), dict)


def test_invalid_field_values(server: Server, alice_token: str, target: dict, unchanged: None) -> None:
    repo = target["id"]
    headers = auth(alice_token)
    for body in ({"name": "x", "type": "widget"}, {"name": "x", "type": 5}, {"name": "x", "type": ["model"]},
                 {"name": "x", "private": "yes"}, {"name": "x", "visibility": "secret"}, {"name": 5},
                 {"name": ["x"]}, {"organization": "alice"}, {"name": "x", "organization": 5},
                 {"name": "x", "type": "space", "sdk": {"evil": True}}):
        check(http.post(f"{server.url}/api/repos/create", json=body, headers=headers))
    for body in ({"private": "yes"}, {"visibility": "hidden"}, {"gated": "bogus"}, {"gated": 5}, {"gated": []},
                 {"private": None, "visibility": 3}):
        check(http.put(f"{server.url}/api/models/{repo}/settings", json=body, headers=headers))
    for body in ({}, {"tag": 5}, {"tag": None}, {"tag": ["v1"]}):
        check(http.post(f"{server.url}/api/models/{repo}/tag/main", json=body, headers=headers))
    for body in ({}, {"files": "x"}, {"files": ["x"]}, {"files": [{"path": "a"}]}, {"files": [{"path": 5, "size": 1}]},
                 {"files": [{"path": "a", "size": "1"}]}, {"files": [{"path": "../a", "size": 1}]},
                 {"files": [{"path": "a", "size": -1}]}):
        check(http.post(f"{server.url}/api/models/{repo}/preupload/main", json=body, headers=headers))
    for body in ({}, {"operation": "steal", "objects": []}, {"operation": "upload", "objects": "x"}):
        check(http.post(f"{server.url}/{repo}.git/info/lfs/objects/batch", json=body, headers=headers))
    answer = http.post(f"{server.url}/{repo}.git/info/lfs/objects/batch", headers=headers,
                       json={"operation": "upload", "objects": [{"oid": "../../etc", "size": 1}, "x",
                                                                {"oid": "a" * 64, "size": -4}, {"oid": "a" * 64, "size": True}]})
    assert answer.status_code == 200
    assert all("error" in obj and "actions" not in obj for obj in answer.json()["objects"])
    for body in ({}, {"oid": "x"}, {"oid": "../../etc/passwd"}):
        check(http.post(f"{server.url}/{repo}.git/info/lfs/objects/verify", json=body, headers=headers))
    for body in ({"paths": [5]}, {"paths": "../x"}, {"paths": ["a.txt", "/../x"]}, {"paths": {"a": 1}}):
        check(http.post(f"{server.url}/api/models/{repo}/paths-info/main", json=body, headers=headers))
    for body in ({"startingPoint": ["x"]}, {"startingPoint": "../main"}, {"startingPoint": {"a": 1}}):
        check(http.post(f"{server.url}/api/models/{repo}/branch/from-bad", json=body, headers=headers))


def test_bad_form_bodies(server: Server, alice_token: str, target: dict) -> None:
    base = f"{server.url}/api/models/{target['id']}/paths-info/main"
    for content_type, body in (("multipart/form-data", b"x"),
                               ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=\"f\"; "
                                                                    b"filename=\"a\"\r\n\r\nabc\r\n--zz--\r\n"),
                               ("application/x-www-form-urlencoded", b"paths=../../etc/passwd"),
                               ("application/x-www-form-urlencoded", b"paths=a%00b"),
                               ("application/x-www-form-urlencoded", "&".join(["paths=a"] * 20_000).encode())):
        check(http.post(base, content=body, headers={**auth(alice_token), "Content-Type": content_type}))
    fine = http.post(base, content=b"paths=a.txt&paths=nope", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert [e["path"] for e in fine.json()] == ["a.txt"]


def test_oversize_json_body(server: Server, alice_token: str, target: dict, unchanged: None) -> None:
    big = json.dumps({"name": "huge", "padding": "x" * (17 * 1024 * 1024)}).encode()

    def chunked():  # no Content-Length: the limit must hold while reading, too
        for start in range(0, len(big), 1 << 20):
            yield big[start:start + (1 << 20)]

    for path in ("/api/repos/create", f"/api/models/{target['id']}/preupload/main"):
        for content in (big, chunked()):
            response = http.post(server.url + path, content=content,
                                 headers={**auth(alice_token), "Content-Type": "application/json"})
            assert response.status_code == 413
            check(response)
    assert http.get(f"{server.url}/api/models/alice/huge", headers=auth(alice_token)).status_code == 404


def test_bad_query_parameters(server: Server, target: dict) -> None:
    repo = target["id"]
    for path, params in ((f"/api/models/{repo}/tree/main", {"cursor": "abc"}), (f"/api/models/{repo}/tree/main", {"limit": "x"}),
                         (f"/api/models/{repo}/tree/main", {"cursor": "-5"}),
                         (f"/api/models/{repo}/commits/main", {"p": "abc"}), (f"/api/models/{repo}/commits/main", {"p": "-1"}),
                         (f"/api/models/{repo}/commits/main", {"limit": "many"}), ("/api/models", {"cursor": "x"})):
        check(http.get(server.url + path, params=params))


def test_unknown_repo_types(server: Server, alice_token: str, target: dict, unchanged: None) -> None:
    for method, path in (("GET", "/api/widgets/alice/x"), ("GET", f"/api/widgets/{target['id']}/tree/main"),
                         ("GET", "/api/widgets"), ("POST", f"/api/widgets/{target['id']}/commit/main"),
                         ("GET", f"/widgets/{target['id']}/resolve/main/a.txt"), ("GET", "/api/model/alice/x"),
                         ("GET", f"/api/widget/{target['id']}/revision/main")):
        response = http.request(method, server.url + path, headers=auth(alice_token))
        check(response)
    check(http.post(f"{server.url}/api/repos/create", json={"name": "w", "type": "widget"}, headers=auth(alice_token)))
    check(http.post(f"{server.url}/api/repos/create", json={"name": "w", "type": "widgets"}, headers=auth(alice_token)))
    check(http.request("DELETE", f"{server.url}/api/repos/delete", json={"name": target["id"].split("/")[1], "type": "widget"},
                       headers=auth(alice_token)))


def test_moved_parent_commit(server: Server, alice_token: str, target: dict) -> None:
    repo = target["id"]
    api: HfApi = target["api"]
    old = target["head"]
    branch = f"moving-{uuid.uuid4().hex[:6]}"
    api.create_branch(repo, branch=branch)
    new = api.create_commit(repo, [CommitOperationAdd("moved.txt", b"1")], commit_message="move", revision=branch).oid
    other_repo = f"alice/other-{uuid.uuid4().hex[:6]}"
    api.create_repo(other_repo)
    foreign = http.get(f"{server.url}/api/models/{other_repo}").json()["sha"]
    for parent in (old, "0" * 40, foreign):
        body = ndjson({"key": "header", "value": {"summary": "stale", "parentCommit": parent}}, file_line("stale.txt"))
        response = commit(server, alice_token, target, body, rev=quote(branch, safe=""))
        assert response.status_code == 412
        check(response)
    assert http.get(f"{server.url}/api/models/{repo}/revision/{quote(branch, safe='')}").json()["sha"] == new
    body = ndjson({"key": "header", "value": {"summary": "fresh", "parentCommit": new}}, file_line("fresh.txt"))
    assert commit(server, alice_token, target, body, rev=quote(branch, safe="")).status_code == 200
    api.delete_branch(repo, branch=branch)


def test_commit_to_non_branches(server: Server, alice_token: str, target: dict, unchanged: None) -> None:
    for rev in (target["head"], "refs%2Ftags%2Fv1", "refs%2Fpr%2F1", "nope"):
        check(commit(server, alice_token, target, ndjson(HEADER, file_line("x.txt")), rev=rev))


def test_bad_lfs_upload_urls(server: Server, target: dict) -> None:
    oid = hashlib.sha256(b"data").hexdigest()
    for path in (f"/_hubgate/lfs/upload/{oid}", f"/_hubgate/lfs/upload/{oid}?size=4", f"/_hubgate/lfs/upload/{oid}?size=abc&exp=1&sig=x",
                 f"/_hubgate/lfs/upload/{oid}?size=4&exp=notanumber&sig=x", "/_hubgate/lfs/upload/../../secret.key?size=4",
                 f"/_hubgate/lfs/download/{oid}", f"/_hubgate/lfs/download/{oid}?exp=99999999999&sig=" + "0" * 64):
        method = "GET" if "/download/" in path else "PUT"
        status, _, body = raw(server, method, path, body=b"data" if method == "PUT" else None)
        assert_clean_4xx(status, body)


def test_huge_values_give_short_errors(server: Server, alice_token: str, target: dict, unchanged: None) -> None:
    """An error quoting a 5 MB name must still be a small, valid answer (the client reads headers up to a limit)."""
    for body in ({"name": "a" * 5_000_000}, {"name": "x", "organization": "b" * 5_000_000}):
        response = http.post(f"{server.url}/api/repos/create", json=body, headers=auth(alice_token))
        check(response)
        assert len(response.headers["X-Error-Message"]) <= 1000 and len(response.content) < 10_000
    long_path = "d/" * 30_000 + "f.txt"
    response = commit(server, alice_token, target, ndjson(HEADER, file_line(long_path)))
    check(response)
    assert len(response.headers["X-Error-Message"]) <= 1000
    response = http.get(f"{server.url}/{target['id']}/resolve/main/{'x' * 20_000}")
    assert response.status_code == 404 and len(response.headers["X-Error-Message"]) <= 1000
