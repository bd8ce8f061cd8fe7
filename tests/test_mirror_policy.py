"""The operator's policy for mirrored repos: anonymous reading, allow and deny patterns, cache included."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from conftest import Server, start_server

http = httpx.Client(timeout=60)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    with start_server(tmp_path_factory.mktemp("origin")) as srv:
        srv.add_user("team")
        token = srv.token("team", "write")
        api = HfApi(endpoint=srv.url, token=token)
        for repo_id in ("team/tts-voice", "team/banned-model"):
            api.create_repo(repo_id)
            api.upload_file(path_or_fileobj=b"weights", path_in_repo="w.bin", repo_id=repo_id)
        yield srv, token


def config(path: Path, upstream: Server, mirror: str) -> Path:
    path.write_text(f'[[upstream]]\nname = "origin"\nurl = "{upstream.url}"\ntoken_env = "ORIGIN_TOKEN"\n[mirror]\n{mirror}\n')
    return path


def test_deny_and_anonymous_policy_from_cache_too(tmp_path: Path, origin: tuple[Server, str]) -> None:
    upstream, token = origin
    rules = config(tmp_path / "hubgate.toml", upstream, 'anonymous_read = false\ndeny = ["team/banned-*"]')
    with start_server(tmp_path / "data", config=rules, env={"ORIGIN_TOKEN": token}) as mirror:
        mirror.add_user("eve")
        eve = mirror.token("eve", "read")
        anonymous = http.get(f"{mirror.url}/api/models/team/tts-voice")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "This server's mirror is for authenticated users only"
        path = hf_hub_download("team/tts-voice", "w.bin", endpoint=mirror.url, token=eve, cache_dir=str(tmp_path / "c"))
        assert Path(path).read_bytes() == b"weights"
        again = http.get(f"{mirror.url}/team/tts-voice/resolve/main/w.bin", headers={"Authorization": f"Bearer {eve}"})
        assert again.content == b"weights"
        audit = subprocess.run(
            [sys.executable, "-m", "hubgate", "audit", "--json", "--kind", "download", "--data", str(mirror.data),
             "--config", str(rules)], capture_output=True, text=True, env=mirror.env, timeout=120, check=True)
        downloads = [json.loads(line) for line in audit.stdout.splitlines()]
        assert [(d["repo"], d["cache"], d["user"], d["status"]) for d in downloads] == [
            ("team/tts-voice", "upstream:origin", "eve", 200), ("team/tts-voice", "hit", "eve", 200)]
        before = sum("banned-model" in line for line in upstream.log)
        for headers in ({}, {"Authorization": f"Bearer {eve}"}):
            refused = http.get(f"{mirror.url}/team/banned-model/resolve/main/w.bin", headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error"] == "team/banned-model is refused by this server's mirror policy"
        with pytest.raises(HfHubHTTPError) as hf_refused:
            HfApi(endpoint=mirror.url, token=eve).model_info("team/banned-model")
        assert hf_refused.value.response.status_code == 403
        pulled = subprocess.run(
            [sys.executable, "-m", "hubgate", "mirror", "pull", "team/banned-model", "--data", str(mirror.data),
             "--config", str(rules)], capture_output=True, text=True, env=mirror.env, timeout=120)
        assert pulled.returncode != 0 and "refused by this server's mirror policy" in pulled.stderr
        assert sum("banned-model" in line for line in upstream.log) == before  # never asked upstream
    # the company bans the model it already cached: refused offline, from the cache
    config(tmp_path / "hubgate.toml", upstream, 'deny = ["team/tts-*"]')
    with start_server(tmp_path / "data", "--offline", config=rules) as offline:
        cached = http.get(f"{offline.url}/team/tts-voice/resolve/main/w.bin", headers={"Authorization": f"Bearer {eve}"})
        assert (cached.status_code, cached.json()["error"]) == (403, "team/tts-voice is refused by this server's mirror policy")


def test_allow_list(tmp_path: Path, origin: tuple[Server, str]) -> None:
    upstream, token = origin
    rules = config(tmp_path / "hubgate.toml", upstream, 'allow = ["team/tts-*"]')
    with start_server(tmp_path / "data", config=rules, env={"ORIGIN_TOKEN": token}) as mirror:
        assert http.get(f"{mirror.url}/api/models/team/tts-voice").status_code == 200
        assert http.get(f"{mirror.url}/api/models/team/banned-model").status_code == 403
