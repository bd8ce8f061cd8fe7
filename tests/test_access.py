"""Access rules (hub-protocol §2): who sees and who writes which repo, and how refusals look."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from typer.testing import CliRunner

from conftest import Server
from hubgate.cli import app as cli_app

http = httpx.Client(timeout=60)  # one client: a new one per request costs ~0.1 s
BAD_CREDENTIALS = "Invalid credentials in Authorization header"


def hubgate(server: Server, *args: str) -> str:
    """Run `hubgate ARGS --data DIR` in this process (no Python start-up per call); its stdout."""
    result = CliRunner().invoke(cli_app, [*args, "--data", str(server.data)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def new_token(server: Server, user: str, *args: str) -> str:
    return hubgate(server, "token", "create", user, *args).strip().splitlines()[-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def commit_body(path: str = "x.txt", data: bytes = b"x") -> bytes:
    lines = [{"key": "header", "value": {"summary": "try"}},
             {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@pytest.fixture(scope="module")
def repos(server: Server, alice_token: str) -> dict[str, str]:
    """alice's private and public repos and a private repo of the org acme, each with one file."""
    api = HfApi(endpoint=server.url, token=alice_token)
    suffix = uuid.uuid4().hex[:8]
    names = {"private": f"alice/private-{suffix}", "public": f"alice/public-{suffix}", "org": f"acme/private-{suffix}"}
    for kind, repo_id in names.items():
        api.create_repo(repo_id, private=kind != "public")
        api.create_commit(repo_id, [CommitOperationAdd("file.txt", b"content")], commit_message="seed")
    return names


@pytest.fixture(scope="module")
def alice_read_token(server: Server) -> str:
    return new_token(server, "alice", "--role", "read")


def head_sha(server: Server, repo_id: str, token: str) -> str:
    return http.get(f"{server.url}/api/models/{repo_id}", headers=auth(token)).json()["sha"]


READ_PATHS = ["/api/models/{repo}", "/api/models/{repo}/revision/main", "/api/models/{repo}/tree/main",
              "/api/models/{repo}/refs", "/api/models/{repo}/commits/main", "/api/models/{repo}/auth-check",
              "/{repo}/resolve/main/file.txt"]


def test_anonymous_on_private_is_401_repo_not_found(server: Server, repos: dict[str, str], tmp_path: Path) -> None:
    for repo_id in (repos["private"], repos["org"]):
        for template in READ_PATHS:
            response = http.get(server.url + template.format(repo=repo_id))
            assert (response.status_code, response.headers.get("X-Error-Code")) == (401, "RepoNotFound"), template
            assert "error" in response.json()
        head = http.head(f"{server.url}/{repo_id}/resolve/main/file.txt")
        assert (head.status_code, head.headers.get("X-Error-Code")) == (401, "RepoNotFound")
    anonymous = HfApi(endpoint=server.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(repos["private"])
    with pytest.raises(RepositoryNotFoundError):
        anonymous.list_repo_files(repos["org"])
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repos["private"], "file.txt", endpoint=server.url, token=False, cache_dir=tmp_path)
    assert not anonymous.repo_exists(repos["private"])


def test_outsider_on_private_is_404_repo_not_found(server: Server, repos: dict[str, str], bob_token: str, tmp_path: Path) -> None:
    for repo_id in (repos["private"], repos["org"]):
        for template in READ_PATHS:
            response = http.get(server.url + template.format(repo=repo_id), headers=auth(bob_token))
            assert (response.status_code, response.headers.get("X-Error-Code")) == (404, "RepoNotFound"), template
        # the same answer as for a repo that does not exist at all: nothing leaks
        missing = http.get(f"{server.url}/api/models/alice/never-{uuid.uuid4().hex[:6]}", headers=auth(bob_token))
        assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "RepoNotFound"
    bob = HfApi(endpoint=server.url, token=bob_token)
    with pytest.raises(RepositoryNotFoundError):
        bob.model_info(repos["private"])
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repos["org"], "file.txt", endpoint=server.url, token=bob_token, cache_dir=tmp_path)
    # writes too answer "not found", not "forbidden", so the repo's existence does not leak
    response = http.post(f"{server.url}/api/models/{repos['private']}/commit/main", content=commit_body(), headers=auth(bob_token))
    assert (response.status_code, response.headers.get("X-Error-Code")) == (404, "RepoNotFound")
    # and the private repos are not listed to outsiders
    listed = {r["id"] for r in http.get(f"{server.url}/api/models", params={"author": "alice"}, headers=auth(bob_token)).json()}
    assert repos["public"] in listed and repos["private"] not in listed


def test_org_read_member_reads_but_cannot_write(server: Server, repos: dict[str, str], carol_token: str, alice_token: str,
                                               tmp_path: Path) -> None:
    repo_id = repos["org"]
    before = head_sha(server, repo_id, alice_token)
    carol = HfApi(endpoint=server.url, token=carol_token)
    assert carol.model_info(repo_id).sha == before
    path = hf_hub_download(repo_id, "file.txt", endpoint=server.url, token=carol_token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"content"
    assert http.get(f"{server.url}/api/models/{repo_id}/auth-check", headers=auth(carol_token)).status_code == 200
    assert http.get(f"{server.url}/api/models/{repo_id}/auth-check/write", headers=auth(carol_token)).status_code == 403
    response = http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit_body(), headers=auth(carol_token))
    assert response.status_code == 403 and "error" in response.json()
    with pytest.raises(HfHubHTTPError) as raised:
        carol.create_commit(repo_id, [CommitOperationAdd("y.txt", b"y")], commit_message="no")
    assert raised.value.response.status_code == 403
    for method, path, body in (
        ("POST", f"/api/models/{repo_id}/branch/carol", {}),
        ("POST", f"/api/models/{repo_id}/tag/main", {"tag": "carol"}),
        ("PUT", f"/api/models/{repo_id}/settings", {"private": False}),
        ("DELETE", "/api/repos/delete", {"name": repo_id.split("/")[1], "organization": "acme"}),
        ("POST", f"/api/models/{repo_id}/preupload/main", {"files": [{"path": "a", "size": 1, "sample": ""}]}),
        ("POST", "/api/repos/create", {"name": "carol-made", "organization": "acme"}),
    ):
        response = http.request(method, server.url + path, json=body, headers=auth(carol_token))
        assert response.status_code == 403, (method, path, response.text)
    assert head_sha(server, repo_id, alice_token) == before
    assert http.get(f"{server.url}/api/models/{repo_id}", headers=auth(alice_token)).json()["private"] is True


def test_read_token_cannot_write(server: Server, repos: dict[str, str], alice_read_token: str, alice_token: str) -> None:
    repo_id = repos["private"]
    before = head_sha(server, repo_id, alice_token)
    assert http.get(f"{server.url}/api/models/{repo_id}", headers=auth(alice_read_token)).status_code == 200
    response = http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit_body(), headers=auth(alice_read_token))
    assert response.status_code == 403
    assert http.get(f"{server.url}/api/models/{repo_id}/auth-check/write", headers=auth(alice_read_token)).status_code == 403
    created = http.post(f"{server.url}/api/repos/create", json={"name": f"ro-{uuid.uuid4().hex[:6]}"}, headers=auth(alice_read_token))
    assert created.status_code == 403
    assert HfApi(endpoint=server.url, token=alice_read_token).whoami()["auth"]["accessToken"]["role"] == "read"
    assert head_sha(server, repo_id, alice_token) == before


def repo_writes(repo_id: str) -> dict[str, tuple[str, str, dict | None]]:
    """Writes other than commits, each as (method, path, json body)."""
    oid = hashlib.sha256(b"never sent").hexdigest()
    lfs = f"/{repo_id}.git/info/lfs/objects"
    return {
        "lfs batch upload": ("POST", f"{lfs}/batch", {"operation": "upload", "objects": [{"oid": oid, "size": 10}]}),
        "lfs verify": ("POST", f"{lfs}/verify", {"oid": oid, "size": 10}),
        "create branch": ("POST", f"/api/models/{repo_id}/branch/ro-branch", {}),
        "delete branch": ("DELETE", f"/api/models/{repo_id}/branch/ro-branch", None),
        "create tag": ("POST", f"/api/models/{repo_id}/tag/main", {"tag": "ro-tag"}),
        "delete tag": ("DELETE", f"/api/models/{repo_id}/tag/ro-tag", None),
        "settings": ("PUT", f"/api/models/{repo_id}/settings", {"private": True}),
    }


def test_read_token_is_refused_lfs_branches_tags_and_settings(server: Server, repos: dict[str, str],
                                                              alice_read_token: str, alice_token: str) -> None:
    repo_id = repos["private"]
    for name, (method, path, body) in repo_writes(repo_id).items():  # in order: what is created is then deleted
        refused = http.request(method, server.url + path, json=body, headers=auth(alice_read_token))
        assert refused.status_code == 403, (name, refused.status_code, refused.text)
        allowed = http.request(method, server.url + path, json=body, headers=auth(alice_token))
        # The same request with a write token gets past the authorisation (verify: the object is missing).
        assert allowed.status_code == (404 if name == "lfs verify" else 200), (name, allowed.status_code, allowed.text)


def test_owner_with_write_token_writes(server: Server, repos: dict[str, str], alice_token: str) -> None:
    for repo_id in (repos["private"], repos["org"]):
        response = http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit_body("w.txt", b"w"),
                             headers=auth(alice_token))
        assert response.status_code == 200
        assert head_sha(server, repo_id, alice_token) == response.json()["commitOid"]
        assert http.get(f"{server.url}/api/models/{repo_id}/auth-check/write", headers=auth(alice_token)).status_code == 200


def test_writes_to_public_repo_of_someone_else(server: Server, repos: dict[str, str], bob_token: str, alice_token: str) -> None:
    repo_id = repos["public"]
    before = head_sha(server, repo_id, alice_token)
    assert http.get(f"{server.url}/api/models/{repo_id}", headers=auth(bob_token)).status_code == 200
    assert http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit_body(), headers=auth(bob_token)).status_code == 403
    anonymous = http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=commit_body())
    assert anonymous.status_code == 401
    assert head_sha(server, repo_id, alice_token) == before


@pytest.mark.parametrize("header", [
    "Bearer hg_not-a-real-token",
    "Bearer " + "x" * 300,
    "Token abc",
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"alice:hg_wrong").decode(),
])
def test_bad_token_is_401_invalid_credentials(server: Server, repos: dict[str, str], header: str) -> None:
    for path in ("/api/whoami-v2", f"/api/models/{repos['public']}", f"/{repos['public']}/resolve/main/file.txt",
                 f"/api/models/{repos['private']}"):
        response = http.get(server.url + path, headers={"Authorization": header})
        assert response.status_code == 401, path
        assert response.headers["X-Error-Message"] == BAD_CREDENTIALS
        assert "error" in response.json()


def test_bad_token_with_hf_client(server: Server, repos: dict[str, str]) -> None:
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(endpoint=server.url, token="hg_not-a-real-token").model_info(repos["public"])
    assert raised.value.response.status_code == 401


def test_basic_auth_accepted(server: Server, repos: dict[str, str], alice_token: str) -> None:
    for user in ("alice", "anyone", ""):
        basic = "Basic " + base64.b64encode(f"{user}:{alice_token}".encode()).decode()
        me = http.get(f"{server.url}/api/whoami-v2", headers={"Authorization": basic})
        assert me.status_code == 200 and me.json()["name"] == "alice"
        assert http.get(f"{server.url}/{repos['private']}/resolve/main/file.txt", headers={"Authorization": basic}).content == b"content"


def _token_row(server: Server, name: str) -> tuple[int, str | None, str | None]:
    """(id, expires_at, revoked_at) of the token named `name`, read from the server's database."""
    return server.sql("SELECT id, expires_at, revoked_at FROM tokens WHERE name = :name", name=name)[0]


def test_revoked_token(server: Server, repos: dict[str, str]) -> None:
    name = f"to-revoke-{uuid.uuid4().hex[:6]}"
    token = new_token(server, "alice", "--role", "write", "--name", name)
    assert http.get(f"{server.url}/api/models/{repos['private']}", headers=auth(token)).status_code == 200
    token_id, _, revoked_at = _token_row(server, name)
    assert revoked_at is None
    hubgate(server, "token", "revoke", str(token_id))  # while the server runs
    for path in ("/api/whoami-v2", f"/api/models/{repos['private']}", f"/api/models/{repos['public']}"):
        response = http.get(server.url + path, headers=auth(token))
        assert response.status_code == 401
        assert response.headers["X-Error-Message"] == BAD_CREDENTIALS
    assert _token_row(server, name)[2] is not None


def _server_time(server: Server) -> float:
    """The server's clock, from its `Date` header (whole seconds, never ahead of the true time)."""
    date = http.get(f"{server.url}/healthz").headers["Date"]
    return email.utils.parsedate_to_datetime(date).timestamp()


def test_expired_token(server: Server, repos: dict[str, str]) -> None:
    name = f"short-{uuid.uuid4().hex[:6]}"
    token = new_token(server, "alice", "--role", "write", "--name", name, "--expires", "1s")
    expires_at = _token_row(server, name)[1]
    if not isinstance(expires_at, datetime):  # SQLite gives text, PostgreSQL a datetime
        expires_at = datetime.fromisoformat(expires_at)
    deadline = expires_at.replace(tzinfo=timezone.utc).timestamp()
    # poll the server's own clock until it is past the expiry (bounded), then the token must fail
    for _ in range(600):
        if _server_time(server) > deadline:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the server clock never passed the token's expiry")
    response = http.get(f"{server.url}/api/whoami-v2", headers=auth(token))
    assert response.status_code == 401
    assert response.headers["X-Error-Message"] == BAD_CREDENTIALS
    assert http.get(f"{server.url}/api/models/{repos['public']}", headers=auth(token)).status_code == 401


def test_token_with_future_expiry_works(server: Server, repos: dict[str, str]) -> None:
    token = new_token(server, "alice", "--role", "read", "--expires", "30d")
    assert http.get(f"{server.url}/api/models/{repos['private']}", headers=auth(token)).status_code == 200


# -- nothing of a private repo is reachable through another repo -----------------------------------

def _commit(server: Server, token: str, repo_id: str, *lines: dict) -> httpx.Response:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in [{"key": "header", "value": {"summary": "t"}}, *lines])
    return http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=body,
                     headers={**auth(token), "Content-Type": "application/x-ndjson"})


def _lfs_batch(server: Server, token: str, repo_id: str, oid: str, size: int, operation: str) -> dict:
    response = http.post(f"{server.url}/{repo_id}.git/info/lfs/objects/batch", headers=auth(token),
                         json={"operation": operation, "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]})
    assert response.status_code == 200, response.text
    return response.json()["objects"][0]


@pytest.fixture(scope="module")
def secret(server: Server, alice_token: str) -> dict:
    """A private repo of alice with a secret regular file and a secret LFS object (uploaded by the batch API)."""
    repo_id = f"alice/vault-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.url, token=alice_token).create_repo(repo_id, private=True)
    data = b"secret weights " + uuid.uuid4().bytes * 64
    oid = hashlib.sha256(data).hexdigest()
    answer = _lfs_batch(server, alice_token, repo_id, oid, len(data), "upload")
    assert httpx.put(answer["actions"]["upload"]["href"], content=data).status_code == 200
    response = _commit(server, alice_token, repo_id,
                       {"key": "lfsFile", "value": {"path": "weights.bin", "algo": "sha256", "oid": oid, "size": len(data)}},
                       {"key": "file", "value": {"path": "secret.txt", "content": base64.b64encode(b"the secret").decode()}})
    assert response.status_code == 200, response.text
    return {"id": repo_id, "sha": response.json()["commitOid"], "data": data, "oid": oid}


@pytest.fixture(scope="module")
def bob_repo(server: Server, bob_token: str) -> str:
    repo_id = f"bob/open-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.url, token=bob_token).create_repo(repo_id)
    return repo_id


def test_private_commit_id_not_reachable_through_another_repo(server: Server, secret: dict, bob_repo: str,
                                                             bob_token: str, alice_token: str) -> None:
    sha = secret["sha"]
    # in its own repo the commit id works
    own = http.get(f"{server.url}/{secret['id']}/resolve/{sha}/secret.txt", headers=auth(alice_token))
    assert own.status_code == 200 and own.content == b"the secret"
    for headers in ({}, auth(bob_token)):
        for path in (f"/{bob_repo}/resolve/{sha}/secret.txt", f"/{bob_repo}/resolve/{sha}/weights.bin",
                     f"/api/models/{bob_repo}/revision/{sha}", f"/api/models/{bob_repo}/tree/{sha}",
                     f"/api/models/{bob_repo}/commits/{sha}"):
            response = http.get(server.url + path, headers=headers)
            assert (response.status_code, response.headers.get("X-Error-Code")) == (404, "RevisionNotFound"), path
            assert b"the secret" not in response.content
        response = http.post(f"{server.url}/api/models/{bob_repo}/paths-info/{sha}", data={"paths": ["secret.txt"]},
                             headers=headers)
        assert response.status_code == 404
    for path, body in ((f"/api/models/{bob_repo}/branch/stolen", {"startingPoint": sha}),
                       (f"/api/models/{bob_repo}/tag/{sha}", {"tag": "stolen"})):
        response = http.post(server.url + path, json=body, headers=auth(bob_token))
        assert (response.status_code, response.headers.get("X-Error-Code")) == (404, "RevisionNotFound"), path
    refs = http.get(f"{server.url}/api/models/{bob_repo}/refs").json()
    assert [b["name"] for b in refs["branches"]] == ["main"] and refs["tags"] == []


def test_private_lfs_object_not_reachable_through_another_repo(server: Server, secret: dict, bob_repo: str,
                                                               bob_token: str) -> None:
    oid, data = secret["oid"], secret["data"]
    before = http.get(f"{server.url}/api/models/{bob_repo}").json()["sha"]
    # no download URL for it through bob's repo
    answer = _lfs_batch(server, bob_token, bob_repo, oid, len(data), "download")
    assert "actions" not in answer and answer["error"]["code"] == 404
    # asking to upload it does not reveal that it is stored here: bob is asked for the bytes
    answer = _lfs_batch(server, bob_token, bob_repo, oid, len(data), "upload")
    assert "upload" in answer["actions"]
    verify = http.post(answer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)}, headers=auth(bob_token))
    assert verify.status_code == 404
    # a commit cannot point at it without uploading it, neither as an lfsFile nor as a pointer file
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()
    for line in ({"key": "lfsFile", "value": {"path": "loot.bin", "algo": "sha256", "oid": oid, "size": len(data)}},
                 {"key": "lfsFile", "value": {"path": "loot.bin", "algo": "sha256", "oid": oid}},
                 {"key": "file", "value": {"path": "loot.txt", "content": base64.b64encode(pointer).decode()}}):
        response = _commit(server, bob_token, bob_repo, line)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
    assert http.get(f"{server.url}/api/models/{bob_repo}").json()["sha"] == before
    assert http.head(f"{server.url}/{bob_repo}/resolve/main/loot.bin").status_code == 404
    # whoever has the bytes may of course upload them (the store keeps one copy) and commit them
    assert httpx.put(answer["actions"]["upload"]["href"], content=data).status_code == 200
    assert http.post(answer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)},
                     headers=auth(bob_token)).status_code == 200
    response = _commit(server, bob_token, bob_repo,
                       {"key": "lfsFile", "value": {"path": "mine.bin", "algo": "sha256", "oid": oid, "size": len(data)}})
    assert response.status_code == 200
    assert http.get(f"{server.url}/{bob_repo}/resolve/main/mine.bin").content == data


def test_gated_repo_files_need_access(server: Server, alice_token: str, bob_token: str, carol_token: str,
                                      tmp_path: Path) -> None:
    """A gated repo stays visible (info, tree), but its files are for its namespace's members only."""
    api = HfApi(endpoint=server.url, token=alice_token)
    repo_id = f"acme/gated-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    api.create_commit(repo_id, [CommitOperationAdd("file.txt", b"gated content")], commit_message="seed")
    api.update_repo_settings(repo_id, gated="manual")
    for headers, status in (({}, 401), (auth(bob_token), 403)):
        info = http.get(f"{server.url}/api/models/{repo_id}", headers=headers)
        assert info.status_code == 200 and info.json()["gated"] == "manual"
        assert http.get(f"{server.url}/api/models/{repo_id}/tree/main", headers=headers).status_code == 200
        for method, path in (("GET", f"/{repo_id}/resolve/main/file.txt"), ("HEAD", f"/{repo_id}/resolve/main/file.txt"),
                             ("GET", f"/api/models/{repo_id}/auth-check")):
            response = http.request(method, server.url + path, headers=headers)
            assert (response.status_code, response.headers.get("X-Error-Code")) == (status, "GatedRepo"), (method, path)
            assert b"gated content" not in response.content
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "file.txt", endpoint=server.url, token=bob_token, cache_dir=tmp_path)
    with pytest.raises(GatedRepoError):
        HfApi(endpoint=server.url, token=False).auth_check(repo_id)
    # members (carol reads acme) and the owner get the files
    for token in (carol_token, alice_token):
        assert http.get(f"{server.url}/{repo_id}/resolve/main/file.txt", headers=auth(token)).content == b"gated content"
        assert http.get(f"{server.url}/api/models/{repo_id}/auth-check", headers=auth(token)).status_code == 200
    api.update_repo_settings(repo_id, gated=False)
    assert http.get(f"{server.url}/{repo_id}/resolve/main/file.txt").content == b"gated content"
