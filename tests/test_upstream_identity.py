"""Each user's own upstream token: stored encrypted, used for that user's fetches of private
upstream repos, and what it fetched is not served to users upstream does not vouch for."""

from __future__ import annotations

from pathlib import Path

import httpx
from huggingface_hub import HfApi, hf_hub_download
from typer.testing import CliRunner

from conftest import start_server
from hubgate.cli import app as cli_app

http = httpx.Client(timeout=60)


def test_users_own_upstream_token(tmp_path: Path) -> None:
    with start_server(tmp_path / "origin") as origin:
        origin.add_user("team")
        team = origin.token("team", "write")
        api = HfApi(endpoint=origin.url, token=team)
        api.create_repo("team/licensed", private=True)
        api.upload_file(path_or_fileobj=b"licensed weights", path_in_repo="w.bin", repo_id="team/licensed")
        dora_upstream = team  # dora's own identity upstream: one that may read the repo
        config = tmp_path / "hubgate.toml"
        config.write_text(f'[[upstream]]\nname = "origin"\nurl = "{origin.url}"\n')  # no server-wide token
        with start_server(tmp_path / "data", config=config) as mirror:
            mirror.add_user("dora")
            mirror.add_user("eve")
            dora, eve = mirror.token("dora", "read"), mirror.token("eve", "read")
            refused = http.get(f"{mirror.url}/team/licensed/resolve/main/w.bin", headers={"Authorization": f"Bearer {dora}"})
            assert (refused.status_code, refused.headers["X-Error-Code"]) == (404, "RepoNotFound")
            stored = CliRunner().invoke(cli_app, ["upstream-token", "set", "origin", "--user", "dora", "--data", str(mirror.data),
                                                  "--config", str(config)], input=dora_upstream + "\n")
            assert stored.exit_code == 0, stored.output
            assert dora_upstream not in stored.output
            path = hf_hub_download("team/licensed", "w.bin", endpoint=mirror.url, token=dora, cache_dir=str(tmp_path / "c"))
            assert Path(path).read_bytes() == b"licensed weights"
            # eve has no upstream identity: the cached copy is not hers
            for url in (f"{mirror.url}/team/licensed/resolve/main/w.bin", f"{mirror.url}/api/models/team/licensed"):
                response = http.get(url, headers={"Authorization": f"Bearer {eve}"})
                assert (response.status_code, response.headers["X-Error-Code"]) == (404, "RepoNotFound")
            # the HTTP API: eve stores a token upstream refuses, which gives her nothing
            put = http.put(f"{mirror.url}/api/upstream-tokens/origin", headers={"Authorization": f"Bearer {eve}"},
                           json={"token": "hg_not-valid-upstream"})
            assert put.status_code == 403  # a read token may not manage tokens
            eve_write = mirror.token("eve", "write")
            put = http.put(f"{mirror.url}/api/upstream-tokens/origin", headers={"Authorization": f"Bearer {eve_write}"},
                           json={"token": "hg_not-valid-upstream"})
            assert put.status_code == 200
            assert http.get(f"{mirror.url}/api/upstream-tokens", headers={"Authorization": f"Bearer {eve_write}"}).json() == [
                {"upstream": "origin"}]
            still = http.get(f"{mirror.url}/team/licensed/resolve/main/w.bin", headers={"Authorization": f"Bearer {eve}"})
            assert still.status_code in (401, 404) and b"licensed weights" not in still.content
            unknown = http.put(f"{mirror.url}/api/upstream-tokens/elsewhere", headers={"Authorization": f"Bearer {eve_write}"},
                               json={"token": "x"})
            assert unknown.status_code == 400
            # never in plaintext: data folder (database, audit log) and the server's log
            files = [p.read_bytes() for p in mirror.data.rglob("*") if p.is_file()]
            for secret in (dora_upstream, "hg_not-valid-upstream"):
                assert not any(secret.encode() in content for content in files)
                assert secret not in "".join(mirror.log)


def test_a_users_own_upstream_token_keeps_the_cache_for_public_repos(tmp_path: Path) -> None:
    """With the upstream down, a user with a stored upstream token still gets cached public files;
    only a repo that needed their token to be read is refused (503, not a false 404)."""
    origin = start_server(tmp_path / "origin")
    try:
        origin.add_user("team")
        team = origin.token("team", "write")
        api = HfApi(endpoint=origin.url, token=team)
        api.create_repo("team/open")
        api.upload_file(path_or_fileobj=b"open weights", path_in_repo="w.bin", repo_id="team/open")
        api.create_repo("team/licensed", private=True)
        api.upload_file(path_or_fileobj=b"licensed weights", path_in_repo="w.bin", repo_id="team/licensed")
        config = tmp_path / "hubgate.toml"
        config.write_text(f'[[upstream]]\nname = "origin"\nurl = "{origin.url}"\n')  # no server-wide token
        with start_server(tmp_path / "data", config=config) as mirror:
            mirror.add_user("dora")
            dora = {"Authorization": f"Bearer {mirror.token('dora', 'read')}"}
            stored = CliRunner().invoke(cli_app, ["upstream-token", "set", "origin", "--user", "dora", "--data",
                                                  str(mirror.data), "--config", str(config)], input=team + "\n")
            assert stored.exit_code == 0, stored.output
            for repo, content in (("open", b"open weights"), ("licensed", b"licensed weights")):
                got = http.get(f"{mirror.url}/team/{repo}/resolve/main/w.bin", headers=dora)
                assert (got.status_code, got.content) == (200, content)
            origin.stop()  # every upstream down
            again = http.get(f"{mirror.url}/team/open/resolve/main/w.bin", headers=dora)
            assert (again.status_code, again.content) == (200, b"open weights")
            assert http.get(f"{mirror.url}/api/models/team/open", headers=dora).status_code == 200
            # the private repo was read with dora's token: upstream must vouch for her, and cannot
            assert http.get(f"{mirror.url}/team/licensed/resolve/main/w.bin", headers=dora).status_code == 503
    finally:
        origin.stop()
