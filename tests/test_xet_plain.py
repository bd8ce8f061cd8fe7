"""Files uploaded through Xet, downloaded by clients without hf_xet (issue 11, "one repo, every client").

The first whole plain-HTTP (or git-lfs) download rebuilds the file from its xorbs and keeps the bytes
as a verified blob, its plain copy; later downloads are served from it like an LFS file (sendfile).
The copies are capped (`[xet] plain_copy_max_bytes`), least recently used first out, and a copy is
never published when the rebuilt bytes are not the file's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from clients.harness import client_env
from conftest import Server, start_server
from test_metrics import samples

SIZE = 3 * 1024 * 1024
CAP = 5 * 1024 * 1024  # one copy fits, two do not
REPO = "alice/voices"


@dataclass
class Hub:
    server: Server
    token: str
    files: dict[str, bytes]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, name: str, byte_range: str | None = None) -> httpx.Response:
        headers = {**self.auth(), **({"Range": byte_range} if byte_range else {})}
        return httpx.get(f"{self.server.url}/{REPO}/resolve/main/{name}", headers=headers, timeout=120)

    def copies(self) -> dict[str, bool]:
        """{sha256: ready} of the plain copies recorded."""
        return {sha256: bool(ready) for sha256, ready in self.server.sql("SELECT sha256, ready FROM xet_plain_copies")}

    def blob(self, sha256: str) -> Path:
        return self.server.data / "blobs" / sha256[:2] / sha256[2:4] / sha256

    def served_by(self) -> dict[str, float]:
        text = httpx.get(f"{self.server.url}/metrics", headers=self.server.admin_headers()).text
        return {labels[0][1]: value for (name, labels), value in samples(text).items()
                if name == "hubgate_file_responses_total"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    work = tmp_path_factory.mktemp("xet-plain")
    config = work / "hubgate.toml"
    config.write_text(f"[xet]\nplain_copy_max_bytes = {CAP}\nplain_copy_idle = 0\n")
    with start_server(work / "data", config=config, blobs="local") as srv:
        srv.add_user("alice")
        token = srv.token("alice", "write")
        api = HfApi(endpoint=srv.url, token=token)
        api.create_repo(REPO, private=True)
        files = {name: os.urandom(SIZE) for name in ("a.bin", "b.bin", "lfs.bin", "damaged.bin")}
        for name, data in files.items():  # this process's huggingface_hub has hf_xet: through the CAS
            api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id=REPO)
        hub = Hub(srv, token, files)
        for name in files:
            head = httpx.head(f"{srv.url}/{REPO}/resolve/main/{name}", headers=hub.auth())
            assert "x-xet-hash" in head.headers, (name, head.headers)  # uploaded through Xet, not LFS
        assert hub.copies() == {}  # Xet clients alone: no copy
        yield hub


def plain_download(hub: Hub, name: str, home: Path) -> bytes:
    """hf_hub_download with HF_HUB_DISABLE_XET=1, in a process of its own."""
    code = ("import sys\nfrom huggingface_hub import hf_hub_download\n"
            f"print(hf_hub_download({REPO!r}, {name!r}))\n")
    env = client_env(hub.server.url, home, HF_TOKEN=hub.token, HF_HUB_DISABLE_XET="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1]).read_bytes()


def test_a_plain_download_keeps_a_copy_the_next_one_is_served_from(hub: Hub, tmp_path: Path) -> None:
    data = hub.files["a.bin"]
    part = hub.get("a.bin", "bytes=1000000-1999999")  # a range is rebuilt, and keeps no copy
    assert part.status_code == 206 and part.content == data[1_000_000:2_000_000]
    assert hub.copies() == {}
    before = hub.served_by()
    assert plain_download(hub, "a.bin", tmp_path / "first") == data
    assert hub.copies() == {sha256(data): True} and hub.blob(sha256(data)).read_bytes() == data
    middle = hub.served_by()
    assert middle.get("stream", 0) - before.get("stream", 0) == 1
    assert plain_download(hub, "a.bin", tmp_path / "second") == data
    part = hub.get("a.bin", "bytes=1000000-1999999")
    assert part.status_code == 206 and part.content == data[1_000_000:2_000_000]
    assert part.headers["x-linked-etag"] == f'"{sha256(data)}"' and "x-xet-hash" in part.headers
    after = hub.served_by()
    assert after.get("sendfile", 0) - middle.get("sendfile", 0) == 2 and after.get("stream", 0) == middle.get("stream", 0)


def test_copies_past_the_cap_evict_the_least_recently_used(hub: Hub) -> None:
    a, b = hub.files["a.bin"], hub.files["b.bin"]
    assert hub.get("a.bin").content == a  # a copy of a (made now, or by the test before)
    assert hub.copies() == {sha256(a): True}
    assert hub.get("b.bin").content == b  # b's copy pushes the copies past the cap: a goes
    assert hub.copies() == {sha256(b): True}
    assert not hub.blob(sha256(a)).exists() and hub.blob(sha256(b)).exists()
    before = hub.served_by()
    assert hub.get("a.bin").content == a  # rebuilt again, and copied again (b goes)
    assert hub.served_by().get("stream", 0) - before.get("stream", 0) == 1
    assert hub.copies() == {sha256(a): True}
    fsck = hub.server.cli("fsck", check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr  # an evicted copy is no missing content


def test_git_lfs_batch_downloads_a_xet_uploaded_object(hub: Hub) -> None:
    data = hub.files["lfs.bin"]
    oid = sha256(data)
    answer = httpx.post(f"{hub.server.url}/{REPO}.git/info/lfs/objects/batch", headers=hub.auth(),
                        json={"operation": "download", "objects": [{"oid": oid, "size": len(data)}]}).json()
    href = answer["objects"][0]["actions"]["download"]["href"]
    for _ in range(2):  # rebuilt (and copied), then from the copy
        got = httpx.get(href, timeout=120)
        assert got.status_code == 200 and got.content == data
    assert hub.copies().get(oid) is True
    part = httpx.get(href, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    missing = "0" * 64
    unknown = httpx.post(f"{hub.server.url}/{REPO}.git/info/lfs/objects/batch", headers=hub.auth(),
                         json={"operation": "download", "objects": [{"oid": missing, "size": 1}]}).json()
    assert unknown["objects"][0]["error"]["code"] == 404


def test_no_copy_is_published_from_damaged_xorbs(hub: Hub) -> None:
    data = hub.files["damaged.bin"]
    xet = httpx.head(f"{hub.server.url}/{REPO}/resolve/main/damaged.bin", headers=hub.auth()).headers["x-xet-hash"]
    blobs = hub.server.sql("SELECT x.blob_sha256 FROM xet_xorbs x JOIN xet_file_xorbs f ON f.xorb_hash = x.hash "
                           "WHERE f.file_hash = :h", h=xet)
    assert blobs
    stored = hub.blob(blobs[0][0])
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    got = b""
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", f"{hub.server.url}/{REPO}/resolve/main/damaged.bin",
                                                      headers=hub.auth(), timeout=120) as response:
        for piece in response.iter_raw():
            got += piece
    assert len(got) < len(data)
    assert sha256(data) not in hub.copies() and not hub.blob(sha256(data)).exists()
