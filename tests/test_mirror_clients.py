"""Several huggingface_hub releases download through the mirror of a fake huggingface.co, then
again from the mirror's cache once the upstream is gone. The fake's repo is Xet-backed (Xet
headers, `xetHash` in trees), so a client that saw any of it would try Xet and fail."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.harness import client_env, synced_log
from conftest import Server, start_server
from fakehub import FakeHub, start_fakehub
from test_client_matrix import client_venvs, venv_for  # noqa: F401 - fixture reuse

pytestmark = pytest.mark.clients

WEIGHTS = os.urandom(3 * 1024 * 1024)
FILES = {"config.json": '{"hidden": 8}', "model.safetensors": WEIGHTS, "tokenizer/vocab.txt": "a\nb\nc\n"}

DOWNLOAD = """
import hashlib, json, os, sys
from pathlib import Path
from huggingface_hub import hf_hub_download, snapshot_download
repo, revisions = sys.argv[1], sys.argv[2:]
out = {}
for rev in revisions:
    path = hf_hub_download(repo, "model.safetensors", revision=rev)
    snap = snapshot_download(repo, revision=rev)
    files = sorted(str(p.relative_to(snap)) for p in Path(snap).rglob("*") if p.is_file())
    out[rev] = {"weights": hashlib.sha256(Path(path).read_bytes()).hexdigest(), "files": files}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeHub, str]]:
    with start_fakehub(tmp_path_factory.mktemp("hub")) as fake:
        commit = fake.add_repo("acme/tiny", FILES, tags=["v1"]).sha
        yield fake, commit


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, upstream: tuple[FakeHub, str]) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("mirror")
    (tmp / "hubgate.toml").write_text(f'[[upstream]]\nname = "hub"\nurl = "{upstream[0].url}"\n')
    with start_server(tmp / "data", config=tmp / "hubgate.toml") as srv:
        yield srv


def download(python: Path, mirror: Server, home: Path, revisions: list[str]) -> dict:
    done = subprocess.run([str(python), "-c", DOWNLOAD, "acme/tiny", *revisions], capture_output=True, text=True,
                          env=client_env(mirror.url, home), timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


@pytest.mark.parametrize("version", ["0.36.2", "1.19.0", "2.4.0"])
def test_clients_download_through_the_mirror(version: str, client_venvs, mirror: Server, upstream, tmp_path: Path) -> None:  # noqa: F811
    venv = venv_for(client_venvs, version)
    _, commit = upstream
    result = download(venv.python, mirror, tmp_path / "home", ["main", "v1", commit])
    expected_files = [".gitattributes", "config.json", "model.safetensors", "tokenizer/vocab.txt"]
    for rev in ("main", "v1", commit):
        assert result[rev]["weights"] == hashlib.sha256(WEIGHTS).hexdigest()
        assert result[rev]["files"] == expected_files
    assert not [line for line in synced_log(mirror) if "xet" in line.lower()]


def test_clients_download_from_cache_with_upstream_gone(client_venvs, mirror: Server, upstream, tmp_path: Path) -> None:  # noqa: F811
    fake, commit = upstream
    first = download(venv_for(client_venvs, "2.4.0").python, mirror, tmp_path / "warm", ["main"])
    fake.stop()
    for version in ("0.36.2", "2.4.0"):
        again = download(venv_for(client_venvs, version).python, mirror, tmp_path / version, ["main", "v1", commit])
        assert again["main"] == first["main"] and again[commit] == first["main"]
