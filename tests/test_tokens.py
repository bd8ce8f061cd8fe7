"""Tokens: roles and fine-grained grants, expiry, revoke, rotate, last use; CLI and HTTP API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from typer.testing import CliRunner

from conftest import Server, start_server
from hubgate.cli import app as cli_app

http = httpx.Client(timeout=60)


def cli(server: Server, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli_app, [*args, "--data", str(server.data)])
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result.stdout + result.stderr


def create(server: Server, *args: str) -> tuple[int, str]:
    out = cli(server, "token", "create", *args).strip().splitlines()
    return int(out[0].split()[1]), out[-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def listing(server: Server, user: str | None = None) -> dict[int, dict]:
    rows = [json.loads(line) for line in cli(server, "token", "list", *([user] if user else []), "--json").splitlines()]
    return {row["id"]: row for row in rows}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, stores: str) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("tokens") / "data") as server:
        cli(server, "user", "add", "tina")
        cli(server, "user", "add", "uma")
        cli(server, "user", "add", "root", "--admin")
        cli(server, "org", "add", "voices", "--owner", "tina")
        yield server


@pytest.fixture(scope="module")
def repos(srv: Server) -> dict[str, str]:
    _, token = create(srv, "tina", "--role", "write")
    api = HfApi(endpoint=srv.url, token=token)
    names = {"tts1": "voices/tts-en", "tts2": "voices/tts-de", "other": "voices/asr", "ds": "voices/tts-data"}
    for key, repo_id in names.items():
        kind = "dataset" if key == "ds" else "model"
        api.create_repo(repo_id, private=True, repo_type=kind)
        api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="seed", repo_type=kind)
    return names


def test_create_prints_id_and_token_last(srv: Server) -> None:
    out = cli(srv, "token", "create", "tina", "--name", "laptop", "--expires", "12h").strip().splitlines()
    token_id, secret = int(out[0].split()[1]), out[-1]
    assert secret.startswith("hg_") and " " not in secret
    row = listing(srv, "tina")[token_id]
    assert (row["name"], row["role"], row["state"]) == ("laptop", "read", "active")
    assert row["expiresAt"].endswith("+00:00") and row["createdAt"].endswith("+00:00")
    assert secret not in json.dumps(row) and row["prefix"] == secret[:7]


def test_states_revoke_twice_unknown_and_by_name(srv: Server) -> None:
    name = f"ci-{uuid.uuid4().hex[:6]}"
    token_id, token = create(srv, "tina", "--name", name)
    expired_id, _ = create(srv, "tina", "--expires", "1s")
    assert http.get(f"{srv.url}/api/whoami-v2", headers=auth(token)).status_code == 200
    assert "revoked" in cli(srv, "token", "revoke", name)
    again = cli(srv, "token", "revoke", str(token_id), code=1)
    assert "already revoked" in again
    assert "No token with id 99999" in cli(srv, "token", "revoke", "99999", code=1)
    response = http.get(f"{srv.url}/api/whoami-v2", headers=auth(token))
    assert (response.status_code, response.headers["X-Error-Message"]) == (401, "Invalid credentials in Authorization header")
    rows = listing(srv)
    assert rows[token_id]["state"] == "revoked" and rows[token_id]["revokedAt"].endswith("+00:00")
    # the 1-second token is listed as expired once the second is over (polling the list, bounded)
    for _ in range(200):
        if listing(srv)[expired_id]["state"] == "expired":
            break
        http.get(f"{srv.url}/healthz")
    assert listing(srv)[expired_id]["state"] == "expired"
    text = cli(srv, "token", "list", "tina")
    assert "EXPIRES (UTC)" in text and "expired" in text and "revoked" in text


def test_rotate_keeps_grants_and_kills_old_secret(srv: Server, repos: dict[str, str]) -> None:
    token_id, old = create(srv, "tina", "--repo", "voices/tts-*=read", "--name", f"rot-{uuid.uuid4().hex[:6]}")
    out = cli(srv, "token", "rotate", str(token_id)).strip().splitlines()
    new = out[-1]
    assert new.startswith("hg_") and new != old
    assert http.get(f"{srv.url}/api/whoami-v2", headers=auth(old)).status_code == 401
    assert http.get(f"{srv.url}/api/models/{repos['tts1']}", headers=auth(new)).status_code == 200
    row = listing(srv)[token_id]
    assert row["role"] == "fineGrained" and row["grants"] == [{"kind": "repo", "pattern": "voices/tts-*", "role": "read", "type": "model"}]


def test_fine_grained_read_grant(srv: Server, repos: dict[str, str]) -> None:
    _, token = create(srv, "tina", "--repo", "voices/tts-*=read")
    ok = http.get(f"{srv.url}/api/models/{repos['tts1']}", headers=auth(token))
    assert ok.status_code == 200
    outside = http.get(f"{srv.url}/api/models/{repos['other']}", headers=auth(token))
    assert outside.status_code == 403
    assert "Token scope does not cover voices/asr" in outside.json()["error"]
    # repo-type aware: the model pattern does not reach the dataset voices/tts-data
    assert http.get(f"{srv.url}/api/datasets/{repos['ds']}", headers=auth(token)).status_code == 403
    path = hf_hub_download(repos["tts2"], "a.txt", endpoint=srv.url, token=token, cache_dir=str(srv.data.parent / "c1"))
    assert Path(path).read_bytes() == b"a"
    api = HfApi(endpoint=srv.url, token=token)
    with pytest.raises(HfHubHTTPError) as refused:
        api.create_commit(repos["tts1"], [CommitOperationAdd("b.txt", b"b")], commit_message="no")
    assert refused.value.response.status_code == 403
    assert "may only read it" in refused.value.response.json()["error"]
    # whoami-v2 in the Hub's fine-grained vocabulary, read by huggingface_hub itself
    info = api.whoami()
    access = info["auth"]["accessToken"]
    assert access["role"] == "fineGrained"
    assert access["fineGrained"]["scoped"] == [
        {"entity": {"type": "model", "name": "voices/tts-*"}, "permissions": ["repo.content.read"]}]


def test_fine_grained_write_and_org_grants(srv: Server, repos: dict[str, str]) -> None:
    _, token = create(srv, "tina", "--repo", "datasets/voices/tts-*=write", "--org", "voices=read")
    api = HfApi(endpoint=srv.url, token=token)
    api.create_commit(repos["ds"], [CommitOperationAdd("b.txt", b"b")], commit_message="ok", repo_type="dataset")
    assert http.get(f"{srv.url}/api/models/{repos['other']}", headers=auth(token)).status_code == 200  # org read
    with pytest.raises(HfHubHTTPError) as refused:
        api.create_repo("voices/new-one")
    assert refused.value.response.status_code == 403
    assert "creating repos in 'voices'" in refused.value.response.json()["error"]


def test_grants_never_exceed_the_user(srv: Server, repos: dict[str, str]) -> None:
    """uma is not in voices: a token granting voices/* still sees nothing, as an outsider."""
    _, token = create(srv, "uma", "--repo", "voices/*=write")
    response = http.get(f"{srv.url}/api/models/{repos['tts1']}", headers=auth(token))
    assert (response.status_code, response.headers["X-Error-Code"]) == (404, "RepoNotFound")


def test_read_token_is_read_only_message(srv: Server, repos: dict[str, str]) -> None:
    _, token = create(srv, "tina", "--role", "read")
    response = http.post(f"{srv.url}/api/models/{repos['tts1']}/branch/b1", headers=auth(token), json={})
    assert response.status_code == 403
    assert response.json()["error"] == "This token is read-only: writing to voices/tts-en needs a write token"


def test_last_used_time_and_address(srv: Server) -> None:
    token_id, token = create(srv, "tina")
    assert listing(srv)[token_id]["lastUsedAt"] is None
    http.get(f"{srv.url}/api/whoami-v2", headers=auth(token))
    row = listing(srv)[token_id]
    assert row["lastUsedAt"].endswith("+00:00") and row["lastUsedFrom"] == "127.0.0.1"


def test_http_api(srv: Server) -> None:
    _, tina = create(srv, "tina", "--role", "write")
    _, tina_read = create(srv, "tina", "--role", "read")
    _, uma = create(srv, "uma", "--role", "write")
    _, root = create(srv, "root", "--role", "write")
    made = http.post(f"{srv.url}/api/tokens", headers=auth(tina), json={"name": "api", "repos": ["voices/tts-*=read"], "expires": "30d"})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["token"].startswith("hg_") and body["user"] == "tina" and body["role"] == "fineGrained"
    assert http.get(f"{srv.url}/api/whoami-v2", headers=auth(body["token"])).status_code == 200
    mine = http.get(f"{srv.url}/api/tokens", headers=auth(tina)).json()
    assert body["id"] in [row["id"] for row in mine] and all("token" not in row for row in mine)
    # somebody else's token, or an unknown id, answer alike to a non-administrator
    for path in (f"/api/tokens/{body['id']}", "/api/tokens/987654"):
        refused = http.delete(srv.url + path, headers=auth(uma))
        assert (refused.status_code, refused.json()["error"]) == (403, "Only administrators manage other users' tokens")
    assert http.get(f"{srv.url}/api/tokens?user=tina", headers=auth(uma)).status_code == 403
    assert http.post(f"{srv.url}/api/tokens", headers=auth(tina_read), json={"role": "write"}).status_code == 403
    assert http.get(f"{srv.url}/api/tokens").status_code == 401
    rotated = http.post(f"{srv.url}/api/tokens/{body['id']}/rotate", headers=auth(tina)).json()
    assert rotated["id"] == body["id"] and rotated["token"] != body["token"]
    assert http.get(f"{srv.url}/api/whoami-v2", headers=auth(body["token"])).status_code == 401
    assert http.delete(f"{srv.url}/api/tokens/{body['id']}", headers=auth(root)).json()["state"] == "revoked"
    assert http.delete(f"{srv.url}/api/tokens/{body['id']}", headers=auth(root)).status_code == 409
    assert http.get(f"{srv.url}/api/whoami-v2", headers=auth(rotated["token"])).status_code == 401
    bad = http.post(f"{srv.url}/api/tokens", headers=auth(tina), json={"repos": ["voices=admin"]})
    assert bad.status_code == 400


def test_tokens_made_over_http_never_outlive_or_exceed_their_maker(srv: Server, repos: dict[str, str]) -> None:
    """An expiring token creates tokens expiring no later than itself (and rotates none that would);
    fine-grained and lock-bound tokens create none at all."""
    _, short = create(srv, "tina", "--role", "write", "--expires", "1h", "--name", "short")
    forever_id, _ = create(srv, "tina", "--role", "write", "--name", "forever")
    short_expiry = next(row for row in listing(srv, "tina").values() if row["name"] == "short")["expiresAt"]
    inherited = http.post(f"{srv.url}/api/tokens", headers=auth(short), json={"role": "write"})
    assert inherited.status_code == 200 and inherited.json()["expiresAt"] == short_expiry
    shorter = http.post(f"{srv.url}/api/tokens", headers=auth(short), json={"role": "write", "expires": "10m"})
    assert shorter.status_code == 200 and shorter.json()["expiresAt"] < short_expiry
    for later in ("2d", "2099-01-01"):
        refused = http.post(f"{srv.url}/api/tokens", headers=auth(short), json={"role": "write", "expires": later})
        assert refused.status_code == 403 and "outlive" in refused.json()["error"], later
    rotate = http.post(f"{srv.url}/api/tokens/{forever_id}/rotate", headers=auth(short))
    assert rotate.status_code == 403 and "outlive" in rotate.json()["error"]
    assert http.post(f"{srv.url}/api/tokens/{inherited.json()['id']}/rotate", headers=auth(short)).status_code == 200
    _, fine = create(srv, "tina", "--repo", "voices/*=write", "--org", "voices=write")
    broader = http.post(f"{srv.url}/api/tokens", headers=auth(fine), json={"role": "write"})
    assert broader.status_code == 403
