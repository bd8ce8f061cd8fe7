"""Mirroring an upstream that is itself a partial mirror, and a hubgate behind that mirror.

The fake upstream (`configure(partial=True)`) answers only what clients call: info only with a
revision, `tree/{rev}` 301 to `tree/{rev}/` (query kept), 401 RepoNotFound for a missing file or
revision, LFS bytes straight from the resolve URL without `X-Linked-Etag`, no Content-Length on
GET, Range ignored (200 with the whole body), unquoted ETags. Files are verified against the
SHA-256 (LFS) or git blob id of the tree listing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

from conftest import Server, start_server
from fakehub import FakeHub, start_fakehub
from test_mirror_faults import mirror_of

WEIGHTS = os.urandom(3 * 1024 * 1024 + 17)
FILES = {"config.json": '{"partial": true}', "model.safetensors": WEIGHTS, "docs/notes.txt": "n" * 5000}
REPO = "hub/partial"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    hub = start_fakehub(tmp_path_factory.mktemp("partial"), xet=False)
    hub.add_repo(REPO, FILES, tags=["v1"], xet=False)
    yield hub
    hub.stop()


@pytest.fixture()
def partial(fake: FakeHub) -> Iterator[FakeHub]:
    fake.reset()
    fake.configure(partial=True)
    yield fake
    fake.reset()


@pytest.fixture()
def mirror(tmp_path: Path, partial: FakeHub) -> Iterator[Server]:
    srv = mirror_of(tmp_path, partial, token=None)
    yield srv
    srv.stop()


def test_the_fake_answers_only_part_of_the_api(partial: FakeHub) -> None:
    assert httpx.get(f"{partial.url}/api/models/{REPO}").status_code == 401
    assert httpx.get(f"{partial.url}/api/models/{REPO}/revision/main").json()["sha"]
    assert httpx.get(f"{partial.url}/api/models/{REPO}/tree/main").status_code == 301
    weights = httpx.get(f"{partial.url}/{REPO}/resolve/main/model.safetensors", headers={"Range": "bytes=0-9"})
    assert weights.status_code == 200 and weights.content == WEIGHTS and "content-length" not in weights.headers
    assert weights.headers["etag"] == hashlib.sha256(WEIGHTS).hexdigest() and "x-linked-etag" not in weights.headers
    assert httpx.get(f"{partial.url}/{REPO}/resolve/main/nothing.bin").status_code == 401


def test_clients_download_everything_through_the_mirror(mirror: Server, tmp_path: Path) -> None:
    folder = snapshot_download(REPO, endpoint=mirror.url, cache_dir=tmp_path / "cache")
    for name, content in FILES.items():
        data = content if isinstance(content, bytes) else content.encode()
        assert (Path(folder) / name).read_bytes() == data
    api = HfApi(endpoint=mirror.url)
    info = api.model_info(REPO)
    assert info.sha and sorted(s.rfilename for s in info.siblings or []) == sorted([*FILES, ".gitattributes"])
    assert api.model_info(REPO, revision="v1").sha == info.sha
    head = httpx.head(f"{mirror.url}/{REPO}/resolve/main/model.safetensors")
    assert head.headers["x-linked-etag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    assert head.headers["content-length"] == str(len(WEIGHTS))


def test_missing_files_and_revisions_answer_as_the_hub_does(mirror: Server, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "nothing.bin", endpoint=mirror.url, cache_dir=tmp_path / "cache")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch", endpoint=mirror.url, cache_dir=tmp_path / "c2")


def test_corrupted_bytes_without_linked_etag_are_caught_by_the_tree_sha256(mirror: Server, partial: FakeHub) -> None:
    partial.fault("corrupt", on=["resolve"], file="model.safetensors")
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("GET", f"{mirror.url}/{REPO}/resolve/main/model.safetensors", timeout=60) as response:
            for _ in response.iter_raw():
                pass
    status = httpx.get(f"{mirror.url}/api/mirror/status", headers=mirror.admin_headers()).json()
    assert status["cache"]["integrityErrors"] == 1 and status["cache"]["files"] == 0


def test_a_broken_transfer_resumes_although_range_is_ignored(mirror: Server, partial: FakeHub) -> None:
    partial.fault("drop", on=["resolve"], file="model.safetensors", after_bytes=1_000_000, count=1)
    response = httpx.get(f"{mirror.url}/{REPO}/resolve/main/model.safetensors", timeout=60)
    assert response.status_code == 200 and response.content == WEIGHTS
    fetched = [r for r in partial.requests() if r["kind"] == "resolve" and r["path"].endswith("model.safetensors")]
    assert len(fetched) == 2 and fetched[1]["range"] == "bytes=1000000-"  # resumed; the resent start was skipped


def test_a_cold_range_is_served_although_range_is_ignored(mirror: Server) -> None:
    start = len(WEIGHTS) - 100
    response = httpx.get(f"{mirror.url}/{REPO}/resolve/main/model.safetensors", headers={"Range": f"bytes={start}-"},
                         timeout=60)
    assert response.status_code == 206 and response.content == WEIGHTS[start:]


def test_a_hubgate_behind_the_mirror(mirror: Server, tmp_path: Path) -> None:
    config = tmp_path / "second.toml"
    config.write_text(f'[[upstream]]\nname = "first"\nurl = "{mirror.url}"\n')
    second = start_server(tmp_path / "second", config=config)
    try:
        folder = snapshot_download(REPO, endpoint=second.url, cache_dir=tmp_path / "cache2")
        assert (Path(folder) / "model.safetensors").read_bytes() == WEIGHTS
        assert hf_hub_download(REPO, "config.json", revision="v1", endpoint=second.url, cache_dir=tmp_path / "c3")
    finally:
        second.stop()
