"""The pull-through mirror with another real hubgate as its upstream."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

from clients.harness import synced_requests
from conftest import Server, start_server
from databases import cli_env

BIG = os.urandom(12_000_000)


def write_config(path: Path, upstream: Server, **mirror: object) -> Path:
    lines = ["[[upstream]]", 'name = "origin"', f'url = "{upstream.url}"', 'token_env = "ORIGIN_TOKEN"']
    if mirror:
        lines.append("[mirror]")
        lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {str(v).lower()}" for k, v in mirror.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, stores: str) -> Iterator[tuple[Server, str, dict[str, str]]]:
    """An upstream hubgate with a public repo (tag v1 and a later commit) and a private one."""
    with start_server(tmp_path_factory.mktemp("origin")) as srv:
        srv.add_user("team")
        token = srv.token("team", "write")
        api = HfApi(endpoint=srv.url, token=token)
        api.create_repo("team/public-model")
        folder = tmp_path_factory.mktemp("files")
        (folder / "config.json").write_text('{"v": 1}')
        (folder / "model.safetensors").write_bytes(BIG)
        (folder / "nested").mkdir()
        (folder / "nested" / "notes.txt").write_text("hello")
        first = api.upload_folder(folder_path=folder, repo_id="team/public-model").oid
        api.create_tag("team/public-model", tag="v1")
        api.upload_file(path_or_fileobj=b'{"v": 2}', path_in_repo="config.json", repo_id="team/public-model")
        api.create_repo("team/private-model", private=True)
        api.upload_file(path_or_fileobj=b"secret", path_in_repo="secret.txt", repo_id="team/private-model")
        yield srv, token, {"first": first}


def upstream_with_a_repo(upstream: Server, repo_id: str, path: str, content: bytes) -> str:
    """Create user `team` and `repo_id` holding one file on `upstream`; returns team's write token."""
    upstream.add_user("team")
    token = upstream.token("team", "write")
    api = HfApi(endpoint=upstream.url, token=token)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=content, path_in_repo=path, repo_id=repo_id)
    return token


def start_mirror(tmp: Path, origin: Server, token: str, *extra: str, **mirror: object) -> Server:
    config = write_config(tmp / "hubgate.toml", origin, **mirror)
    return start_server(tmp / "data", *extra, config=config, env={"ORIGIN_TOKEN": token})


@pytest.fixture()
def mirror(tmp_path: Path, origin: tuple[Server, str, dict[str, str]]) -> Iterator[Server]:
    with start_mirror(tmp_path, origin[0], origin[1]) as srv:
        yield srv


def resolve_gets(server: Server, filename: str) -> int:
    """How many times `server` answered a GET for `filename` (from its access log, synced)."""
    return sum(1 for r in synced_requests(server) if r.method == "GET" and "/resolve/" in r.target and filename in r.target)


def test_download_by_branch_tag_and_commit(mirror: Server, origin, tmp_path: Path) -> None:
    _, _, commits = origin
    for revision, expected in (("main", b'{"v": 2}'), ("v1", b'{"v": 1}'), (commits["first"], b'{"v": 1}')):
        path = hf_hub_download("team/public-model", "config.json", revision=revision, endpoint=mirror.url,
                               token=False, cache_dir=tmp_path / revision)
        assert Path(path).read_bytes() == expected
    path = hf_hub_download("team/public-model", "model.safetensors", endpoint=mirror.url, token=False,
                           cache_dir=tmp_path / "big")
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == hashlib.sha256(BIG).hexdigest()
    snapshot = snapshot_download("team/public-model", revision="v1", endpoint=mirror.url, token=False,
                                 cache_dir=tmp_path / "snap")
    assert (Path(snapshot) / "nested" / "notes.txt").read_text() == "hello"


def test_headers_match_the_upstream(mirror: Server, origin) -> None:
    upstream = origin[0]
    for name in ("config.json", "model.safetensors"):
        ours = httpx.head(f"{mirror.url}/team/public-model/resolve/main/{name}")
        theirs = httpx.head(f"{upstream.url}/team/public-model/resolve/main/{name}")
        for header in ("x-repo-commit", "etag", "x-linked-etag", "x-linked-size", "content-length", "accept-ranges"):
            assert ours.headers.get(header) == theirs.headers.get(header), header
        assert not any(h.startswith("x-xet") for h in ours.headers)
    info = httpx.get(f"{mirror.url}/api/models/team/public-model/revision/main").json()
    assert sorted(s["rfilename"] for s in info["siblings"]) == [".gitattributes", "config.json", "model.safetensors", "nested/notes.txt"]


def test_cold_range_request(mirror: Server) -> None:
    response = httpx.get(f"{mirror.url}/team/public-model/resolve/main/model.safetensors",
                         headers={"Range": "bytes=11000000-11000099"})
    assert response.status_code == 206
    assert response.content == BIG[11_000_000:11_000_100]
    assert response.headers["content-range"] == f"bytes 11000000-11000099/{len(BIG)}"


def test_serves_from_cache_when_upstream_is_down_and_offline(tmp_path: Path, tmp_path_factory) -> None:
    with start_server(tmp_path_factory.mktemp("origin-down")) as upstream, \
            start_mirror(tmp_path, upstream, upstream_with_a_repo(upstream, "team/m", "w.bin", BIG[:3_000_000]),
                         revision_ttl=0) as srv:
        snapshot_download("team/m", endpoint=srv.url, token=False, cache_dir=tmp_path / "c0")  # warm every file
        warm = hf_hub_download("team/m", "w.bin", endpoint=srv.url, token=False, cache_dir=tmp_path / "c1")
        upstream.stop()
        again = hf_hub_download("team/m", "w.bin", endpoint=srv.url, token=False, cache_dir=tmp_path / "c2")
        assert Path(again).read_bytes() == Path(warm).read_bytes()
        head = httpx.head(f"{srv.url}/team/m/resolve/main/w.bin")
        assert head.status_code == 200 and head.headers.get("x-hubgate-stale") == "1"
        status = httpx.get(f"{srv.url}/api/mirror/status", headers=srv.admin_headers()).json()
        assert status["upstreams"][0]["healthy"] is False and status["upstreams"][0]["lastError"]
    with start_server(tmp_path / "data", "--offline", config=tmp_path / "hubgate.toml") as offline:
        snap = snapshot_download("team/m", endpoint=offline.url, token=False, cache_dir=tmp_path / "c3")
        assert (Path(snap) / "w.bin").read_bytes() == BIG[:3_000_000]
        tree = httpx.get(f"{offline.url}/api/models/team/m/tree/main", params={"recursive": "true"}).json()
        assert {e["path"] for e in tree} == {".gitattributes", "w.bin"}
        assert httpx.get(f"{offline.url}/api/models/team/never-seen").status_code in (401, 404)


def test_local_namespace_is_never_looked_up_upstream(mirror: Server, origin) -> None:
    upstream = origin[0]
    since = len(upstream.log)
    httpx.get(f"{mirror.url}/api/models/team/private-model")  # not a local namespace yet: asked upstream
    assert [r for r in synced_requests(upstream, since) if "team/private-model" in r.target]
    mirror.add_user("team")  # now `team` is a local namespace: its repos are the local ones only
    since = len(upstream.log)
    response = httpx.get(f"{mirror.url}/api/models/team/public-model")
    assert response.status_code == 401 and response.headers["x-error-code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("team/public-model", "config.json", endpoint=mirror.url, token=False)
    assert not [r for r in synced_requests(upstream, since) if "team/public-model" in r.target]


def test_private_upstream_repo_needs_a_local_user(mirror: Server) -> None:
    anonymous = httpx.get(f"{mirror.url}/team/private-model/resolve/main/secret.txt")
    assert anonymous.status_code == 401 and anonymous.headers["x-error-code"] == "RepoNotFound"
    mirror.add_user("dora")
    token = mirror.token("dora", "read")
    allowed = httpx.get(f"{mirror.url}/team/private-model/resolve/main/secret.txt",
                        headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and allowed.content == b"secret"
    again = httpx.get(f"{mirror.url}/team/private-model/resolve/main/secret.txt")
    assert again.status_code == 401  # cached now, and still refused to anonymous callers
    mirror.stop()
    with start_server(mirror.data, "--offline", config=mirror.data.parent / "hubgate.toml") as offline:
        assert httpx.get(f"{offline.url}/team/private-model/resolve/main/secret.txt").status_code == 401
        cached = httpx.get(f"{offline.url}/team/private-model/resolve/main/secret.txt",
                           headers={"Authorization": f"Bearer {token}"})
        assert cached.status_code == 200 and cached.content == b"secret"


def test_mirror_pull_then_offline(tmp_path: Path, origin) -> None:
    upstream, token, _ = origin
    config = write_config(tmp_path / "hubgate.toml", upstream)
    result = subprocess.run(
        [sys.executable, "-m", "hubgate", "mirror", "pull", "team/public-model@v1", "--data", str(tmp_path / "data"),
         "--config", str(config)], capture_output=True, text=True, timeout=120,
        env={**os.environ, **cli_env(tmp_path / "data"), "ORIGIN_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert "4 files" in result.stdout
    with start_server(tmp_path / "data", "--offline", config=config) as offline:
        snap = snapshot_download("team/public-model", revision="v1", endpoint=offline.url, token=False,
                                 cache_dir=tmp_path / "c")
        assert (Path(snap) / "model.safetensors").read_bytes() == BIG
        # what was not pulled is "not cached", said the same way for a revision and for history
        later = httpx.get(f"{offline.url}/api/models/team/public-model/revision/main")
        assert later.status_code == 503
        assert later.json()["error"] == "Revision main of team/public-model is not cached (hubgate runs offline)"
        history = httpx.get(f"{offline.url}/api/models/team/public-model/commits/v1")
        assert history.json()["error"] == "The commit history of team/public-model is not cached (hubgate runs offline)"
        # and a repo never pulled: a missing repo to clients (status, X-Error-Code), said as "not cached"
        offline.add_user("erin")
        for headers, status in (({}, 401), ({"Authorization": f"Bearer {offline.token('erin', 'read')}"}, 404)):
            repo = httpx.get(f"{offline.url}/api/models/team/never-pulled", headers=headers)
            assert repo.status_code == status and repo.headers["x-error-code"] == "RepoNotFound", repo.headers
            assert repo.json()["error"] == "Repository team/never-pulled is not cached (hubgate runs offline)"
        with pytest.raises(RepositoryNotFoundError, match=r"is not cached \(hubgate runs offline\)"):
            HfApi(endpoint=offline.url, token=False).model_info("team/never-pulled")


def test_lru_eviction_keeps_the_cache_under_its_limit(tmp_path: Path, origin) -> None:
    upstream, token, _ = origin
    with start_mirror(tmp_path, upstream, token, cache_max_bytes=len(BIG), evict_grace=0) as srv:  # S3: no grace
        base = f"{srv.url}/team/public-model/resolve/main"
        assert httpx.get(f"{base}/nested/notes.txt").content == b"hello"  # least recently used
        assert httpx.get(f"{base}/model.safetensors").content == BIG  # pushes the cache over its limit
        cache = httpx.get(f"{srv.url}/api/mirror/status", headers=srv.admin_headers()).json()["cache"]
        assert cache["bytes"] <= len(BIG) and cache["evictions"] == 1 and cache["files"] == 1
        before = resolve_gets(upstream, "notes.txt")
        assert httpx.get(f"{base}/nested/notes.txt").content == b"hello"  # evicted: fetched again
        assert resolve_gets(upstream, "notes.txt") == before + 1


def test_empty_files_are_cached_and_served_offline(tmp_path: Path, tmp_path_factory) -> None:
    with start_server(tmp_path_factory.mktemp("origin-empty")) as upstream, \
            start_mirror(tmp_path, upstream, upstream_with_a_repo(upstream, "team/pkg", "pkg/__init__.py", b"")) as srv:
        snapshot_download("team/pkg", endpoint=srv.url, token=False, cache_dir=tmp_path / "warm")
    with start_server(tmp_path / "data", "--offline", config=tmp_path / "hubgate.toml") as offline:
        snap = snapshot_download("team/pkg", endpoint=offline.url, token=False, cache_dir=tmp_path / "cold")
        assert (Path(snap) / "pkg" / "__init__.py").read_bytes() == b""
