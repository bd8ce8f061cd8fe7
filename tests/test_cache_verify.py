"""`hf cache verify` (huggingface_hub >= 1.1) passes for hosted and mirrored repos: it checks each
cached file against the recursive tree (`lfs.oid` SHA-256 for LFS files, git blob ids otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, snapshot_download

from clients.harness import client_env
from conftest import Server
from fakehub import FakeHub, start_fakehub
from test_client_matrix import client_venvs, venv_for  # noqa: F401 - fixture reuse
from test_mirror_faults import mirror_of

FILES = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(300_000), "sub/notes.txt": b"notes\n"}
HF_2 = Path(sys.executable).parent / "hf"


def verify(hf: Path, endpoint: str, repo: str, cache: Path, token: str | None = None) -> subprocess.CompletedProcess:
    args = [str(hf), "cache", "verify", repo, "--cache-dir", str(cache), "--fail-on-missing-files",
            "--fail-on-extra-files"]
    env = client_env(endpoint, cache.parent / "home", **({"HF_TOKEN": token} if token else {}))
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    fake = start_fakehub(tmp_path_factory.mktemp("hub"))
    fake.add_repo("up/verified", FILES)
    yield fake
    fake.stop()


def test_hf_cache_verify_passes_for_a_hosted_repo(server: Server, alice_token: str, tmp_path: Path) -> None:
    repo = f"alice/verify-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo)
    api.create_commit(repo, [CommitOperationAdd(p, d) for p, d in FILES.items()], commit_message="files")
    cache = tmp_path / "cache"
    snapshot_download(repo, endpoint=server.url, token=alice_token, cache_dir=cache)
    done = verify(HF_2, server.url, repo, cache, alice_token)
    assert done.returncode == 0, done.stdout + done.stderr
    # It does check: a changed byte in the cache fails it.
    blob = next(p for p in (cache / f"models--{repo.replace('/', '--')}" / "blobs").iterdir() if p.stat().st_size > 1000)
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    assert verify(HF_2, server.url, repo, cache, alice_token).returncode != 0


@pytest.mark.clients
@pytest.mark.parametrize("version", ["1.33.0", "2.4.0"])
def test_hf_cache_verify_passes_for_a_mirrored_repo(
    version: str, client_venvs, upstream: FakeHub, tmp_path: Path  # noqa: F811
) -> None:
    mirror = mirror_of(tmp_path, upstream, token=None)
    try:
        cache = tmp_path / "cache"
        snapshot_download("up/verified", endpoint=mirror.url, cache_dir=cache)
        done = verify(venv_for(client_venvs, version).bin("hf"), mirror.url, "up/verified", cache)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        mirror.stop()
