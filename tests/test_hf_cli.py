"""The `hf` command line of huggingface_hub 2.4.0 (from its own venv) against a real server.

Each test gets a private HF_HOME, so `hf auth login` stores its token there and nothing leaks
between tests or from the machine's own login.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from clients.harness import client_env, synced_requests
from conftest import Server
from venvs import CLIENTS, ensure

pytestmark = pytest.mark.clients

CLI_VERSION = "2.4.0"


@dataclass
class HfCli:
    executable: Path
    env: dict[str, str]
    home: Path

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(self.executable), *args], check=False, capture_output=True, text=True, env=self.env, timeout=600
        )
        if check:
            assert done.returncode == 0, (
                f"hf {' '.join(args)} exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done


@pytest.fixture(scope="session")
def hf_executable() -> Path:
    try:
        venv = ensure(CLIENTS[CLI_VERSION])
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not build the venv for huggingface_hub {CLI_VERSION}:\n{exc}")
    return venv.bin("hf")


@pytest.fixture()
def hf(hf_executable: Path, server: Server, tmp_path: Path) -> HfCli:
    home = tmp_path / "hf-home"
    return HfCli(hf_executable, client_env(server.url, home), home)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_folder(root: Path) -> dict[str, bytes]:
    files = {
        "README.md": b"# made by the hf CLI test\n",
        "config.json": b'{"layers": 2}',
        "sub/deeper/notes.txt": b"nested\n",
        "model.safetensors": os.urandom(11 * 1024 * 1024),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def api_get(server: Server, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=30)


def test_login_stores_token_and_whoami_names_the_user(hf: HfCli, alice_token: str) -> None:
    done = hf("auth", "login", "--token", alice_token)
    assert "Login successful" in done.stdout + done.stderr
    assert (hf.home / "token").read_text().strip() == alice_token
    whoami = hf("auth", "whoami")
    assert "alice" in whoami.stdout
    as_json = json.loads(hf("auth", "whoami", "--format", "json").stdout)
    assert as_json.get("name", as_json.get("user")) == "alice", as_json

    hf("auth", "logout")
    assert not (hf.home / "token").exists()
    logged_out = hf("auth", "whoami", check=False)
    assert logged_out.returncode != 0 and "alice" not in logged_out.stdout


def test_login_with_a_bad_token_fails(hf: HfCli) -> None:
    done = hf("auth", "login", "--token", "hg_not-a-real-token", check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    assert not (hf.home / "token").exists()


def test_upload_folder_and_file_then_download(
    hf: HfCli, server: Server, alice_token: str, bob_token: str, tmp_path: Path
) -> None:
    hf("auth", "login", "--token", alice_token)
    repo_id = f"alice/cli-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "folder"
    files = write_folder(folder)
    since = len(server.log)

    hf("upload", repo_id, str(folder), "--private")  # creates the repo, private
    single = tmp_path / "single.txt"
    single.write_bytes(b"one file, uploaded on its own\n")
    hf("upload", repo_id, str(single), "docs/single.txt")
    files["docs/single.txt"] = single.read_bytes()

    info = api_get(server, f"/api/models/{repo_id}", alice_token)
    assert info.status_code == 200 and info.json()["private"] is True, info.text
    assert api_get(server, f"/api/models/{repo_id}", None).status_code == 401
    assert api_get(server, f"/api/models/{repo_id}", bob_token).status_code == 404
    siblings = {s["rfilename"]: s for s in info.json()["siblings"]}
    assert set(siblings) == set(files) | {".gitattributes"}
    assert siblings["model.safetensors"]["lfs"]["sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    requests = synced_requests(server, since)
    # The CLI (huggingface_hub 2.4.0 with hf_xet) sends large files through the Xet CAS, not the LFS batch API.
    assert [r for r in requests if f"/api/models/{repo_id}/xet-write-token/" in r.target], "no Xet upload"
    assert not [r for r in requests if f"/{repo_id}.git/info/lfs/" in r.target], "the hf CLI took the LFS batch path"

    target = tmp_path / "download"
    hf("download", repo_id, "--local-dir", str(target))
    got = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file() and ".cache" not in p.parts}
    assert got == set(files) | {".gitattributes"}
    for name, data in files.items():
        assert sha256(target / name) == hashlib.sha256(data).hexdigest(), name

    # A single file into the cache: the CLI prints where it put it.
    one = hf("download", repo_id, "docs/single.txt", "--format", "quiet")
    path = Path(one.stdout.strip().splitlines()[-1])
    assert path.is_relative_to(hf.home) and path.read_bytes() == files["docs/single.txt"]


def test_private_repo_needs_the_token(hf: HfCli, server: Server, alice_token: str, tmp_path: Path) -> None:
    repo_id = f"alice/cli-private-{uuid.uuid4().hex[:8]}"
    hf("repos", "create", repo_id, "--private", "--token", alice_token)
    note = tmp_path / "note.txt"
    note.write_bytes(b"private note\n")
    hf("upload", repo_id, str(note), "--token", alice_token)
    assert api_get(server, f"/api/models/{repo_id}", alice_token).json()["private"] is True

    anonymous = hf("download", repo_id, "note.txt", "--local-dir", str(tmp_path / "anon"), check=False)
    assert anonymous.returncode != 0 and not (tmp_path / "anon" / "note.txt").exists()
    assert (
        "RepositoryNotFoundError" in anonymous.stdout + anonymous.stderr
        or "not found" in (anonymous.stdout + anonymous.stderr).lower()
    )

    done = hf("download", repo_id, "note.txt", "--local-dir", str(tmp_path / "ok"), "--token", alice_token)
    assert (tmp_path / "ok" / "note.txt").read_bytes() == b"private note\n", done.stdout
