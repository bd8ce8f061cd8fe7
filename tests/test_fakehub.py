"""The fake huggingface.co (tests/fakehub) checked with the real huggingface_hub 2.4.0 client.

What the client does with Xet (huggingface_hub 2.4.0 + hf_xet 1.8, found with these tests and the
client source): when the HEAD of `resolve` answers a 302 carrying `X-Xet-Hash` and
`Link: <…/xet-read-token/{sha}>; rel="xet-auth"`, `hf_hub_download` ignores the 302 Location.
It GETs the xet-auth route on the Hub (with the user's token), reads `X-Xet-Cas-Url`,
`X-Xet-Access-Token`, `X-Xet-Token-Expiration`, and hands the file to hf_xet, which asks the CAS
`GET {casUrl}/v2/reconstructions/{xetHash}` (falling back to `/v1/` on 404), then fetches xorb
byte ranges from the presigned urls listed there (without the token), and posts
`{cas host}/v1/telemetry`. `snapshot_download` goes further: it caches the tree listing and, for
entries with `xetHash`, skips the HEAD entirely. So with Xet metadata on (as huggingface.co sends
it), the CDN redirect is never used by a default client; the fake therefore also implements a
minimal CAS (fixed 64 KiB uncompressed chunks; hf_xet does not verify chunk hashes on download),
and the plain HTTP path (302 → presigned CDN url, no Authorization) is tested in a subprocess
with `HF_HUB_DISABLE_XET=1` (read at import time) or on repos created with `xet=False`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from fakehub import FakeHub, git_blob_id, lfs_pointer, make_large_file, start_fakehub

CONFIG = b'{"hidden_size": 4, "model_type": "bert"}'
README = ("---\nlicense: mit\n---\n# A model\n" + "lorem ipsum dolor sit amet\n" * 100).encode()  # > 1000 B: gzip
WEIGHTS = hashlib.sha256(b"w").digest() * 4000  # 128000 B, *.safetensors => LFS
SHARD = bytes(range(256)) * 5000  # 1.28 MB => LFS by size
MANY = {f"data/part-{i:03d}.txt": f"row {i}\n".encode() for i in range(12)}
PAGE = 5
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with start_fakehub(tmp_path_factory.mktemp("fakehub"), page_size=PAGE) as hub:
        hub.add_repo("acme/bert", {"config.json": CONFIG, "README.md": README, "model.safetensors": WEIGHTS,
                                   "sub/shard.bin": SHARD}, tags=["v1"])
        hub.add_repo("acme/bert", {"config.json": CONFIG, "README.md": README, "model.safetensors": WEIGHTS,
                                   "sub/shard.bin": SHARD, "extra.txt": b"second commit"}, message="Add extra")
        hub.add_repo("acme/plain", {"config.json": CONFIG, "model.safetensors": WEIGHTS, **MANY}, xet=False)
        hub.add_repo("acme/secret", {"config.json": CONFIG}, private=True)
        hub.add_repo("acme/gated", {"config.json": CONFIG}, gated="manual", granted=["alice"])
        hub.add_repo("acme/squad", {"train.csv": b"a,b\n1,2\n"}, repo_type="dataset")
        yield hub


@pytest.fixture(autouse=True)
def clean(fake: FakeHub) -> Iterator[None]:
    fake.reset()
    yield
    fake.reset()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_client(fake: FakeHub, tmp_path: Path, code: str, **env: str) -> dict:
    """Run huggingface_hub in a fresh interpreter (env vars such as HF_HUB_DISABLE_XET are read at import)."""
    script = "import json, sys\nfrom huggingface_hub import *\nURL = sys.argv[1]\nout = {}\n" + textwrap.dedent(code)
    script += "\nprint('RESULT ' + json.dumps(out))\n"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    full_env.update({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1", **env})
    proc = subprocess.run([sys.executable, "-c", script, fake.url], capture_output=True, text=True, env=full_env,
                          timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


# -- the repo model ---------------------------------------------------------------------------------
def test_git_ids_match_real_git(fake: FakeHub, tmp_path: Path) -> None:
    """Blob, tree and commit ids are the ones git computes for the same content (LFS as pointers)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    files = {"a.txt": b"hello\n", "dir/b.json": b"{}", "dir/deep/w.safetensors": b"\x00" * 100}
    commit = fake.add_repo("acme/gitcheck", files, gitattributes=False, message="first", author="fakehub")
    work = tmp_path / "git"
    work.mkdir()
    for path, data in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(lfs_pointer(sha256(data), len(data)) if path.endswith(".safetensors") else data)
    ident = {"GIT_AUTHOR_NAME": "fakehub", "GIT_AUTHOR_EMAIL": "fakehub@users.noreply.huggingface.co",
             "GIT_COMMITTER_NAME": "fakehub", "GIT_COMMITTER_EMAIL": "fakehub@users.noreply.huggingface.co",
             "GIT_AUTHOR_DATE": "2024-01-02T03:04:05+0000", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05+0000",
             "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    env = {**os.environ, **ident}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *cmd], cwd=work, env=env, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()
    assert commit.sha == head

    tree = httpx.get(f"{fake.url}/api/models/acme/gitcheck/tree/main/dir", params={"recursive": "true"}).json()
    by_path = {e["path"]: e for e in tree}
    assert by_path["dir/b.json"]["oid"] == git_blob_id(b"{}")
    lfs_entry = by_path["dir/deep/w.safetensors"]
    assert lfs_entry["oid"] == git_blob_id(lfs_pointer(sha256(b"\x00" * 100), 100))
    assert lfs_entry["lfs"] == {"oid": sha256(b"\x00" * 100), "size": 100,
                                "pointerSize": len(lfs_pointer(sha256(b"\x00" * 100), 100))}
    assert "xetHash" in lfs_entry and len(lfs_entry["xetHash"]) == 64
    assert by_path["dir/deep"]["type"] == "directory"


def test_info_refs_commits_paths_info_with_the_client(fake: FakeHub) -> None:
    api = HfApi(endpoint=fake.url, token=False)
    info = api.model_info("acme/bert", files_metadata=True)
    refs = api.list_repo_refs("acme/bert")
    assert info.sha == next(b.target_commit for b in refs.branches if b.name == "main")
    assert len(info.sha) == 40
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["model.safetensors"].lfs.sha256 == sha256(WEIGHTS)
    assert siblings["config.json"].blob_id == git_blob_id(CONFIG)
    assert [t.name for t in refs.tags] == ["v1"]
    v1 = api.model_info("acme/bert", revision="v1")
    assert v1.sha == refs.tags[0].target_commit != info.sha
    commits = api.list_repo_commits("acme/bert")
    assert [c.commit_id for c in commits] == [info.sha, v1.sha]
    assert commits[0].title == "Add extra"
    paths = api.get_paths_info("acme/bert", ["config.json", "sub", "missing.txt"])
    assert [(p.path, type(p).__name__) for p in paths] == [("config.json", "RepoFile"), ("sub", "RepoFolder")]
    assert api.dataset_info("acme/squad").id == "acme/squad"
    assert api.repo_exists("acme/nope") is False
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/bert", revision="nope")


def test_tree_is_paginated_with_an_absolute_link(fake: FakeHub) -> None:
    files = HfApi(endpoint=fake.url, token=False).list_repo_files("acme/plain")
    assert sorted(files) == sorted([".gitattributes", "config.json", "model.safetensors", *MANY])
    tree_calls = [r for r in fake.requests() if "/tree/" in r["path"]]
    assert len(tree_calls) == -(-(len(files) + 1) // PAGE)  # files plus the data/ folder, PAGE a page
    first = httpx.get(f"{fake.url}/api/models/acme/plain/tree/main", params={"recursive": "true"})
    assert first.headers["Link"].startswith(f"<{fake.url}/api/models/acme/plain/tree/main?")
    assert first.headers["Link"].endswith('>; rel="next"')


# -- downloads --------------------------------------------------------------------------------------
def test_http_download_path_without_xet_in_a_subprocess(fake: FakeHub, tmp_path: Path) -> None:
    """HF_HUB_DISABLE_XET=1: regular files served directly, LFS files by the CDN, never with the token."""
    out = run_client(fake, tmp_path, """
        cfg = hf_hub_download("acme/bert", "config.json", endpoint=URL, token="hf_good", cache_dir="c1")
        w = hf_hub_download("acme/bert", "model.safetensors", endpoint=URL, token="hf_good", cache_dir="c1")
        snap = snapshot_download("acme/bert", endpoint=URL, token="hf_good", cache_dir="c2")
        import hashlib, os
        out["config"] = open(cfg, "rb").read().decode()
        out["weights"] = hashlib.sha256(open(w, "rb").read()).hexdigest()
        out["snapshot"] = sorted(os.path.relpath(os.path.join(d, f), snap) for d, _, fs in os.walk(snap) for f in fs)
        out["shard"] = hashlib.sha256(open(os.path.join(snap, "sub/shard.bin"), "rb").read()).hexdigest()
        out["readme"] = open(os.path.join(snap, "README.md"), "rb").read().decode()
    """, HF_HUB_DISABLE_XET="1")
    assert out["config"] == CONFIG.decode()
    assert out["weights"] == sha256(WEIGHTS)
    assert out["shard"] == sha256(SHARD)
    assert out["readme"] == README.decode()
    assert out["snapshot"] == [".gitattributes", "README.md", "config.json", "extra.txt", "model.safetensors",
                               "sub/shard.bin"]
    log = fake.requests()
    cdn = [r for r in log if r["server"] == "cdn"]
    assert cdn and all(r["kind"] == "cdn" and r["path"].startswith("/repos/") for r in cdn)
    assert not any(r["authorization"] for r in cdn)
    assert fake.state()["cdn_authorization_seen"] == 0
    assert {r["path"].rsplit("/", 1)[-1] for r in cdn if r["method"] == "GET"} == {sha256(WEIGHTS), sha256(SHARD)}
    heads = [r for r in log if r["method"] == "HEAD" and r["path"].endswith("/model.safetensors")]
    assert heads and all(r["status"] == 302 and r["token"] == "hf_good" for r in heads)
    assert not any("xet" in r["path"] for r in log)
    readme_get = [r for r in log if r["method"] == "GET" and r["path"].endswith("/README.md")]
    assert readme_get and readme_get[0]["bytes"] < len(README)  # it travelled gzip-encoded


def test_default_client_goes_through_xet(fake: FakeHub, tmp_path: Path) -> None:
    if constants.HF_HUB_DISABLE_XET:
        pytest.skip("Xet is disabled in this environment")
    path = hf_hub_download("acme/bert", "sub/shard.bin", endpoint=fake.url, token="hf_good", cache_dir=tmp_path)
    assert Path(path).read_bytes() == SHARD
    log = fake.requests()
    assert [r["kind"] for r in log if r["kind"] != "telemetry"] == ["resolve", "api", "xet", "xet"]
    token_call = log[1]
    assert "/xet-read-token/" in token_call["path"] and token_call["token"] == "hf_good"
    assert "/reconstructions/" in log[2]["path"] and log[2]["token"].startswith("xet_")
    assert "/xorbs/" in log[3]["path"] and not log[3]["authorization"]
    assert not any(r["path"].startswith("/repos/") for r in log)  # the 302 Location is not used

    snap = snapshot_download("acme/bert", endpoint=fake.url, token="hf_good", cache_dir=tmp_path / "snap")
    assert (Path(snap) / "model.safetensors").read_bytes() == WEIGHTS
    heads = {r["path"].rsplit("/", 1)[-1] for r in fake.requests() if r["method"] == "HEAD"}
    assert "model.safetensors" not in heads and "config.json" in heads  # Xet files: tree listing, no HEAD


def test_repo_without_xet_downloads_through_the_cdn_in_process(fake: FakeHub, tmp_path: Path) -> None:
    path = hf_hub_download("acme/plain", "model.safetensors", endpoint=fake.url, token="hf_good",
                           cache_dir=tmp_path)
    assert Path(path).read_bytes() == WEIGHTS
    assert Path(path).resolve().name == sha256(WEIGHTS)  # the cache blob is named after X-Linked-Etag
    cdn = fake.requests(server="cdn")
    assert len(cdn) == 1 and cdn[0]["status"] == 200 and not cdn[0]["authorization"]


def test_private_gated_and_bad_tokens(fake: FakeHub, tmp_path: Path) -> None:
    def get(repo: str, token: str | bool) -> str:
        return hf_hub_download(repo, "config.json", endpoint=fake.url, token=token, cache_dir=tmp_path / str(token))

    with pytest.raises(RepositoryNotFoundError):
        get("acme/secret", False)
    assert Path(get("acme/secret", "hf_good")).read_bytes() == CONFIG
    with pytest.raises(GatedRepoError):
        get("acme/gated", False)
    with pytest.raises(GatedRepoError) as refused:
        get("acme/gated", "hf_other")
    assert refused.value.response.status_code == 403
    assert Path(get("acme/gated", "hf_good")).read_bytes() == CONFIG
    assert HfApi(endpoint=fake.url, token=False).model_info("acme/gated").gated == "manual"
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=fake.url, token=False).model_info("acme/secret")
    with pytest.raises(HfHubHTTPError) as bad:
        HfApi(endpoint=fake.url, token="hf_wrong").model_info("acme/bert")
    assert bad.value.response.status_code == 401
    assert HfApi(endpoint=fake.url, token="hf_good").whoami()["name"] == "alice"
    anonymous = httpx.get(f"{fake.url}/api/models/acme/secret")
    outsider = httpx.get(f"{fake.url}/api/models/acme/secret", headers={"Authorization": "Bearer hf_nobody"})
    assert (anonymous.status_code, anonymous.headers["X-Error-Code"]) == (401, "RepoNotFound")
    assert outsider.status_code == 401 and "Invalid credentials" in outsider.headers["X-Error-Message"]


def test_missing_entries_and_revisions(fake: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("acme/bert", "nope.json", endpoint=fake.url, token=False, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("acme/bert", "config.json", revision="nope", endpoint=fake.url, token=False,
                        cache_dir=tmp_path)
    head = httpx.head(f"{fake.url}/acme/bert/resolve/main/nope.json")
    assert head.status_code == 404 and head.headers["X-Error-Code"] == "EntryNotFound"
    assert len(head.headers["X-Repo-Commit"]) == 40
    assert httpx.get(f"{fake.url}/api/models/acme/bert/tree/main/nope").headers["X-Error-Code"] == "EntryNotFound"


def test_resolve_headers_ranges_and_the_cdn_rules(fake: FakeHub) -> None:
    head = httpx.head(f"{fake.url}/acme/bert/resolve/main/config.json")
    assert head.status_code == 200
    assert head.headers["ETag"] == f'"{git_blob_id(CONFIG)}"'
    assert head.headers["Content-Length"] == str(len(CONFIG))
    assert head.headers["Accept-Ranges"] == "bytes"
    part = httpx.get(f"{fake.url}/acme/bert/resolve/main/config.json", headers={"Range": "bytes=2-5"})
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, CONFIG[2:6],
                                                                               f"bytes 2-5/{len(CONFIG)}")
    assert httpx.get(f"{fake.url}/acme/bert/resolve/main/config.json",
                     headers={"Range": "bytes=999-"}).status_code == 416

    redirect = httpx.head(f"{fake.url}/acme/bert/resolve/v1/sub/shard.bin")
    assert redirect.status_code == 302
    assert redirect.headers["X-Linked-Etag"] == f'"{sha256(SHARD)}"'
    assert redirect.headers["X-Linked-Size"] == str(len(SHARD))
    assert len(redirect.headers["X-Xet-Hash"]) == 64 and 'rel="xet-auth"' in redirect.headers["Link"]
    location = redirect.headers["Location"]
    assert location.startswith(f"{fake.cdn_url}/repos/")
    tail = httpx.get(location, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, SHARD[-10:])
    with_auth = httpx.get(location, headers={"Authorization": "Bearer hf_good"})
    assert with_auth.status_code == 403 and b"<Error>" in with_auth.content
    assert fake.state()["cdn_authorization_seen"] == 1
    assert httpx.get(location.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403
    fake.configure(cdn_url_ttl=0)
    expired = httpx.head(f"{fake.url}/acme/bert/resolve/v1/sub/shard.bin").headers["Location"]
    assert httpx.get(expired).status_code == 403


def test_resolve_cache_alias_and_renamed_repo(fake: FakeHub, tmp_path: Path) -> None:
    fake.configure(resolve_cache=True)
    first = httpx.head(f"{fake.url}/acme/bert/resolve/main/config.json")
    assert first.status_code == 307 and first.headers["Location"].startswith("/api/resolve-cache/models/acme/bert/")
    path = hf_hub_download("acme/bert", "config.json", endpoint=fake.url, token=False, cache_dir=tmp_path / "a")
    assert Path(path).read_bytes() == CONFIG
    fake.add_alias("old-name/bert", "acme/bert")
    path = hf_hub_download("old-name/bert", "config.json", endpoint=fake.url, token=False, cache_dir=tmp_path / "b")
    assert Path(path).read_bytes() == CONFIG
    assert HfApi(endpoint=fake.url, token=False).model_info("old-name/bert").id == "acme/bert"


def test_large_file_by_path_is_streamed(fake: FakeHub, tmp_path: Path) -> None:
    big = make_large_file(tmp_path / "big.bin", 9 * 1024 * 1024 + 7)
    fake.add_repo("acme/large", {"big.bin": big}, xet=False)
    location = httpx.head(f"{fake.url}/acme/large/resolve/main/big.bin").headers["Location"]
    digest, size = hashlib.sha256(), 0
    with httpx.stream("GET", location) as response:
        assert response.headers["Content-Length"] == str(big.stat().st_size)
        for chunk in response.iter_raw():
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (big.stat().st_size, sha256(big.read_bytes()))
    assert not (fake.repos_dir / "blobs" / digest.hexdigest()).exists()  # referenced in place, not copied


# -- faults -----------------------------------------------------------------------------------------
def test_5xx_for_n_requests_then_recovery(fake: FakeHub, tmp_path: Path) -> None:
    # Nothing cached: after a failed HEAD the client retries (with backoff, honouring Retry-After).
    fake.fault("status", status=503, on=["resolve"], count=1, headers={"Retry-After": "0"})
    path = hf_hub_download("acme/bert", "config.json", endpoint=fake.url, token=False, cache_dir=tmp_path)
    assert Path(path).read_bytes() == CONFIG
    assert [r["status"] for r in fake.requests() if r["method"] == "HEAD"] == [503, 200]
    # Cached, pinned to a branch: a failing HEAD falls back to the cache without retrying.
    fake.reset()
    fake.fault("status", status=503, on=["resolve"])
    again = hf_hub_download("acme/bert", "config.json", endpoint=fake.url, token=False, cache_dir=tmp_path)
    assert again == path
    assert [r["status"] for r in fake.requests()] == [503]
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download("acme/bert", "config.json", endpoint=fake.url, token=False, cache_dir=tmp_path / "empty",
                        etag_timeout=1, local_files_only=True)

    fake.fault("status", status=500, on=["api"])  # always, until reset
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as failure:
            HfApi(endpoint=fake.url, token=False).model_info("acme/bert")
        assert failure.value.response.status_code == 500
    fake.reset()
    assert HfApi(endpoint=fake.url, token=False).model_info("acme/bert").id == "acme/bert"


def test_after_and_count_select_which_requests_fail(fake: FakeHub) -> None:
    fake.fault("status", status=502, on=["api"], after=1, count=1)
    statuses = [httpx.get(f"{fake.url}/api/models/acme/bert").status_code for _ in range(3)]
    assert statuses == [200, 502, 200]


def test_dropped_connection_is_resumed_by_the_client(fake: FakeHub, tmp_path: Path) -> None:
    """The client keeps what it wrote (whole 10 MiB chunks) and resumes with a Range request."""
    big = make_large_file(tmp_path / "big.safetensors", 12 * MIB + 3)
    fake.add_repo("acme/resume", {"big.safetensors": big}, xet=False)
    # Body faults only count on requests that send file bytes: the HEAD on resolve does not use it up.
    fake.fault("drop", file="big.safetensors", after_bytes=11 * MIB, count=1)
    path = hf_hub_download("acme/resume", "big.safetensors", endpoint=fake.url, token=False, cache_dir=tmp_path)
    assert sha256(Path(path).read_bytes()) == sha256(big.read_bytes())
    cdn = fake.requests(server="cdn")
    assert [(r["range"], r["complete"], r["bytes"]) for r in cdn] == [
        (None, False, 11 * MIB), (f"bytes={10 * MIB}-", True, 2 * MIB + 3)]


def test_corrupted_bytes_keep_the_headers(fake: FakeHub, tmp_path: Path) -> None:
    fake.fault("corrupt", on=["cdn"], sha256=sha256(WEIGHTS), offsets=[0, 1000])
    head = httpx.head(f"{fake.url}/acme/plain/resolve/main/model.safetensors")
    body = httpx.get(head.headers["Location"]).content
    assert len(body) == len(WEIGHTS) and body != WEIGHTS
    assert [i for i in range(len(body)) if body[i] != WEIGHTS[i]] == [0, 1000]
    assert head.headers["X-Linked-Etag"] == f'"{sha256(WEIGHTS)}"'
    # huggingface_hub does not check the sha256 of what it downloads: the corruption goes through.
    path = hf_hub_download("acme/plain", "model.safetensors", endpoint=fake.url, token=False, cache_dir=tmp_path)
    assert Path(path).read_bytes() != WEIGHTS and len(Path(path).read_bytes()) == len(WEIGHTS)


def test_redirect_loop_not_found_and_throttle(fake: FakeHub) -> None:
    fake.fault("redirect_loop", on=["resolve"])
    with pytest.raises(httpx.TooManyRedirects):
        httpx.get(f"{fake.url}/acme/bert/resolve/main/config.json", follow_redirects=True)
    fake.reset()

    fake.fault("not_found")  # upstream "down": a bare 404 everywhere
    api = httpx.get(f"{fake.url}/api/models/acme/bert")
    cdn = httpx.get(f"{fake.cdn_url}/repos/00/00/{'0' * 64}")
    assert (api.status_code, cdn.status_code) == (404, 404)
    assert "X-Error-Code" not in api.headers
    fake.reset()

    fake.fault("throttle", on=["resolve"], bytes_per_second=200_000)
    fake.fault("delay", on=["resolve"], seconds=0.01)
    response = httpx.get(f"{fake.url}/acme/bert/resolve/main/README.md", headers={"Accept-Encoding": "identity"})
    assert response.content == README
    assert fake.requests()[-1]["faults"] == ["delay", "throttle"]


def test_stopped_process_then_restart_on_the_same_ports(tmp_path: Path) -> None:
    hub = start_fakehub(tmp_path)
    try:
        hub.add_repo("acme/x", {"config.json": CONFIG})
        url = hub.url
        hub.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/api/models/acme/x")
        hub.restart()
        assert hub.url == url
        assert httpx.get(f"{url}/api/models/acme/x").json()["id"] == "acme/x"
    finally:
        hub.stop()


def test_concurrent_requests_are_logged(fake: FakeHub) -> None:
    def fetch() -> None:
        httpx.get(f"{fake.url}/acme/bert/resolve/main/config.json").raise_for_status()

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = fake.requests(server="hub")
    assert len(log) == 8 and all(r["status"] == 200 and r["complete"] for r in log)


def test_dataset_pr_revision_and_conditional_requests(fake: FakeHub, tmp_path: Path) -> None:
    pr = fake.add_repo("acme/squad", {"train.csv": b"a,b\n3,4\n"}, repo_type="dataset", branch="refs/pr/1")
    main = hf_hub_download("acme/squad", "train.csv", repo_type="dataset", endpoint=fake.url, token=False,
                           cache_dir=tmp_path)
    on_pr = hf_hub_download("acme/squad", "train.csv", repo_type="dataset", revision="refs/pr/1",
                            endpoint=fake.url, token=False, cache_dir=tmp_path)
    assert (Path(main).read_bytes(), Path(on_pr).read_bytes()) == (b"a,b\n1,2\n", b"a,b\n3,4\n")
    assert any(r["raw_path"].endswith("/resolve/refs%2Fpr%2F1/train.csv") for r in fake.requests())
    refs = HfApi(endpoint=fake.url, token=False).list_repo_refs("acme/squad", repo_type="dataset", include_pull_requests=True)
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", pr.sha)]

    url = f"{fake.url}/acme/bert/resolve/main/config.json"
    etag = httpx.head(url).headers["ETag"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert len(fake.fetches(path="config.json")) == 0
    assert httpx.get(url).content == CONFIG
    assert len(fake.fetches(path="config.json")) == 1
