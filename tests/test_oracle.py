"""No oracle across tenants (issue 6, item 2): an LFS object a caller has not uploaded and cannot
read answers exactly like one that does not exist, on every route where an oid meets storage."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from conftest import Server

http = httpx.Client(timeout=60)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def secret(server: Server, alice_token: str) -> dict[str, object]:
    """An LFS object only alice's private repo holds, and the commit id of that repo."""
    data = os.urandom(3000)
    repo_id = f"alice/secret-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id, private=True)
    head = api.create_commit(repo_id, [CommitOperationAdd("weights.bin", data)], commit_message="secret").oid
    info = http.get(f"{server.url}/api/models/{repo_id}", params={"blobs": True}, headers=auth(alice_token)).json()
    lfs = next(s["lfs"] for s in info["siblings"] if s["rfilename"] == "weights.bin")
    assert lfs["sha256"] == hashlib.sha256(data).hexdigest()  # it is stored as an LFS object
    return {"oid": lfs["sha256"], "size": len(data), "commit": head, "repo": repo_id}


@pytest.fixture(scope="module")
def probe(server: Server, bob_token: str) -> str:
    repo_id = f"bob/probe-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.url, token=bob_token).create_repo(repo_id)
    return repo_id


def _answer(response: httpx.Response, *secrets: str) -> tuple[int, str | None, str]:
    """What a caller sees, with the ids it sent itself blanked out."""
    body = response.text
    for value in secrets:
        body = body.replace(value, "<id>")
    return response.status_code, response.headers.get("x-error-code"), body


def _missing(size: int) -> tuple[str, int]:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest(), size


def _commit(server: Server, token: str, repo: str, *lines: dict[str, object]) -> httpx.Response:
    header = {"key": "header", "value": {"summary": "probe"}}
    body = b"".join(json.dumps(line).encode() + b"\n" for line in (header, *lines))
    return http.post(f"{server.url}/api/models/{repo}/commit/main", content=body, headers=auth(token))


@pytest.mark.parametrize("claimed", ["wrong", "right", "absent"])
def test_commit_lfs_file_by_oid(server: Server, bob_token: str, secret: dict, probe: str, claimed: str) -> None:
    def attempt(oid: str, real_size: int) -> tuple[int, str | None, str]:
        size = {"wrong": 1, "right": real_size, "absent": None}[claimed]
        value = {"path": "stolen.bin", "algo": "sha256", "oid": oid, **({"size": size} if size is not None else {})}
        return _answer(_commit(server, bob_token, probe, {"key": "lfsFile", "value": value}), oid, str(real_size))

    existing = attempt(secret["oid"], secret["size"])
    assert existing[0] == 400
    assert existing == attempt(*_missing(secret["size"]))
    assert str(secret["size"]) not in existing[2]


def test_commit_pointer_as_plain_file(server: Server, bob_token: str, secret: dict, probe: str) -> None:
    def attempt(oid: str, size: int) -> tuple[int, str | None, str]:
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()
        line = {"key": "file", "value": {"path": "pointer.txt", "content": base64.b64encode(pointer).decode(),
                                         "encoding": "base64"}}
        return _answer(_commit(server, bob_token, probe, line), oid)

    assert attempt(secret["oid"], secret["size"]) == attempt(*_missing(secret["size"]))
    assert attempt(secret["oid"], secret["size"])[0] == 400


@pytest.mark.parametrize("operation", ["upload", "download"])
def test_lfs_batch(server: Server, bob_token: str, secret: dict, probe: str, operation: str) -> None:
    def attempt(oid: str, size: int) -> dict:
        response = http.post(f"{server.url}/{probe}.git/info/lfs/objects/batch", headers=auth(bob_token),
                             json={"operation": operation, "objects": [{"oid": oid, "size": size}]})
        assert response.status_code == 200
        obj = response.json()["objects"][0]
        if "actions" in obj:  # signed URLs differ by oid; their shape must not
            obj["actions"] = sorted(obj["actions"])
        return {k: v for k, v in obj.items() if k != "oid"}

    existing = attempt(secret["oid"], secret["size"])
    assert existing == attempt(*_missing(secret["size"]))
    if operation == "upload":
        assert existing["actions"] == ["upload", "verify"]  # the Hub asks for the bytes
    else:
        assert existing["error"]["code"] == 404


def test_lfs_verify(server: Server, bob_token: str, secret: dict, probe: str) -> None:
    def attempt(oid: str, size: int) -> tuple[int, str | None, str]:
        response = http.post(f"{server.url}/{probe}.git/info/lfs/objects/verify", headers=auth(bob_token),
                             json={"oid": oid, "size": size})
        return _answer(response, oid)

    assert attempt(secret["oid"], secret["size"]) == attempt(*_missing(secret["size"]))
    assert attempt(secret["oid"], secret["size"])[0] == 404


def test_parent_commit_of_another_repo(server: Server, bob_token: str, secret: dict, probe: str) -> None:
    def attempt(parent: str) -> tuple[int, str | None, str]:
        header = {"key": "header", "value": {"summary": "probe", "parentCommit": parent}}
        line = {"key": "file", "value": {"path": "x.txt", "content": "eA==", "encoding": "base64"}}
        body = b"".join(json.dumps(item).encode() + b"\n" for item in (header, line))
        response = http.post(f"{server.url}/api/models/{probe}/commit/main", content=body, headers=auth(bob_token))
        return _answer(response, parent)

    assert attempt(secret["commit"]) == attempt(hashlib.sha1(uuid.uuid4().bytes).hexdigest())


def test_the_owner_still_commits_by_oid(server: Server, alice_token: str, secret: dict) -> None:
    repo_id = f"alice/reuse-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id, private=True)
    # a repo that was never sent the object cannot name it, even its owner's other repo ...
    line = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": secret["oid"], "size": secret["size"]}}
    assert _commit(server, alice_token, repo_id, line).status_code == 400
    # ... and the repo holding it can, with a wrong size refused as such
    holder = str(secret["repo"])
    wrong = {"key": "lfsFile", "value": {**line["value"], "size": 1}}
    refused = _commit(server, alice_token, holder, wrong)
    assert refused.status_code == 400 and str(secret["size"]) in refused.json()["error"]
    assert _commit(server, alice_token, holder, line).status_code == 200


def test_a_renamed_private_repo_redirects_only_its_readers(server: Server, alice_token: str, bob_token: str) -> None:
    old, new = f"alice/old-{uuid.uuid4().hex[:8]}", f"alice/new-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(old, private=True)
    api.move_repo(old, new)
    missing = f"alice/gone-{uuid.uuid4().hex[:6]}"
    for headers in ({}, auth(bob_token)):
        moved = http.get(f"{server.url}/api/models/{old}", headers=headers, follow_redirects=False)
        absent = http.get(f"{server.url}/api/models/{missing}", headers=headers, follow_redirects=False)
        assert _answer(moved, old) == _answer(absent, missing)
        assert "location" not in moved.headers and new not in moved.text
    owner = http.get(f"{server.url}/api/models/{old}", headers=auth(alice_token), follow_redirects=False)
    assert owner.status_code == 307 and new in owner.headers["location"]


@pytest.mark.parametrize("route", ["status", "title", "commit", "preupload"])
@pytest.mark.parametrize("num", [1, 77])
def test_discussion_routes_of_a_private_repo(server: Server, alice_token: str, bob_token: str, secret: dict,
                                             route: str, num: int) -> None:
    """Changing a discussion or committing to `refs/pr/N` of a private repo one may not see answers
    like a missing repo, whether the discussion exists or not."""
    repo = str(secret["repo"])
    if not HfApi(endpoint=server.url, token=alice_token).get_repo_discussions(repo):
        HfApi(endpoint=server.url, token=alice_token).create_discussion(repo, title="internal")

    def attempt(repo_id: str) -> tuple[int, str | None, str]:
        base = f"{server.url}/api/models/{repo_id}"
        requests = {
            "status": (f"{base}/discussions/{num}/status", {"json": {"status": "closed"}}),
            "title": (f"{base}/discussions/{num}/title", {"json": {"title": "mine"}}),
            "commit": (f"{base}/commit/refs%2Fpr%2F{num}", {"content": b""}),
            "preupload": (f"{base}/preupload/refs%2Fpr%2F{num}", {"json": {"files": []}}),
        }
        url, body = requests[route]
        return _answer(http.post(url, headers=auth(bob_token), **body), repo_id)

    hidden = attempt(repo)
    assert hidden == attempt(f"alice/missing-{uuid.uuid4().hex[:8]}")
    assert hidden[:2] == (404, "RepoNotFound")


def test_lfs_uploads_for_a_pull_request(server: Server, alice_token: str, bob_token: str, carol_token: str,
                                        secret: dict) -> None:
    """A reader who may not write opens a pull request with LFS files (the batch names no ref, as
    huggingface_hub sends for `create_pr`) and goes on uploading to its `refs/pr/N`; uploading for a
    branch stays for writers, and other tenants' objects still answer like missing ones."""
    repo_id = f"alice/open-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.url, token=alice_token).create_repo(repo_id)
    batch_url = f"{server.url}/{repo_id}.git/info/lfs/objects/batch"

    def batch(token: str, oid: str, size: int, ref: str | None) -> httpx.Response:
        body = {"operation": "upload", "objects": [{"oid": oid, "size": size}], **({"ref": {"name": ref}} if ref else {})}
        return http.post(batch_url, headers=auth(token), json=body)

    def shape(response: httpx.Response) -> dict:
        assert response.status_code == 200, response.text
        obj = response.json()["objects"][0]
        return {k: sorted(v) if k == "actions" else v for k, v in obj.items() if k != "oid"}

    assert shape(batch(bob_token, secret["oid"], secret["size"], None)) == shape(batch(bob_token, *_missing(secret["size"]), None))
    assert batch(bob_token, *_missing(10), "main").status_code == 403  # a branch: writers only
    data = os.urandom(2000)
    oid = hashlib.sha256(data).hexdigest()
    actions = batch(bob_token, oid, len(data), None).json()["objects"][0]["actions"]
    assert http.put(actions["upload"]["href"], content=data).status_code == 200
    assert http.post(actions["verify"]["href"], headers=auth(bob_token), json={"oid": oid, "size": len(data)}).status_code == 200
    header = {"key": "header", "value": {"summary": "weights"}}
    line = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": len(data)}}
    body = b"".join(json.dumps(item).encode() + b"\n" for item in (header, line))
    opened = http.post(f"{server.url}/api/models/{repo_id}/commit/main", params={"create_pr": "1"}, content=body,
                       headers=auth(bob_token))
    assert opened.status_code == 200, opened.text
    pr = opened.json()["pullRequestUrl"].rsplit("/", 1)[1]
    assert batch(bob_token, *_missing(10), f"refs/pr/{pr}").status_code == 200  # its author
    assert batch(carol_token, *_missing(10), f"refs/pr/{pr}").status_code == 403  # not hers, not a writer
