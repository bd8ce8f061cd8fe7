"""Files on disk are the owner's alone (issue 6, item 13): other local users cannot read private models."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi

from conftest import start_server


def loose(data: Path) -> list[str]:
    """Everything under `data` (itself included) that group or others may access."""
    found = []
    for entry in [data, *data.rglob("*")]:
        mode = entry.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{entry.relative_to(data.parent)} {stat.filemode(mode)}")
    return found


def test_everything_created_is_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # a folder made by hand (or by an older hubgate) before the first start
    data.chmod(0o755)
    old = os.umask(0o022)  # the server must not depend on its caller's umask
    try:
        server = start_server(data, env={"HUBGATE_LFS_THRESHOLD": "100"})
    finally:
        os.umask(old)
    try:
        server.add_user("alice")
        api = HfApi(endpoint=server.url, token=server.token("alice"))
        api.create_repo("alice/private", private=True)
        api.upload_file(path_or_fileobj=b"small", path_in_repo="small.txt", repo_id="alice/private")
        api.upload_file(path_or_fileobj=b"x" * 5000, path_in_repo="weights.bin", repo_id="alice/private")
        assert any((data / "blobs").rglob("*")), "no blob was written"
        assert (data / "hubgate.db").exists() and (data / "tmp").is_dir()
        assert loose(data) == []
    finally:
        server.stop()


def test_owner_only_when_started_by_uvicorn_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "HUBGATE_DATA": str(data)}
    old = os.umask(0o022)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "hubgate.server:app_from_env", "--host", "127.0.0.1",
             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    finally:
        os.umask(old)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Application startup complete" in line:
                break
        assert (data / "hubgate.db").exists()
        assert loose(data) == []
    finally:
        process.terminate()
        process.wait(timeout=20)
