"""Write API conformance (hub-protocol §5-6): repo lifecycle, branches, tags, preupload, commits, LFS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import uuid
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from conftest import Server

http = httpx.Client(timeout=60)  # one client: a new one per request costs ~0.1 s
LFS_JSON = "application/vnd.git-lfs+json"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ndjson(*lines: dict) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def header(summary: str = "update", parent: str | None = None) -> dict:
    value: dict = {"summary": summary, "description": ""}
    if parent is not None:
        value["parentCommit"] = parent
    return {"key": "header", "value": value}


def file_line(path: str, data: bytes) -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


def post_commit(server: Server, token: str, repo_id: str, *lines: dict, revision: str = "main",
                repo_type: str = "models") -> httpx.Response:
    return http.post(f"{server.url}/api/{repo_type}/{repo_id}/commit/{quote(revision, safe='')}", content=ndjson(*lines),
                     headers={**auth(token), "Content-Type": "application/x-ndjson"})


def head_of(server: Server, token: str, repo_id: str, branch: str = "main") -> str:
    response = http.get(f"{server.url}/api/models/{repo_id}/revision/{quote(branch, safe='')}", headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()["sha"]


def files_of(server: Server, token: str, repo_id: str, rev: str = "main") -> dict[str, bytes]:
    tree = http.get(f"{server.url}/api/models/{repo_id}/tree/{quote(rev, safe='')}", params={"recursive": "true"},
                    headers=auth(token)).json()
    return {e["path"]: http.get(f"{server.url}/{repo_id}/resolve/{quote(rev, safe='')}/{e['path']}", headers=auth(token)).content
            for e in tree if e["type"] == "file"}


def new_repo(server: Server, token: str, name: str | None = None, **body) -> str:
    name = name or unique("w")
    response = http.post(f"{server.url}/api/repos/create", json={"name": name, **body}, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()["url"].removeprefix(server.url + "/")


# -- create / delete / move / settings ---------------------------------------------------------

@pytest.mark.parametrize("body", [{"private": True}, {"visibility": "private"}])
def test_create_private(server: Server, alice_token: str, body: dict) -> None:
    name = unique("priv")
    response = http.post(f"{server.url}/api/repos/create", json={"name": name, "organization": None, **body},
                         headers=auth(alice_token))
    assert response.status_code == 200
    assert response.json()["url"] == f"{server.url}/alice/{name}"
    info = http.get(f"{server.url}/api/models/alice/{name}", headers=auth(alice_token)).json()
    assert info["private"] is True
    anonymous = http.get(f"{server.url}/api/models/alice/{name}")
    assert (anonymous.status_code, anonymous.headers["X-Error-Code"]) == (401, "RepoNotFound")


@pytest.mark.parametrize("body", [{}, {"private": False}, {"visibility": "public"}])
def test_create_public(server: Server, alice_token: str, body: dict) -> None:
    name = unique("pub")
    assert http.post(f"{server.url}/api/repos/create", json={"name": name, **body}, headers=auth(alice_token)).status_code == 200
    info = http.get(f"{server.url}/api/models/alice/{name}")
    assert info.status_code == 200 and info.json()["private"] is False


def test_new_repo_holds_gitattributes(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    files = files_of(server, alice_token, repo_id)
    assert list(files) == [".gitattributes"]
    assert b"*.safetensors filter=lfs diff=lfs merge=lfs -text" in files[".gitattributes"]
    commits = http.get(f"{server.url}/api/models/{repo_id}/commits/main").json()
    assert len(commits) == 1


def test_create_dataset_and_space_urls(server: Server, alice_token: str) -> None:
    name = unique("typed")
    dataset = http.post(f"{server.url}/api/repos/create", json={"name": name, "type": "dataset"}, headers=auth(alice_token))
    assert dataset.json()["url"] == f"{server.url}/datasets/alice/{name}"
    space = http.post(f"{server.url}/api/repos/create", json={"name": name, "type": "space", "sdk": "gradio"},
                      headers=auth(alice_token))
    assert space.json()["url"] == f"{server.url}/spaces/alice/{name}"
    assert http.get(f"{server.url}/api/spaces/alice/{name}").json()["sdk"] == "gradio"
    assert http.get(f"{server.url}/api/datasets/alice/{name}").status_code == 200
    # the model of the same name does not exist
    assert http.get(f"{server.url}/api/models/alice/{name}").status_code == 401
    api = HfApi(endpoint=server.url, token=alice_token)
    assert api.dataset_info(f"alice/{name}").id == f"alice/{name}"
    assert api.create_repo(f"alice/{name}", repo_type="dataset", exist_ok=True).repo_type == "dataset"


def test_create_conflict_has_url_and_exist_ok_works(server: Server, alice_token: str) -> None:
    name = unique("dup")
    new_repo(server, alice_token, name)
    response = http.post(f"{server.url}/api/repos/create", json={"name": name}, headers=auth(alice_token))
    assert response.status_code == 409
    assert response.json()["url"] == f"{server.url}/alice/{name}"
    assert isinstance(response.json()["error"], str)
    api = HfApi(endpoint=server.url, token=alice_token)
    assert str(api.create_repo(f"alice/{name}", exist_ok=True)) == f"{server.url}/alice/{name}"
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_repo(f"alice/{name}")
    assert raised.value.response.status_code == 409


def test_create_in_org_and_for_others(server: Server, alice_token: str, bob_token: str, carol_token: str) -> None:
    name = unique("org")
    response = http.post(f"{server.url}/api/repos/create", json={"name": name, "organization": "acme"}, headers=auth(alice_token))
    assert response.status_code == 200 and response.json()["url"] == f"{server.url}/acme/{name}"
    assert HfApi(endpoint=server.url, token=alice_token).repo_exists(f"acme/{name}")
    for token, namespace in ((bob_token, "acme"), (carol_token, "acme"), (bob_token, "alice")):
        refused = http.post(f"{server.url}/api/repos/create", json={"name": unique("no"), "organization": namespace},
                            headers=auth(token))
        assert refused.status_code == 403, (namespace, refused.text)
    assert http.post(f"{server.url}/api/repos/create", json={"name": unique("anon")}).status_code == 401


def test_delete_then_missing(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    name = repo_id.split("/")[1]
    assert http.request("DELETE", f"{server.url}/api/repos/delete", json={"name": name, "organization": "alice"},
                        headers=auth(alice_token)).status_code == 200
    gone = http.get(f"{server.url}/api/models/{repo_id}", headers=auth(alice_token))
    assert (gone.status_code, gone.headers["X-Error-Code"]) == (404, "RepoNotFound")
    again = http.request("DELETE", f"{server.url}/api/repos/delete", json={"name": name, "organization": "alice"},
                         headers=auth(alice_token))
    assert (again.status_code, again.headers["X-Error-Code"]) == (404, "RepoNotFound")
    # the name can be used again, for a new repo with a fresh history
    new_repo(server, alice_token, name)
    assert len(http.get(f"{server.url}/api/models/{repo_id}/commits/main").json()) == 1
    api = HfApi(endpoint=server.url, token=alice_token)
    api.delete_repo(repo_id)
    assert not api.repo_exists(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo_id)
    api.delete_repo(repo_id, missing_ok=True)


def test_delete_by_others_refused(server: Server, alice_token: str, bob_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    name = repo_id.split("/")[1]
    response = http.request("DELETE", f"{server.url}/api/repos/delete", json={"name": name, "organization": "alice"},
                            headers=auth(bob_token))
    assert response.status_code == 403
    response = http.request("DELETE", f"{server.url}/api/repos/delete", json={"name": name, "organization": "alice"})
    assert response.status_code == 401
    assert http.get(f"{server.url}/api/models/{repo_id}").status_code == 200


def test_move(server: Server, alice_token: str, bob_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    source = new_repo(server, alice_token)
    api.create_commit(source, [CommitOperationAdd("kept.txt", b"kept")], commit_message="add")
    api.create_tag(source, tag="v1")
    sha = head_of(server, alice_token, source)
    target = f"acme/{unique('moved')}"
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=server.url, token=bob_token).move_repo(source, f"bob/{unique('stolen')}")
    api.move_repo(source, target)
    assert api.model_info(source).id == target  # as on the Hub, the old name redirects to the new one
    assert head_of(server, alice_token, target) == sha
    assert files_of(server, alice_token, target)["kept.txt"] == b"kept"
    assert http.get(f"{server.url}/{target}/resolve/v1/kept.txt").content == b"kept"
    # moving onto an existing repo is a conflict, and leaves both alone
    other = new_repo(server, alice_token)
    response = http.post(f"{server.url}/api/repos/move", json={"fromRepo": target, "toRepo": other, "type": "model"},
                         headers=auth(alice_token))
    assert response.status_code == 409
    assert head_of(server, alice_token, target) == sha
    # moving into a namespace one cannot write is refused
    response = http.post(f"{server.url}/api/repos/move", json={"fromRepo": target, "toRepo": f"bob/{unique('x')}",
                                                                 "type": "model"}, headers=auth(alice_token))
    assert response.status_code == 403
    assert api.repo_exists(target)
    missing = http.post(f"{server.url}/api/repos/move", json={"fromRepo": "alice/nope-nope", "toRepo": "alice/other-nope",
                                                                "type": "model"}, headers=auth(alice_token))
    assert (missing.status_code, missing.headers.get("X-Error-Code")) == (404, "RepoNotFound")


def test_settings_toggle_private(server: Server, alice_token: str, bob_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    api = HfApi(endpoint=server.url, token=alice_token)
    api.update_repo_settings(repo_id, private=True)
    assert http.get(f"{server.url}/api/models/{repo_id}").status_code == 401
    assert api.model_info(repo_id).private is True
    api.update_repo_settings(repo_id, visibility="public")
    assert http.get(f"{server.url}/api/models/{repo_id}").json()["private"] is False
    response = http.put(f"{server.url}/api/models/{repo_id}/settings", json={"private": True}, headers=auth(alice_token))
    assert response.status_code == 200
    assert http.get(f"{server.url}/api/models/{repo_id}").status_code == 401
    response = http.put(f"{server.url}/api/models/{repo_id}/settings", json={"visibility": "public"}, headers=auth(bob_token))
    assert response.status_code == 404
    api.update_repo_settings(repo_id, private=False)
    response = http.put(f"{server.url}/api/models/{repo_id}/settings", json={"private": True}, headers=auth(bob_token))
    assert response.status_code == 403
    assert http.get(f"{server.url}/api/models/{repo_id}").json()["private"] is False
    api.update_repo_settings(repo_id, gated="auto")
    assert http.get(f"{server.url}/api/models/{repo_id}").json()["gated"] == "auto"
    api.update_repo_settings(repo_id, gated=False)
    assert http.get(f"{server.url}/api/models/{repo_id}").json()["gated"] is False


# -- branches and tags -------------------------------------------------------------------------

def test_branches(server: Server, alice_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo_id = new_repo(server, alice_token)
    first = head_of(server, alice_token, repo_id)
    second = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="a").oid
    base = f"{server.url}/api/models/{repo_id}/branch"
    assert http.post(f"{base}/dev", json={}, headers=auth(alice_token)).status_code == 200
    assert head_of(server, alice_token, repo_id, "dev") == second
    conflict = http.post(f"{base}/dev", json={}, headers=auth(alice_token))
    assert conflict.status_code == 409 and "error" in conflict.json()
    assert http.post(f"{base}/old", json={"startingPoint": first}, headers=auth(alice_token)).status_code == 200
    assert head_of(server, alice_token, repo_id, "old") == first
    assert http.post(f"{base}/nobody", headers=auth(alice_token)).status_code == 200  # no body: from main
    missing_start = http.post(f"{base}/bad", json={"startingPoint": "nope"}, headers=auth(alice_token))
    assert (missing_start.status_code, missing_start.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    with pytest.raises(HfHubHTTPError):
        api.create_branch(repo_id, branch="dev")
    # a commit on a branch leaves main alone
    on_dev = api.create_commit(repo_id, [CommitOperationAdd("dev.txt", b"d")], commit_message="d", revision="dev").oid
    assert head_of(server, alice_token, repo_id, "dev") == on_dev
    assert head_of(server, alice_token, repo_id) == second
    deleted = http.delete(f"{base}/dev", headers=auth(alice_token))
    assert deleted.status_code == 200
    assert http.get(f"{server.url}/api/models/{repo_id}/revision/dev").status_code == 404
    assert http.delete(f"{base}/dev", headers=auth(alice_token)).status_code == 404
    main = http.delete(f"{base}/main", headers=auth(alice_token))
    assert main.status_code == 403
    assert "Cannot delete refs/heads/main" in main.json()["error"]
    assert head_of(server, alice_token, repo_id) == second
    branches = {b.name for b in api.list_repo_refs(repo_id).branches}
    assert branches == {"main", "old", "nobody"}


def test_tags(server: Server, alice_token: str, bob_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo_id = new_repo(server, alice_token)
    first = head_of(server, alice_token, repo_id)
    second = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="a").oid
    base = f"{server.url}/api/models/{repo_id}/tag"
    assert http.post(f"{base}/main", json={"tag": "v2", "message": "two"}, headers=auth(alice_token)).status_code == 200
    assert http.post(f"{base}/{first}", json={"tag": "v1"}, headers=auth(alice_token)).status_code == 200
    assert http.post(f"{base}/main", json={"tag": "v2"}, headers=auth(alice_token)).status_code == 409
    missing = http.post(f"{base}/nope", json={"tag": "v3"}, headers=auth(alice_token))
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    assert http.post(f"{base}/main", json={"tag": "v9"}, headers=auth(bob_token)).status_code == 403
    tags = {t.name: t.target_commit for t in api.list_repo_refs(repo_id).tags}
    assert tags == {"v1": first, "v2": second}
    api.create_tag(repo_id, tag="release/1.0", revision=first)
    assert http.get(f"{server.url}/{repo_id}/resolve/{quote('release/1.0', safe='')}/.gitattributes").status_code == 200
    api.create_tag(repo_id, tag="v2", exist_ok=True)
    assert http.delete(f"{base}/v2", headers=auth(alice_token)).status_code == 200
    assert http.delete(f"{base}/v2", headers=auth(alice_token)).status_code == 404
    api.delete_tag(repo_id, tag="release/1.0")
    assert {t.name for t in api.list_repo_refs(repo_id).tags} == {"v1"}
    assert head_of(server, alice_token, repo_id) == second


# -- preupload and commits ---------------------------------------------------------------------

def test_preupload(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    lfs_data = os.urandom(3000)
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_commit(repo_id, [CommitOperationAdd("same.txt", b"same"), CommitOperationAdd("model.bin", lfs_data)],
                      commit_message="seed")
    body = {"files": [
        {"path": "same.txt", "sample": base64.b64encode(b"same").decode(), "size": 4},
        {"path": "new.txt", "sample": base64.b64encode(b"new").decode(), "size": 3},
        {"path": "model.bin", "sample": base64.b64encode(lfs_data[:512]).decode(), "size": 3000},
        {"path": "empty.bin", "sample": "", "size": 0},
    ]}
    response = http.post(f"{server.url}/api/models/{repo_id}/preupload/main", json=body,
                         headers={**auth(alice_token), "User-Agent": "git-lfs-like/1.0"})
    assert response.status_code == 200
    answers = {f["path"]: f for f in response.json()["files"]}
    assert all(f["shouldIgnore"] is False for f in answers.values())
    assert answers["same.txt"]["uploadMode"] == "regular"
    assert answers["same.txt"]["oid"] == hashlib.sha1(b"blob 4\0same").hexdigest()
    assert answers["new.txt"]["uploadMode"] == "regular" and "oid" not in answers["new.txt"]
    assert answers["model.bin"]["uploadMode"] == "lfs"
    assert answers["model.bin"]["oid"] == hashlib.sha256(lfs_data).hexdigest()
    assert answers["empty.bin"]["uploadMode"] == "regular"
    # huggingface_hub 2.4 sends "lfs" files through Xet: the same answer (preupload is client-blind)
    modern = http.post(f"{server.url}/api/models/{repo_id}/preupload/main", json=body,
                       headers={**auth(alice_token), "User-Agent": "unknown/None; hf_hub/2.4.0; python/3.11"})
    assert modern.json()["files"] == response.json()["files"]
    # reading is not enough to preupload
    assert http.post(f"{server.url}/api/models/{repo_id}/preupload/main", json=body).status_code == 401


def test_ndjson_commit_all_operations(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    setup = post_commit(server, alice_token, repo_id, header("setup"), file_line("keep.txt", b"keep"),
                        file_line("gone.txt", b"gone"), file_line("folder/a.txt", b"a"), file_line("folder/sub/b.txt", b"b"))
    assert setup.status_code == 200
    parent = setup.json()["commitOid"]
    blob = os.urandom(2048)
    oid = lfs_upload(server, alice_token, repo_id, blob)
    response = post_commit(
        server, alice_token, repo_id,
        header("all ops", parent),
        file_line("new/inline.txt", b"inline"),
        {"key": "lfsFile", "value": {"path": "new/big.dat", "algo": "sha256", "oid": oid, "size": len(blob)}},
        {"key": "deletedFile", "value": {"path": "gone.txt"}},
        {"key": "deletedFolder", "value": {"path": "folder/"}},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    sha = result["commitOid"]
    assert len(sha) == 40 and sha != parent
    assert result["commitUrl"] == f"{server.url}/{repo_id}/commit/{sha}"
    assert result["pullRequestUrl"] is None
    assert files_of(server, alice_token, repo_id) == {".gitattributes": files_of(server, alice_token, repo_id)[".gitattributes"],
                                                      "keep.txt": b"keep", "new/inline.txt": b"inline", "new/big.dat": blob}
    tree = http.get(f"{server.url}/api/models/{repo_id}/tree/main/new").json()
    big = next(e for e in tree if e["path"] == "new/big.dat")
    assert big["lfs"]["oid"] == oid and big["size"] == len(blob)
    head = http.head(f"{server.url}/{repo_id}/resolve/main/new/big.dat")
    assert head.headers["ETag"] == f'"{oid}"' and head.headers["Content-Length"] == str(len(blob))
    commits = http.get(f"{server.url}/api/models/{repo_id}/commits/main").json()
    assert [c["id"] for c in commits[:2]] == [sha, parent] and commits[0]["title"] == "all ops"


def test_commit_to_dataset(server: Server, alice_token: str) -> None:
    name = unique("ds")
    http.post(f"{server.url}/api/repos/create", json={"name": name, "type": "dataset"}, headers=auth(alice_token))
    response = post_commit(server, alice_token, f"alice/{name}", header(), file_line("data.csv", b"a,b\n1,2\n"),
                           repo_type="datasets")
    assert response.status_code == 200
    assert response.json()["commitUrl"].startswith(f"{server.url}/datasets/alice/{name}/commit/")
    assert http.get(f"{server.url}/datasets/alice/{name}/resolve/main/data.csv").content == b"a,b\n1,2\n"


def test_parent_commit_mismatch(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    old = head_of(server, alice_token, repo_id)
    new = post_commit(server, alice_token, repo_id, header("one", old), file_line("a.txt", b"1")).json()["commitOid"]
    response = post_commit(server, alice_token, repo_id, header("stale", old), file_line("a.txt", b"2"))
    assert response.status_code == 412
    assert "The branch was updated since you opened this page" in response.json()["error"]
    assert head_of(server, alice_token, repo_id) == new
    api = HfApi(endpoint=server.url, token=alice_token)
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"3")], commit_message="stale", parent_commit=old)
    assert raised.value.response.status_code == 412
    assert files_of(server, alice_token, repo_id)["a.txt"] == b"1"


def test_delete_missing_file_or_folder(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    before = head_of(server, alice_token, repo_id)
    for line in ({"key": "deletedFile", "value": {"path": "missing.txt"}},
                 {"key": "deletedFolder", "value": {"path": "missing/"}}):
        response = post_commit(server, alice_token, repo_id, header(), line)
        assert (response.status_code, response.headers["X-Error-Code"]) == (404, "EntryNotFound")
    api = HfApi(endpoint=server.url, token=alice_token)
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_commit(repo_id, [CommitOperationDelete("missing.txt")], commit_message="x")
    assert raised.value.response.status_code == 404
    assert head_of(server, alice_token, repo_id) == before


def test_commit_to_missing_branch_and_by_others(server: Server, alice_token: str, bob_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    before = head_of(server, alice_token, repo_id)
    response = post_commit(server, alice_token, repo_id, header(), file_line("a.txt", b"a"), revision="nope")
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    assert post_commit(server, bob_token, repo_id, header(), file_line("a.txt", b"a")).status_code == 403
    anonymous = http.post(f"{server.url}/api/models/{repo_id}/commit/main", content=ndjson(header(), file_line("a.txt", b"a")))
    assert anonymous.status_code == 401
    assert head_of(server, alice_token, repo_id) == before


def test_concurrent_commits_lose_nothing(server: Server, alice_token: str) -> None:
    """Many writers at once: on one branch, on a second branch and on another repo; every commit lands."""
    repo_id, other_repo = new_repo(server, alice_token), new_repo(server, alice_token)
    assert http.post(f"{server.url}/api/models/{repo_id}/branch/dev", json={}, headers=auth(alice_token)).status_code == 200
    # 24 writers on main: enough that optimistic retries alone used to run out (409)
    jobs = [(repo_id, "main", i) for i in range(24)] + [(repo_id, "dev", i) for i in range(6)] + [(other_repo, "main", i) for i in range(6)]
    results: dict[tuple[str, str, int], httpx.Response] = {}
    barrier = threading.Barrier(len(jobs))

    def commit(job: tuple[str, str, int]) -> None:
        repo, branch, i = job
        with httpx.Client(timeout=120) as client:
            barrier.wait()
            results[job] = client.post(f"{server.url}/api/models/{repo}/commit/{branch}",
                                       content=ndjson(header(f"c{i}"), file_line(f"{branch}/f{i}.txt", str(i).encode())),
                                       headers={**auth(alice_token), "Content-Type": "application/x-ndjson"})

    threads = [threading.Thread(target=commit, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {job: results[job].status_code for job in jobs} == {job: 200 for job in jobs}, [r.text for r in results.values()]
    for repo, branch in ((repo_id, "main"), (repo_id, "dev"), (other_repo, "main")):
        mine = [job for job in jobs if job[:2] == (repo, branch)]
        files = files_of(server, alice_token, repo, branch)
        assert {f"{branch}/f{i}.txt": str(i).encode() for _, _, i in mine}.items() <= files.items()
        assert not any(p.startswith("dev/" if branch == "main" else "main/") for p in files)
        commits = http.get(f"{server.url}/api/models/{repo}/commits/{branch}").json()
        assert len(commits) == len(mine) + 1
        assert {c["id"] for c in commits} >= {results[job].json()["commitOid"] for job in mine}


def test_copy_within_a_repo(server: Server, alice_token: str) -> None:
    """huggingface_hub's CommitOperationCopy: an LFS file is copied by oid alone (no upload), a regular one by content."""
    api = HfApi(endpoint=server.url, token=alice_token)
    repo_id = new_repo(server, alice_token)
    weights = os.urandom(4000)
    api.create_commit(repo_id, [CommitOperationAdd("model.bin", weights), CommitOperationAdd("notes.txt", b"notes")],
                      commit_message="add")
    api.create_commit(repo_id, [CommitOperationCopy("model.bin", "copy/model.bin"), CommitOperationCopy("notes.txt", "copy/notes.txt")],
                      commit_message="copy")
    files = files_of(server, alice_token, repo_id)
    assert files["copy/model.bin"] == weights and files["copy/notes.txt"] == b"notes"
    tree = {e["path"]: e for e in http.get(f"{server.url}/api/models/{repo_id}/tree/main/copy").json()}
    assert tree["copy/model.bin"]["lfs"]["oid"] == hashlib.sha256(weights).hexdigest()


def test_hf_api_round_trip_with_folder_ops(server: Server, alice_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo_id = new_repo(server, alice_token)
    api.create_commit(repo_id, [CommitOperationAdd("d/x.txt", b"x"), CommitOperationAdd("d/y.txt", b"y"),
                                CommitOperationAdd("z.txt", b"z")], commit_message="add")
    api.delete_folder("d", repo_id=repo_id)
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "z.txt"]
    api.delete_file("z.txt", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == [".gitattributes"]


# -- LFS batch upload ----------------------------------------------------------------------------

def lfs_batch(server: Server, token: str | None, repo_id: str, objects: list[dict], operation: str = "upload") -> httpx.Response:
    headers = {"Accept": LFS_JSON, "Content-Type": LFS_JSON, **(auth(token) if token else {})}
    return http.post(f"{server.url}/{repo_id}.git/info/lfs/objects/batch", headers=headers,
                     json={"operation": operation, "transfers": ["basic", "multipart"], "objects": objects,
                           "hash_algo": "sha256", "ref": {"name": "main"}})


def lfs_upload(server: Server, token: str, repo_id: str, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    answer = lfs_batch(server, token, repo_id, [{"oid": oid, "size": len(data)}]).json()["objects"][0]
    if "actions" in answer:
        put = httpx.put(answer["actions"]["upload"]["href"], content=data)  # no Authorization on purpose
        assert put.status_code in (200, 201), put.text
        verify = http.post(answer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)}, headers=auth(token))
        assert verify.status_code == 200, verify.text
    return oid


def test_lfs_basic_upload(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    data = os.urandom(50_000)
    oid = hashlib.sha256(data).hexdigest()
    response = lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}])
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(LFS_JSON)
    body = response.json()
    assert body["transfer"] == "basic"
    answer = body["objects"][0]
    assert (answer["oid"], answer["size"]) == (oid, len(data))
    href = answer["actions"]["upload"]["href"]
    assert href.startswith(server.url + "/")
    assert answer["actions"]["verify"]["href"].startswith(server.url + "/")
    # before the upload, verify fails
    early = http.post(answer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)}, headers=auth(alice_token))
    assert early.status_code == 404
    put = httpx.put(href, content=data)
    assert put.status_code == 200
    verify = http.post(answer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)}, headers=auth(alice_token))
    assert verify.status_code == 200
    again = lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}]).json()["objects"][0]
    assert "actions" not in again
    # download through the batch API: presigned, no Authorization needed
    down = lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}], "download").json()["objects"][0]
    assert httpx.get(down["actions"]["download"]["href"]).content == data
    missing_oid = hashlib.sha256(b"never uploaded").hexdigest()
    down = lfs_batch(server, alice_token, repo_id, [{"oid": missing_oid, "size": 14}], "download").json()["objects"][0]
    assert down["error"]["code"] == 404 and "actions" not in down
    # uploads need write access; anonymous uploads are refused
    assert lfs_batch(server, None, repo_id, [{"oid": oid, "size": len(data)}]).status_code == 401


def test_lfs_upload_with_wrong_bytes_is_not_stored(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    data = os.urandom(10_000)
    oid = hashlib.sha256(data).hexdigest()
    href = lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}]).json()["objects"][0]["actions"]["upload"]["href"]
    wrong = bytearray(data)
    wrong[5000] ^= 0xFF
    put = httpx.put(href, content=bytes(wrong))
    assert 400 <= put.status_code < 500
    assert "error" in put.json()
    assert httpx.put(href, content=data[:-1]).status_code in (400, 422)
    assert httpx.put(href, content=data + b"x").status_code in (400, 413, 422)
    again = lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}]).json()["objects"][0]
    assert "upload" in again["actions"]
    commit = post_commit(server, alice_token, repo_id, header(),
                         {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": oid, "size": len(data)}})
    assert commit.status_code == 400
    # and the right bytes still go through the same URL
    assert httpx.put(href, content=data).status_code == 200


def test_lfs_tampered_signature(server: Server, alice_token: str) -> None:
    repo_id = new_repo(server, alice_token)
    data = os.urandom(1000)
    oid = hashlib.sha256(data).hexdigest()
    href = lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}]).json()["objects"][0]["actions"]["upload"]["href"]
    parts = urlsplit(href)
    query = dict(parse_qsl(parts.query))

    def with_query(**changes: str) -> str:
        return urlunsplit(parts._replace(query=urlencode({**query, **changes})))

    sig = query["sig"]
    bad_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    other_repo = str(int(query["repo"]) + 1)
    for target in (with_query(sig=bad_sig), with_query(exp=str(int(query["exp"]) + 1000)), with_query(size=str(len(data) + 1)),
                   with_query(repo=other_repo), with_query(sig="")):
        response = httpx.put(target, content=data)
        assert response.status_code == 403, target
    other = hashlib.sha256(b"other").hexdigest()
    assert httpx.put(href.replace(oid, other), content=b"other").status_code == 403
    assert "upload" in lfs_batch(server, alice_token, repo_id, [{"oid": oid, "size": len(data)}]).json()["objects"][0]["actions"]
