"""The audit log: downloads, uploads, token and permission changes, authentication failures;
its CLI and admin API; an interrupted download is not recorded as complete; retention; and no
token issued anywhere in the data folder, database or logs in plaintext."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from typer.testing import CliRunner

from clients.harness import synced_log
from conftest import Server, start_server
from hubgate.cli import app as cli_app
from processes import until

http = httpx.Client(timeout=60)
BIG = 8 * 1024 * 1024


def cli(server: Server, *args: str) -> str:
    result = CliRunner().invoke(cli_app, [*args, "--data", str(server.data)])
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result.stdout


def new_token(server: Server, *args: str) -> str:
    return cli(server, "token", "create", *args).strip().splitlines()[-1]


def events(server: Server, *args: str) -> list[dict]:
    return [json.loads(line) for line in cli(server, "audit", "--json", *args).splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    data = tmp_path_factory.mktemp("audit") / "data"
    (data / "audit").mkdir(parents=True)
    (data / "audit" / "2001-01-01.jsonl").write_text('{"at": "2001-01-01T00:00:00+00:00", "kind": "old"}\n')
    with start_server(data, env={"HUBGATE_AUDIT_RETENTION_DAYS": "30"}) as server:
        cli(server, "user", "add", "ann")
        cli(server, "user", "add", "ops", "--admin")
        tokens = {"ann": new_token(server, "ann", "--role", "write", "--name", "ann-laptop"),
                  "ops": new_token(server, "ops", "--role", "write")}
        api = HfApi(endpoint=server.url, token=tokens["ann"])
        api.create_repo("ann/voice", private=True)
        api.create_commit("ann/voice", [CommitOperationAdd("w.txt", b"w" * 1000), CommitOperationAdd("big.bin", os.urandom(BIG))],
                          commit_message="weights")
        yield server, tokens


def test_download_and_commit_recorded(world: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, tokens = world
    # A regular file, downloaded over plain HTTP (an LFS-sized one comes through Xet: see below).
    hf_hub_download("ann/voice", "w.txt", endpoint=server.url, token=tokens["ann"], cache_dir=str(tmp_path))
    sha = HfApi(endpoint=server.url, token=tokens["ann"]).model_info("ann/voice").sha
    downloads = events(server, "--repo", "ann/voice", "--kind", "download")
    assert len(downloads) == 1  # the HEAD before it is not a download
    event = downloads[0]
    token_id = json.loads(cli(server, "token", "list", "ann", "--json").splitlines()[0])["id"]
    assert {k: event[k] for k in ("user", "token_id", "token_name", "revision", "commit", "file", "bytes", "status",
                                   "complete", "cache", "client")} == {
        "user": "ann", "token_id": token_id, "token_name": "ann-laptop", "revision": "main", "commit": sha,
        "file": "w.txt", "bytes": 1000, "status": 200, "complete": True, "cache": "hosted", "client": "127.0.0.1"}
    assert "hf_hub/" in event["user_agent"] and event["at"].endswith("+00:00")
    commits = events(server, "--repo", "ann/voice", "--kind", "commit")
    assert [(c["user"], c["commit"], c["status"]) for c in commits] == [("ann", sha, 200)]
    assert events(server, "--user", "nobody") == []


def test_a_download_through_xet_is_recorded_once_per_reconstruction(world: tuple[Server, dict[str, str]],
                                                                   tmp_path: Path) -> None:
    server, tokens = world  # big.bin went up through Xet (hf_xet is installed here)
    before = len(events(server, "--repo", "ann/voice", "--kind", "download"))
    path = hf_hub_download("ann/voice", "big.bin", endpoint=server.url, token=tokens["ann"], cache_dir=str(tmp_path))
    data = Path(path).read_bytes()
    until(lambda: len(events(server, "--repo", "ann/voice", "--kind", "download")) > before, "the download's record")
    (event,) = events(server, "--repo", "ann/voice", "--kind", "download")[before:]
    assert event["via"] == "xet" and event["sha256"] == hashlib.sha256(data).hexdigest() and event["user"] == "ann"
    assert event["range"] == f"0-{BIG - 1}" and event["file_size"] == BIG and event["status"] == 200
    assert event["path"].startswith("/xet-cas/v1/reconstructions/")


def test_interrupted_download_is_not_complete(world: tuple[Server, dict[str, str]]) -> None:
    server, tokens = world
    with http.stream("GET", f"{server.url}/ann/voice/resolve/main/big.bin",
                     headers={"Authorization": f"Bearer {tokens['ann']}"}) as response:
        assert response.status_code == 200
        next(response.iter_raw(65536))  # then hang up
    for _ in range(400):  # bounded: the server notices the hang-up and records what it sent
        found = [e for e in events(server, "--kind", "download") if e.get("file") == "big.bin"]
        if found:
            break
        http.get(f"{server.url}/healthz")
    assert found and found[0]["complete"] is False and found[0]["bytes"] < BIG


def test_failures_tokens_and_permissions_recorded(world: tuple[Server, dict[str, str]]) -> None:
    server, tokens = world
    bad = http.get(f"{server.url}/api/whoami-v2", headers={"Authorization": "Bearer hg_not-a-token"})
    assert bad.status_code == 401
    # a request's record is written once its answer went out: wait for it (bounded)
    until(lambda: any(e["path"] == "/api/whoami-v2" for e in events(server, "--kind", "auth_failure")), "the failure's record")
    failures = events(server, "--kind", "auth_failure")
    assert failures and failures[-1]["path"] == "/api/whoami-v2" and failures[-1]["client"] == "127.0.0.1"
    made = http.post(f"{server.url}/api/tokens", headers={"Authorization": f"Bearer {tokens['ann']}"}, json={"name": "ci"})
    until(lambda: any(e.get("token") == made.json()["id"] and e.get("user") == "ann"
                      for e in events(server, "--kind", "token")), "the token's record")
    token_events = events(server, "--kind", "token")
    assert any(e.get("change") == "created" and e.get("token_owner") == "ann" and e.get("via") == "cli" for e in token_events)
    assert token_events[-1]["user"] == "ann" and token_events[-1]["token"] == made.json()["id"]
    cli(server, "repo", "collaborator", "add", "ann/voice", "ops", "--role", "read")
    assert events(server, "--kind", "permission")[-1]["member"] == "ops"


def test_admin_api_filters_and_pages(world: tuple[Server, dict[str, str]]) -> None:
    server, tokens = world
    assert http.get(f"{server.url}/api/audit", headers={"Authorization": f"Bearer {tokens['ann']}"}).status_code == 403
    assert http.get(f"{server.url}/api/audit").status_code == 401
    admin = {"Authorization": f"Bearer {tokens['ops']}"}
    first = http.get(f"{server.url}/api/audit?user=ann&limit=1", headers=admin)
    assert first.status_code == 200 and len(first.json()) == 1 and first.json()[0]["user"] == "ann"
    following = first.links["next"]["url"]
    second = http.get(following, headers=admin).json()
    assert len(second) == 1 and second[0] != first.json()[0]
    assert http.get(f"{server.url}/api/audit?since=1h&kind=commit", headers=admin).json()[0]["kind"] == "commit"
    assert http.get(f"{server.url}/api/audit?since=yesterday-ish", headers=admin).status_code == 400


def test_retention_removed_old_days(world: tuple[Server, dict[str, str]]) -> None:
    server, _ = world
    assert not (server.data / "audit" / "2001-01-01.jsonl").exists()
    assert all(e["kind"] != "old" for e in events(server))


def test_no_token_in_plaintext_anywhere(world: tuple[Server, dict[str, str]]) -> None:
    """Every token issued on this server: not in the data folder (database and audit log included)
    nor in the server's log."""
    server, tokens = world
    issued = [*tokens.values(), new_token(server, "ann", "--repo", "ann/*=read")]
    made = http.post(f"{server.url}/api/tokens", headers={"Authorization": f"Bearer {tokens['ann']}"}, json={})
    issued.append(made.json()["token"])
    rotated = http.post(f"{server.url}/api/tokens/{made.json()['id']}/rotate", headers={"Authorization": f"Bearer {tokens['ann']}"})
    issued.append(rotated.json()["token"])
    for token in issued:
        http.get(f"{server.url}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"})  # used, at least once
    blobs = [(str(path), path.read_bytes()) for path in server.data.rglob("*") if path.is_file()]
    blobs.append(("server log", "".join(synced_log(server)).encode()))
    assert len(blobs) > 3
    for token in issued:
        secret = token.encode()
        found = [name for name, content in blobs if secret in content or secret[3:] in content]
        assert found == [], f"token found in {found}"


def test_pull_request_activity_and_refusals_while_choosing_recorded(world: tuple[Server, dict[str, str]]) -> None:
    server, tokens = world
    api = HfApi(endpoint=server.url, token=tokens["ann"])
    api.create_repo("ann/talk")
    api.create_commit("ann/talk", [CommitOperationAdd("a.txt", b"a")], commit_message="start")
    num = api.create_commit("ann/talk", [CommitOperationAdd("a.txt", b"b")], commit_message="change a",
                            create_pr=True).pr_num
    api.comment_discussion("ann/talk", num, "see?")
    api.change_discussion_status("ann/talk", num, "closed")
    recorded = [(e["kind"], e["action"], e["path"].rsplit("/", 1)[-1]) for e in events(server, "--repo", "ann/talk")
                if e["method"] == "POST" and e["kind"] != "upload"]
    assert recorded[-3:] == [("commit", "discuss", "main"), ("discussion", "discuss", "comment"),
                             ("discussion", "author or write", "status")]
    malformed = http.post(f"{server.url}/ann/talk.git/info/lfs/objects/batch", json={"operation": "steal"},
                          headers={"Authorization": f"Bearer {tokens['ann']}"})
    assert malformed.status_code == 400
    refused = events(server, "--kind", "refused")
    assert refused and refused[-1]["status"] == 400 and refused[-1]["repo"] == "ann/talk" and refused[-1]["user"] == "ann"
