"""Real huggingface_hub clients with hf_xet, at their default settings, uploading through hubgate's Xet CAS.

Each client step runs `clients/xet_steps.py` in a pinned venv (`venvs.py`): 2.4.0 with hf_xet 1.8.0
and with hf_xet 1.6.0 (no upload grants), 1.33.0 (the 1.x line after the switch to Xet uploads), 0.36.2
(which downloads through Xet too), and HF_HUB_DISABLE_XET=1 for plain HTTP. The server's access log
tells which path a client took; the database tells how many xorb bytes are stored. Every scenario has
an HF_HOME of its own (hf_xet's shard cache lives there, so a re-upload in the same scenario is
deduplicated by the client). sentence-transformers loading a model uploaded through Xet is
tests/test_models.py (huggingface_hub 2.4.0 with hf_xet 1.8.0 in the test venv).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hf_xet
import httpx
import pytest
from huggingface_hub import HfApi

from clients.harness import Request, client_env, synced_requests
from conftest import Server, start_server
from hubgate.xet.hashing import chunk_hash, file_hash, hash_to_str, verification_hash, xorb_hash
from hubgate.xet.shard import FileEntry, Term, XorbEntry, build_shard
from hubgate.xet.xorb import build_xorb
from venvs import CLIENTS, HF_XET_1_6, ClientSpec, Venv, ensure_many

pytestmark = pytest.mark.clients

STEPS = Path(__file__).resolve().parent / "clients" / "xet_steps.py"
RESULT_PREFIX = "STEP-RESULT "
SIZE = 8 * 1024 * 1024
XET_UPLOADERS = {"2.4.0": CLIENTS["2.4.0"], "2.4.0-hf_xet-1.6.0": HF_XET_1_6, "1.33.0": CLIENTS["1.33.0"]}
EVERY = [*XET_UPLOADERS.values(), CLIENTS["0.36.2"]]


@pytest.fixture(scope="module")
def venvs() -> dict[str, Venv | BaseException]:
    return ensure_many(EVERY)


def venv_of(venvs: dict[str, Venv | BaseException], spec: ClientSpec) -> Venv:
    found = venvs[spec.name]
    if isinstance(found, BaseException):
        pytest.fail(f"could not build the venv {spec.name}:\n{found}")
    return found


@dataclass
class Hub:
    server: Server
    write: str  # alice's write token
    read: str  # alice's read-only token

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.write}"}

    def new_repo(self, label: str) -> str:
        repo = f"alice/{label.replace('.', '-')}-{uuid.uuid4().hex[:6]}"  # no "xet" in it: see xet_calls
        HfApi(endpoint=self.server.url, token=self.write).create_repo(repo, private=True)
        return repo

    def xorb_bytes(self) -> int:
        """Serialized bytes of every stored xorb."""
        return int(self.server.sql("SELECT COALESCE(SUM(size), 0) FROM xet_xorbs")[0][0])

    def head(self, repo: str, path: str, revision: str = "main") -> httpx.Response:
        return httpx.head(f"{self.server.url}/{repo}/resolve/{revision}/{path}", headers=self.auth(), timeout=60)

    def get(self, repo: str, path: str, byte_range: str | None = None) -> httpx.Response:
        headers = {**self.auth(), **({"Range": byte_range} if byte_range else {})}
        return httpx.get(f"{self.server.url}/{repo}/resolve/main/{path}", headers=headers, timeout=300)

    def head_commit(self, repo: str) -> str:
        return str(HfApi(endpoint=self.server.url, token=self.write).repo_info(repo).sha)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with start_server(tmp_path_factory.mktemp("hubgate-xet")) as srv:
        srv.add_user("alice")
        srv.add_user("bob")
        yield Hub(srv, srv.token("alice", "write"), srv.token("alice", "read"))


def run_step(venv: Venv, hub: Hub, home: Path, *args: str, token: str | None = None,
             **env: str) -> subprocess.CompletedProcess[str]:
    log = home / "hf_xet.log"
    full_env = client_env(hub.server.url, home, HF_TOKEN=token or hub.write, HF_XET_LOG_DEST=str(log), **env)
    return subprocess.run([str(venv.python), str(STEPS), *args], env=full_env, capture_output=True, text=True,
                          timeout=600, check=False)


def step(venv: Venv, hub: Hub, home: Path, *args: str, **env: str) -> dict[str, object]:
    done = run_step(venv, hub, home, *args, **env)
    log = home / "hf_xet.log"
    xet_log = log.read_text()[-4000:] if log.exists() else ""
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}\n--- hf_xet log ---\n{xet_log}"
    line = next(line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX))
    result: dict[str, object] = json.loads(line[len(RESULT_PREFIX):])
    return result


def xet_calls(requests: list[Request]) -> list[Request]:
    """The requests of the Xet protocol: tokens and the CAS."""
    return [r for r in requests if any(part in r.target for part in ("/xet-cas/", "/xet-read-token/", "/xet-write-token/"))]


def posts(requests: list[Request], fragment: str) -> list[Request]:
    return [r for r in requests if r.method == "POST" and fragment in r.target]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def xet_hash(path: Path) -> str:
    return str(hf_xet.hash_files([str(path)])[0].hash)


def assert_served(hub: Hub, repo: str, path: str, data: bytes, local: Path, commit: str) -> None:
    """HEAD names the Xet file and its refresh route; GET (whole and Range) returns its bytes."""
    head = hub.head(repo, path)
    assert head.status_code == 200, head.text
    assert head.headers["x-xet-hash"] == xet_hash(local)
    assert head.headers["etag"] == head.headers["x-linked-etag"] == f'"{sha256(data)}"'
    assert head.headers["x-linked-size"] == str(len(data))
    assert head.headers["x-repo-commit"] == commit
    assert head.headers["link"] == f'<{hub.server.url}/api/models/{repo}/xet-read-token/{commit}>; rel="xet-auth"'
    whole = hub.get(repo, path)
    assert whole.status_code == 200 and whole.content == data
    part = hub.get(repo, path, "bytes=1000000-1999999")
    assert part.status_code == 206 and part.content == data[1_000_000:2_000_000]
    listing = httpx.get(f"{hub.server.url}/api/models/{repo}/tree/main/{path.rpartition('/')[0]}", headers=hub.auth())
    entry = next(e for e in listing.json() if e["path"] == path)
    assert entry["xetHash"] == xet_hash(local) and entry["lfs"]["oid"] == sha256(data)


@pytest.mark.parametrize("label", list(XET_UPLOADERS))
def test_upload_reupload_and_edit_through_xet(label: str, hub: Hub, venvs: dict[str, Venv | BaseException],
                                              tmp_path: Path) -> None:
    venv = venv_of(venvs, XET_UPLOADERS[label])
    repo, home = hub.new_repo(label), tmp_path / "hf-home"
    data = os.urandom(SIZE)
    first = tmp_path / "v1.bin"
    first.write_bytes(data)

    since = len(hub.server.log)
    commit = str(step(venv, hub, home, "upload", repo, "weights/v1.bin", str(first))["commit"])
    seen = synced_requests(hub.server, since)
    assert [r.status for r in seen if "/xet-write-token/" in r.target][:1] == [200], seen
    assert posts(seen, "/xet-cas/v1/xorbs/") and all(r.status == 200 for r in posts(seen, "/xet-cas/v1/xorbs/"))
    assert [r.status for r in posts(seen, "/xet-cas/v1/shards")] == [200], seen
    assert not [r for r in seen if "/info/lfs/" in r.target or "/_hubgate/lfs/" in r.target], seen
    assert_served(hub, repo, "weights/v1.bin", data, first, commit)
    stored = hub.xorb_bytes()

    # The same bytes again (another path): the client's shard cache knows every chunk, no xorb is sent.
    since = len(hub.server.log)
    commit = str(step(venv, hub, home, "upload", repo, "weights/copy.bin", str(first))["commit"])
    seen = synced_requests(hub.server, since)
    assert posts(seen, "/xet-cas/v1/xorbs/") == [] and hub.xorb_bytes() == stored, seen
    assert [r.status for r in posts(seen, f"/api/models/{repo}/commit/")] == [200], seen
    assert hub.get(repo, "weights/copy.bin").content == data

    # An edited copy: only the chunks around the edit travel and are stored.
    edited = bytearray(data)
    edited[SIZE // 2 : SIZE // 2 + 1000] = os.urandom(1000)
    second = tmp_path / "v2.bin"
    second.write_bytes(edited)
    since = len(hub.server.log)
    commit = str(step(venv, hub, home, "upload", repo, "weights/v2.bin", str(second))["commit"])
    seen = synced_requests(hub.server, since)
    grown = hub.xorb_bytes() - stored
    assert posts(seen, "/xet-cas/v1/xorbs/") and 0 < grown < SIZE // 16, (grown, seen)
    assert_served(hub, repo, "weights/v2.bin", bytes(edited), second, commit)


@dataclass
class Published:
    repo: str
    files: dict[str, bytes]  # path -> bytes
    xet: set[str]  # the paths uploaded through Xet


@pytest.fixture(scope="module")
def published(hub: Hub, venvs: dict[str, Venv | BaseException], tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A repo with a random file and 300000 zero bytes uploaded through Xet, and a file uploaded by LFS."""
    work = tmp_path_factory.mktemp("published")
    venv = venv_of(venvs, CLIENTS["2.4.0"])
    repo = hub.new_repo("published")
    files = {"big.bin": os.urandom(SIZE), "zeros.bin": bytes(300_000), "lfs.bin": os.urandom(3 * 1024 * 1024)}
    for name, data in files.items():
        (work / name).write_bytes(data)
        env = {"HF_HUB_DISABLE_XET": "1"} if name == "lfs.bin" else {}
        step(venv, hub, work / f"home-{name}", "upload", repo, name, str(work / name), **env)
    return Published(repo, files, {"big.bin", "zeros.bin"})


# 0.36.2 has hf_xet too (huggingface_hub[hf_xet]): it downloads Xet files through Xet as well.
DOWNLOADERS = [("2.4.0", CLIENTS["2.4.0"], {}), ("2.4.0-hf_xet-1.6.0", HF_XET_1_6, {}), ("1.33.0", CLIENTS["1.33.0"], {}),
               ("0.36.2", CLIENTS["0.36.2"], {}), ("2.4.0-xet-disabled", CLIENTS["2.4.0"], {"HF_HUB_DISABLE_XET": "1"}),
               ("0.36.2-xet-disabled", CLIENTS["0.36.2"], {"HF_HUB_DISABLE_XET": "1"})]


@pytest.mark.parametrize(("label", "spec", "env"), DOWNLOADERS, ids=[d[0] for d in DOWNLOADERS])
def test_download_xet_and_plain(label: str, spec: ClientSpec, env: dict[str, str], hub: Hub, published: Published,
                                venvs: dict[str, Venv | BaseException], tmp_path: Path) -> None:
    venv = venv_of(venvs, spec)
    uses_xet = "HF_HUB_DISABLE_XET" not in env
    for name, data in published.files.items():
        since = len(hub.server.log)
        got = step(venv, hub, tmp_path / f"home-{name}", "download", published.repo, name, "main", **env)
        assert (got["sha256"], got["size"]) == (sha256(data), len(data)), name
        seen = synced_requests(hub.server, since)
        reconstructed = [r for r in seen if "/xet-cas/v1/reconstructions/" in r.target]
        if uses_xet and name in published.xet:  # from the CAS, not over plain HTTP
            assert reconstructed and not [r for r in seen if r.method == "GET" and "/resolve/" in r.target], seen
        else:  # plain HTTP: no Xet for a file uploaded by LFS, nor for a client without Xet
            assert xet_calls(seen) == [] and [r for r in seen if r.method == "GET" and "/resolve/" in r.target], seen
    # A range over HTTP (HfFileSystem), whatever the client does for whole files.
    start, length = 3_000_001, 2_500_000
    got = step(venv, hub, tmp_path / "home-range", "range", published.repo, "big.bin", str(start), str(length), **env)
    assert got["sha256"] == sha256(published.files["big.bin"][start : start + length])


def test_lfs_upload_advertises_no_xet(hub: Hub, published: Published) -> None:
    head = hub.head(published.repo, "lfs.bin")
    assert head.status_code == 200 and "x-xet-hash" not in head.headers and "link" not in head.headers
    listing = httpx.get(f"{hub.server.url}/api/models/{published.repo}/tree/main", headers=hub.auth()).json()
    assert {e["path"] for e in listing if "xetHash" in e} == published.xet


def test_xet_tokens(hub: Hub, published: Published) -> None:
    api = f"{hub.server.url}/api/models/{published.repo}"
    proposal = HfApi(endpoint=hub.server.url, token=hub.write).create_pull_request(published.repo, title="xet")
    for route, token in (("xet-write-token/main", hub.write), ("xet-read-token/main", hub.read),
                         ("xet-write-token/None?create_pr=1", hub.write),
                         (f"xet-write-token/refs%2Fpr%2F{proposal.num}", hub.write)):
        answer = httpx.get(f"{api}/{route}", headers=hub.auth(token))
        body = answer.json()
        assert answer.status_code == 200 and body["casUrl"] == f"{hub.server.url}/xet-cas", (route, answer.text)
        assert answer.headers["x-xet-access-token"] == body["accessToken"] and body["accessToken"]
        assert answer.headers["x-xet-cas-url"] == body["casUrl"]
        assert answer.headers["x-xet-token-expiration"] == str(body["exp"])
    # A read-only token gets no write token; an outsider learns nothing of the private repo.
    refused = httpx.get(f"{api}/xet-write-token/main", headers=hub.auth(hub.read))
    assert refused.status_code == 403, refused.text
    outsider = hub.server.token("bob", "write")
    for route in ("xet-write-token/main", "xet-read-token/main"):
        assert httpx.get(f"{api}/{route}", headers=hub.auth(outsider)).status_code == 404
    assert httpx.get(f"{api}/xet-read-token/main").status_code == 401


def test_read_token_cannot_upload(hub: Hub, venvs: dict[str, Venv | BaseException], tmp_path: Path) -> None:
    venv = venv_of(venvs, CLIENTS["2.4.0"])
    repo = hub.new_repo("read-only")
    local = tmp_path / "f.bin"
    local.write_bytes(os.urandom(1024 * 1024))
    before = hub.head_commit(repo)
    done = run_step(venv, hub, tmp_path / "home", "upload", repo, "f.bin", str(local), token=hub.read)
    assert done.returncode != 0
    assert hub.head_commit(repo) == before


def lfs_commit(hub: Hub, repo: str, path: str, oid: str, size: int) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "by oid"}},
             {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}}]
    return httpx.post(f"{hub.server.url}/api/models/{repo}/commit/main", headers=hub.auth(), timeout=120,
                      content="\n".join(json.dumps(line) for line in lines).encode())


def test_commit_of_content_not_uploaded_is_refused(hub: Hub, published: Published) -> None:
    """An oid no shard uploaded for this repo: 400, and the branch does not move."""
    before = hub.head_commit(published.repo)
    answer = lfs_commit(hub, published.repo, "other.bin", sha256(b"never uploaded"), 14)
    assert answer.status_code == 400 and "was not uploaded" in answer.json()["error"]
    assert hub.head_commit(published.repo) == before


def test_commit_of_a_false_sha256_claim_is_refused(hub: Hub) -> None:
    """A shard (built by hand, as a hostile client may) claims its file hashes to the sha256 of other
    bytes: the CAS accepts the claim, the commit hashes the reconstructed file and refuses it."""
    repo = hub.new_repo("false-claim")
    data, other = os.urandom(5000), os.urandom(5000)  # one chunk each
    chunk = (chunk_hash(data), len(data))
    xorb = xorb_hash([chunk])
    token = httpx.get(f"{hub.server.url}/api/models/{repo}/xet-write-token/main", headers=hub.auth()).json()
    cas = {"Authorization": f"Bearer {token['accessToken']}"}
    stored = httpx.post(f"{token['casUrl']}/v1/xorbs/default/{hash_to_str(xorb)}", content=build_xorb([data]), headers=cas)
    assert stored.status_code == 200, stored.text
    entry = FileEntry(file_hash([chunk]), (Term(xorb, len(data), 0, 1),), (verification_hash([chunk[0]]),), sha256(other))
    shard = build_shard([entry], [XorbEntry(xorb, (chunk,))])
    registered = httpx.post(f"{token['casUrl']}/v1/shards", content=shard, headers=cas)
    assert registered.status_code == 200, registered.text
    before = hub.head_commit(repo)
    answer = lfs_commit(hub, repo, "claimed.bin", sha256(other), len(other))
    assert answer.status_code == 400 and f"hashes to {sha256(data)}" in answer.json()["error"], answer.text
    assert hub.head_commit(repo) == before
    # The true sha256 was never claimed for this repo: not committable either.
    assert lfs_commit(hub, repo, "claimed.bin", sha256(data), len(data)).status_code == 400
    assert hub.head_commit(repo) == before
