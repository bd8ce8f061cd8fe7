"""Read API conformance (hub-protocol §1-4, §7): resolve, info, tree, paths-info, refs, commits."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote

import hf_xet
import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

from conftest import Server

http = httpx.Client(timeout=60)  # one client: a new one per request costs ~0.1 s

DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

CONFIG = b'{"hidden_size": 4}\n'
README = b"---\nlicense: mit\n---\n# hello\n"
SUB_A = b"alpha\n" * 50
SUB_DEEP_B = b"beta"
WEIGHTS = bytes(range(256)) * 40  # 10240 bytes, stored as LFS because of `*.bin` in .gitattributes
EMPTY = b""


def git_hash_object(data: bytes) -> str:
    """What `git hash-object --stdin` says about these bytes."""
    return subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout.decode().strip()


def lfs_pointer(data: bytes) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n".encode()


def ndjson(*lines: dict) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def commit_files(server: Server, token: str, repo_id: str, files: dict[str, bytes], *, revision: str = "main",
                 summary: str = "update") -> str:
    """Commit with a raw NDJSON request; returns the new commit id."""
    lines = [{"key": "header", "value": {"summary": summary, "description": ""}}]
    lines += [{"key": "file", "value": {"path": p, "content": base64.b64encode(d).decode(), "encoding": "base64"}}
              for p, d in files.items()]
    response = http.post(f"{server.url}/api/models/{repo_id}/commit/{quote(revision, safe='')}", content=ndjson(*lines),
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["commitOid"]


@pytest.fixture(scope="module")
def repo(server: Server, alice_token: str) -> dict:
    """A public repo of alice with a few regular files, an LFS file, a tag and two commits."""
    repo_id = f"alice/read-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    first = api.create_commit(repo_id, [CommitOperationAdd("config.json", b'{"old": true}')], commit_message="first").oid
    api.create_tag(repo_id, tag="v1")
    head = api.create_commit(
        repo_id,
        [
            CommitOperationAdd("config.json", CONFIG),
            CommitOperationAdd("README.md", README),
            CommitOperationAdd("sub/a.txt", SUB_A),
            CommitOperationAdd("sub/deep/b.txt", SUB_DEEP_B),
            CommitOperationAdd("weights.bin", WEIGHTS),
            CommitOperationAdd("empty.txt", EMPTY),
        ],
        commit_message="second",
        commit_description="with a body",
    ).oid
    return {"id": repo_id, "first": first, "head": head, "api": api}


def url(server: Server, repo: dict, rev: str, path: str) -> str:
    return f"{server.url}/{repo['id']}/resolve/{rev}/{path}"


# -- resolve ----------------------------------------------------------------------------------

def test_head_regular_file_headers(server: Server, repo: dict) -> None:
    response = http.head(url(server, repo, "main", "config.json"), headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["X-Repo-Commit"] == repo["head"]
    assert response.headers["ETag"] == f'"{git_hash_object(CONFIG)}"'
    assert response.headers["Content-Length"] == str(len(CONFIG))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "X-Linked-Etag" not in response.headers
    assert "X-Xet-Hash" not in response.headers


def test_head_lfs_file_headers(server: Server, repo: dict) -> None:
    response = http.head(url(server, repo, "main", "weights.bin"), headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    assert response.headers["ETag"] == f'"{sha256}"'
    assert response.headers["X-Linked-Etag"] == f'"{sha256}"'
    assert response.headers["X-Linked-Size"] == str(len(WEIGHTS))
    assert response.headers["Content-Length"] == str(len(WEIGHTS))
    assert response.headers["X-Repo-Commit"] == repo["head"]
    assert response.headers["Accept-Ranges"] == "bytes"


def test_head_empty_file_has_zero_length(server: Server, repo: dict) -> None:
    response = http.head(url(server, repo, "main", "empty.txt"))
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers["ETag"] == f'"{git_hash_object(b"")}"'


def test_get_bytes_uncompressed(server: Server, repo: dict) -> None:
    for path, data in (("sub/a.txt", SUB_A), ("weights.bin", WEIGHTS), ("empty.txt", EMPTY)):
        response = http.get(url(server, repo, "main", path), headers={"Accept-Encoding": "gzip, deflate"})
        assert response.status_code == 200
        assert "Content-Encoding" not in response.headers
        assert response.content == data
        assert response.headers["Content-Length"] == str(len(data))


@pytest.mark.parametrize("path,data", [("sub/a.txt", SUB_A), ("weights.bin", WEIGHTS)])
def test_ranges(server: Server, repo: dict, path: str, data: bytes) -> None:
    target = url(server, repo, "main", path)
    size = len(data)
    response = http.get(target, headers={"Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
    assert response.headers["Content-Length"] == str(size - 100)
    assert response.content == data[100:]

    response = http.get(target, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 10-19/{size}"
    assert response.content == data[10:20]

    response = http.get(target, headers={"Range": f"bytes={size - 5}-{size + 100}"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert response.content == data[-5:]

    response = http.get(target, headers={"Range": "bytes=-7"})
    assert response.status_code == 206
    assert response.content == data[-7:]

    response = http.get(target, headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"


def test_missing_file_is_entry_not_found_with_commit(server: Server, repo: dict, tmp_path: Path) -> None:
    for method in ("HEAD", "GET"):
        response = http.request(method, url(server, repo, "main", "nope/missing.json"))
        assert response.status_code == 404
        assert response.headers["X-Error-Code"] == "EntryNotFound"
        assert response.headers["X-Repo-Commit"] == repo["head"]
    assert http.get(url(server, repo, "main", "sub")).headers["X-Error-Code"] == "EntryNotFound"
    body = http.get(url(server, repo, "main", "missing.json")).json()
    assert isinstance(body["error"], str)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo["id"], "missing.json", endpoint=server.url, token=False, cache_dir=tmp_path)


def test_missing_revision_is_revision_not_found(server: Server, repo: dict, tmp_path: Path) -> None:
    for rev in ("nope", "0" * 40, quote("refs/heads/nope", safe="")):
        response = http.head(url(server, repo, rev, "config.json"))
        assert response.status_code == 404
        assert response.headers["X-Error-Code"] == "RevisionNotFound"
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo["id"], "config.json", revision="nope", endpoint=server.url, token=False, cache_dir=tmp_path)


def test_resolve_by_tag_commit_and_full_ref_names(server: Server, repo: dict) -> None:
    old = http.get(url(server, repo, "v1", "config.json"))
    assert old.content == b'{"old": true}'
    assert old.headers["X-Repo-Commit"] == repo["first"]
    assert http.get(url(server, repo, repo["first"], "config.json")).content == b'{"old": true}'
    for rev in ("refs%2Fheads%2Fmain", quote("refs/heads/main", safe="")):
        response = http.get(url(server, repo, rev, "config.json"))
        assert response.status_code == 200
        assert response.headers["X-Repo-Commit"] == repo["head"]
        assert response.content == CONFIG
    assert http.get(url(server, repo, "refs%2Ftags%2Fv1", "config.json")).content == b'{"old": true}'
    # a file that exists only in the newer commit is absent at the tag
    response = http.head(url(server, repo, "v1", "sub/a.txt"))
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert response.headers["X-Repo-Commit"] == repo["first"]


def test_hf_hub_download_regular_and_lfs(server: Server, repo: dict, tmp_path: Path) -> None:
    for name, data in (("sub/deep/b.txt", SUB_DEEP_B), ("weights.bin", WEIGHTS)):
        path = hf_hub_download(repo["id"], name, endpoint=server.url, token=False, cache_dir=tmp_path)
        assert Path(path).read_bytes() == data


def test_request_id_echoes_trace_id(server: Server, repo: dict) -> None:
    trace = f"Root=1-{uuid.uuid4().hex}"
    for response in (http.get(f"{server.url}/api/models/{repo['id']}", headers={"X-Amzn-Trace-Id": trace}),
                     http.head(url(server, repo, "main", "missing"), headers={"X-Amzn-Trace-Id": trace})):
        assert response.headers["X-Request-Id"] == trace


# -- info ---------------------------------------------------------------------------------------

def test_repo_info_fields(server: Server, repo: dict) -> None:
    response = http.get(f"{server.url}/api/models/{repo['id']}")
    assert response.status_code == 200
    info = response.json()
    assert info["id"] == repo["id"]
    assert info["sha"] == repo["head"]
    assert info["private"] is False
    assert info["gated"] is False
    assert info["author"] == "alice"
    assert DATE_RE.match(info["lastModified"]) and DATE_RE.match(info["createdAt"])
    siblings = {s["rfilename"]: s for s in info["siblings"]}
    assert set(siblings) == {".gitattributes", "config.json", "README.md", "sub/a.txt", "sub/deep/b.txt", "weights.bin",
                             "empty.txt"}
    assert siblings["config.json"]["blobId"] == git_hash_object(CONFIG)
    assert siblings["config.json"]["size"] == len(CONFIG)
    assert "lfs" not in siblings["config.json"]
    lfs = siblings["weights.bin"]["lfs"]
    assert lfs == {"size": len(WEIGHTS), "sha256": hashlib.sha256(WEIGHTS).hexdigest(),
                   "pointerSize": len(lfs_pointer(WEIGHTS))}
    assert siblings["weights.bin"]["blobId"] == git_hash_object(lfs_pointer(WEIGHTS))
    assert "xetHash" not in json.dumps(info)


def test_repo_info_at_revision(server: Server, repo: dict) -> None:
    for rev, sha in (("v1", repo["first"]), (repo["first"], repo["first"]), ("main", repo["head"]),
                     ("refs%2Fheads%2Fmain", repo["head"])):
        info = http.get(f"{server.url}/api/models/{repo['id']}/revision/{rev}").json()
        assert info["sha"] == sha
    old = http.get(f"{server.url}/api/models/{repo['id']}/revision/v1").json()
    assert sorted(s["rfilename"] for s in old["siblings"]) == [".gitattributes", "config.json"]
    response = http.get(f"{server.url}/api/models/{repo['id']}/revision/nope")
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    api: HfApi = repo["api"]
    assert api.model_info(repo["id"], revision="v1").sha == repo["first"]
    assert api.revision_exists(repo["id"], "v1") and not api.revision_exists(repo["id"], "nope")


def test_missing_repo(server: Server, alice_token: str) -> None:
    response = http.get(f"{server.url}/api/models/alice/does-not-exist")
    assert (response.status_code, response.headers["X-Error-Code"]) == (401, "RepoNotFound")
    response = http.get(f"{server.url}/api/models/alice/does-not-exist", headers={"Authorization": f"Bearer {alice_token}"})
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "RepoNotFound")
    assert not HfApi(endpoint=server.url, token=alice_token).repo_exists("alice/does-not-exist")


# -- tree -------------------------------------------------------------------------------------

def test_tree_root_and_recursive(server: Server, repo: dict, tmp_path: Path) -> None:
    base = f"{server.url}/api/models/{repo['id']}/tree/main"
    root = http.get(base).json()
    assert {(e["type"], e["path"]) for e in root} == {
        ("file", ".gitattributes"), ("file", "config.json"), ("file", "README.md"), ("directory", "sub"),
        ("file", "weights.bin"), ("file", "empty.txt")}
    every = {e["path"]: e for e in http.get(base, params={"recursive": "true"}).json()}
    assert set(every) == {".gitattributes", "config.json", "README.md", "sub", "sub/a.txt", "sub/deep", "sub/deep/b.txt",
                          "weights.bin", "empty.txt"}
    assert every["sub/deep"]["type"] == "directory" and every["sub/deep"]["size"] == 0
    assert every["sub/a.txt"] == {"type": "file", "oid": git_hash_object(SUB_A), "size": len(SUB_A), "path": "sub/a.txt"}
    weights = every["weights.bin"]
    assert weights["size"] == len(WEIGHTS)
    assert weights["oid"] == git_hash_object(lfs_pointer(WEIGHTS))
    assert weights["lfs"] == {"oid": hashlib.sha256(WEIGHTS).hexdigest(), "size": len(WEIGHTS),
                              "pointerSize": len(lfs_pointer(WEIGHTS))}
    # huggingface_hub (with hf_xet) sent weights.bin through Xet: the listing names its Xet file.
    (tmp_path / "weights.bin").write_bytes(WEIGHTS)
    assert weights["xetHash"] == hf_xet.hash_files([str(tmp_path / "weights.bin")])[0].hash
    assert [path for path, entry in every.items() if "xetHash" in entry] == ["weights.bin"]


def test_tree_sub_folder(server: Server, repo: dict) -> None:
    base = f"{server.url}/api/models/{repo['id']}/tree/main"
    assert [(e["type"], e["path"]) for e in http.get(f"{base}/sub").json()] == [("file", "sub/a.txt"), ("directory", "sub/deep")]
    for path in ("sub%2Fdeep", "sub/deep"):
        assert [e["path"] for e in http.get(f"{base}/{path}").json()] == ["sub/deep/b.txt"]
    assert [e["path"] for e in http.get(f"{base}/sub", params={"recursive": "1"}).json()] == [
        "sub/a.txt", "sub/deep", "sub/deep/b.txt"]
    response = http.get(f"{base}/nope")
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "EntryNotFound")
    api: HfApi = repo["api"]
    assert sorted(f.path for f in api.list_repo_tree(repo["id"], path_in_repo="sub")) == ["sub/a.txt", "sub/deep"]
    response = http.get(f"{server.url}/api/models/{repo['id']}/tree/nope")
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "RevisionNotFound")


def test_git_ids_are_real_git_ids(server: Server, repo: dict, tmp_path: Path) -> None:
    """Blob and tree ids equal what git itself computes for the same content."""
    work = tmp_path / "work"
    work.mkdir()
    # `cat` as the LFS clean filter: the pointer files go into git as they are, git-lfs installed or not
    git = ["git", "-C", str(work), "-c", "core.autocrlf=false", "-c", "filter.lfs.clean=cat", "-c", "filter.lfs.smudge=cat",
           "-c", "filter.lfs.process=", "-c", "filter.lfs.required=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    every = http.get(f"{server.url}/api/models/{repo['id']}/tree/main", params={"recursive": "true"}).json()
    for entry in every:
        if entry["type"] != "file":
            continue
        data = http.get(url(server, repo, "main", entry["path"])).content
        stored = lfs_pointer(data) if "lfs" in entry else data
        target = work / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(stored)
    subprocess.run([*git, "add", "-A"], check=True)
    for entry in every:
        if entry["type"] == "directory":
            expected = subprocess.run([*git, "write-tree", f"--prefix={entry['path']}/"], capture_output=True, text=True, check=True)
        else:
            expected = subprocess.run([*git, "rev-parse", f":{entry['path']}"], capture_output=True, text=True, check=True)
        assert entry["oid"] == expected.stdout.strip(), entry


def test_tree_pagination_over_one_thousand_files(server: Server, alice_token: str) -> None:
    repo_id = f"alice/many-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    names = [f"data/f{i:04d}.txt" for i in range(1105)]
    api.create_commit(repo_id, [CommitOperationAdd(n, n.encode()) for n in names], commit_message="many files")
    first = http.get(f"{server.url}/api/models/{repo_id}/tree/main", params={"recursive": "true"})
    assert first.status_code == 200
    seen = [e["path"] for e in first.json()]
    assert len(seen) == 1000
    link = first.headers["Link"]
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    next_url = match.group(1)
    assert next_url.startswith(server.url + "/api/models/" + repo_id + "/tree/main")
    while next_url:
        page = http.get(next_url)
        assert page.status_code == 200
        seen += [e["path"] for e in page.json()]
        found = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers.get("Link", ""))
        next_url = found.group(1) if found else ""
    expected = {".gitattributes", "data", *names}
    assert len(seen) == len(expected) and set(seen) == expected
    assert sorted(api.list_repo_files(repo_id)) == sorted([".gitattributes", *names])
    # a sub-folder listing is paginated too
    sub = http.get(f"{server.url}/api/models/{repo_id}/tree/main/data")
    assert len(sub.json()) == 1000 and sub.headers["Link"].startswith(f"<{server.url}/api/models/{repo_id}/tree/main/data?")


# -- paths-info, refs, commits ----------------------------------------------------------------

def test_paths_info_form_encoded(server: Server, repo: dict) -> None:
    response = http.post(f"{server.url}/api/models/{repo['id']}/paths-info/main",
                          content="paths=config.json&paths=sub&paths=missing.txt&paths=weights.bin&expand=false",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    found = {e["path"]: e for e in response.json()}
    assert set(found) == {"config.json", "sub", "weights.bin"}
    assert found["config.json"]["oid"] == git_hash_object(CONFIG)
    assert found["sub"]["type"] == "directory"
    assert found["weights.bin"]["lfs"]["oid"] == hashlib.sha256(WEIGHTS).hexdigest()
    api: HfApi = repo["api"]
    infos = api.get_paths_info(repo["id"], ["sub/deep/b.txt", "sub/deep"], revision="v1")
    assert infos == []
    infos = api.get_paths_info(repo["id"], ["sub/deep/b.txt", "sub/deep"])
    assert sorted(i.path for i in infos) == ["sub/deep", "sub/deep/b.txt"]


def test_refs_with_and_without_prs(server: Server, repo: dict) -> None:
    base = f"{server.url}/api/models/{repo['id']}/refs"
    data = http.get(base).json()
    assert data["branches"] == [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo["head"]}]
    assert data["tags"] == [{"name": "v1", "ref": "refs/tags/v1", "targetCommit": repo["first"]}]
    assert data["converts"] == []
    assert "pullRequests" not in data
    assert http.get(base, params={"include_prs": "1"}).json()["pullRequests"] == []
    refs = repo["api"].list_repo_refs(repo["id"], include_pull_requests=True)
    assert [b.name for b in refs.branches] == ["main"] and refs.pull_requests == []


def test_commits_listing_and_pagination(server: Server, alice_token: str) -> None:
    repo_id = f"alice/history-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    shas = [commit_files(server, alice_token, repo_id, {"n.txt": str(i).encode()}, summary=f"commit {i}")
            for i in range(55)]
    shas.reverse()
    first = http.get(f"{server.url}/api/models/{repo_id}/commits/main")
    assert first.status_code == 200
    page = first.json()
    assert [c["id"] for c in page] == shas[: len(page)]
    assert page[0]["title"] == "commit 54"
    assert page[0]["authors"] == [{"user": "alice"}]
    assert DATE_RE.match(page[0]["date"])
    assert first.headers["Link"].startswith(f"<{server.url}/api/models/{repo_id}/commits/main?")
    listed = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in listed][:55] == shas
    assert len(listed) == 56 and listed[-1].title == "initial commit"
    small = http.get(f"{server.url}/api/models/{repo_id}/commits/main", params={"limit": 2})
    assert len(small.json()) == 2 and "Link" in small.headers
    assert http.get(f"{server.url}/api/models/{repo_id}/commits/nope").headers["X-Error-Code"] == "RevisionNotFound"


def test_commit_message_and_description(server: Server, repo: dict) -> None:
    commits = repo["api"].list_repo_commits(repo["id"])
    assert [c.commit_id for c in commits[:2]] == [repo["head"], repo["first"]]
    assert commits[0].title == "second"
    assert "with a body" in commits[0].message


# -- account ------------------------------------------------------------------------------------

def test_auth_check(server: Server, repo: dict, alice_token: str, bob_token: str) -> None:
    base = f"{server.url}/api/models/{repo['id']}/auth-check"
    assert http.get(base).status_code == 200
    assert http.get(base, headers={"Authorization": f"Bearer {bob_token}"}).status_code == 200
    assert http.get(f"{base}/write", headers={"Authorization": f"Bearer {alice_token}"}).status_code == 200
    assert http.get(f"{base}/write", headers={"Authorization": f"Bearer {bob_token}"}).status_code == 403
    assert http.get(f"{base}/write").status_code == 401
    HfApi(endpoint=server.url, token=alice_token).auth_check(repo["id"], write=True)


def test_whoami(server: Server, alice_token: str) -> None:
    response = http.get(f"{server.url}/api/whoami-v2", headers={"Authorization": f"Bearer {alice_token}"})
    assert response.status_code == 200
    me = response.json()
    assert me["type"] == "user" and me["name"] == "alice"
    assert {"name": "acme"}.items() <= next(o for o in me["orgs"] if o["name"] == "acme").items()
    assert me["auth"]["type"] == "access_token"
    assert me["auth"]["accessToken"]["role"] == "write"
    assert HfApi(endpoint=server.url, token=alice_token).whoami()["name"] == "alice"
    assert http.get(f"{server.url}/api/whoami-v2").status_code == 401


def test_validate_yaml(server: Server) -> None:
    good = http.post(f"{server.url}/api/validate-yaml", json={"content": "---\nlicense: mit\ntags: [a, b]\n---\n# hi\n",
                                                                "repoType": "model"})
    assert good.status_code == 200
    assert good.json()["errors"] == []
    bad = http.post(f"{server.url}/api/validate-yaml", json={"content": "---\nlicense: [mit\n  : : x\n---\n# hi\n",
                                                               "repoType": "model"})
    assert bad.status_code == 400
    errors = bad.json()["errors"]
    assert errors and isinstance(errors[0]["message"], str)
    plain = http.post(f"{server.url}/api/validate-yaml", json={"content": "# no metadata\n", "repoType": "dataset"})
    assert plain.status_code == 200 and plain.json()["errors"] == []


# -- a branch whose name holds a slash ----------------------------------------------------------

def test_branch_with_slash(server: Server, repo: dict, alice_token: str, tmp_path: Path) -> None:
    api: HfApi = repo["api"]
    branch = f"feature/x-{uuid.uuid4().hex[:6]}"
    api.create_branch(repo["id"], branch=branch)
    sha = api.create_commit(repo["id"], [CommitOperationAdd("feature.txt", b"on the branch")], commit_message="feat",
                            revision=branch).oid
    encoded = quote(branch, safe="")
    response = http.get(url(server, repo, encoded, "feature.txt"))
    assert response.status_code == 200 and response.content == b"on the branch"
    assert response.headers["X-Repo-Commit"] == sha
    assert http.get(url(server, repo, quote(f"refs/heads/{branch}", safe=""), "feature.txt")).content == b"on the branch"
    info = http.get(f"{server.url}/api/models/{repo['id']}/revision/{encoded}").json()
    assert info["sha"] == sha
    tree = http.get(f"{server.url}/api/models/{repo['id']}/tree/{encoded}").json()
    assert "feature.txt" in {e["path"] for e in tree}
    refs = http.get(f"{server.url}/api/models/{repo['id']}/refs").json()
    assert {"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": sha} in refs["branches"]
    # main did not move
    assert http.head(url(server, repo, "main", "feature.txt")).status_code == 404
    path = hf_hub_download(repo["id"], "feature.txt", revision=branch, endpoint=server.url, token=False, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"on the branch"
    api.delete_branch(repo["id"], branch=branch)
    assert http.head(url(server, repo, encoded, "feature.txt")).headers["X-Error-Code"] == "RevisionNotFound"


def test_unusual_file_names(server: Server, alice_token: str, tmp_path: Path) -> None:
    names = ["with space.txt", "dossier/été.txt", "a#b.txt", "q?x.txt", "plus+sign.txt", "percent%20.txt", "日本/語.txt",
             "semi;colon,comma.txt", "quote'\"s.txt"]
    repo_id = f"alice/names-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    api.create_commit(repo_id, [CommitOperationAdd(n, n.encode()) for n in names], commit_message="names")
    assert sorted(api.list_repo_files(repo_id)) == sorted([".gitattributes", *names])
    for name in names:
        response = http.get(f"{server.url}/{repo_id}/resolve/main/{quote(name)}")
        assert response.status_code == 200 and response.content == name.encode(), name
        assert response.headers["ETag"] == f'"{git_hash_object(name.encode())}"'
        path = hf_hub_download(repo_id, name, endpoint=server.url, token=False, cache_dir=tmp_path)
        assert Path(path).read_bytes() == name.encode()
    infos = api.get_paths_info(repo_id, names)
    assert sorted(i.path for i in infos) == sorted(names)
    sub = http.get(f"{server.url}/api/models/{repo_id}/tree/main/{quote('dossier', safe='')}").json()
    assert [e["path"] for e in sub] == ["dossier/été.txt"]
    assert [e["path"] for e in http.get(f"{server.url}/api/models/{repo_id}/tree/main/{quote('日本', safe='')}").json()] == ["日本/語.txt"]
