"""The `hubgate` admin commands: users, organisations, members and tokens, also while the server runs."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import Server, start_server
from hubgate.cli import app as cli_app

http = httpx.Client(timeout=60)  # one client: a new one per request costs ~0.1 s


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, so that its database holds only what these tests create."""
    with start_server(tmp_path_factory.mktemp("cli") / "data") as srv:
        yield srv


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(server: Server, *args: str) -> Result:
    """`hubgate ARGS --data DIR`, run in this process (the same command, without a Python start-up each time)."""
    result = CliRunner().invoke(cli_app, [*args, "--data", str(server.data)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def token_of(result: Result | subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def whoami(server: Server, token: str) -> httpx.Response:
    return http.get(f"{server.url}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"})


def test_users_orgs_members_and_tokens(admin_server: Server) -> None:
    srv = admin_server
    assert run(srv, "user", "add", "dave", "--email", "dave@example.org").returncode == 0
    duplicate = run(srv, "user", "add", "dave")
    assert duplicate.returncode == 1 and duplicate.stderr.startswith("error:")
    for bad in ("../evil", "datasets", "api", "Spaces"):  # unsafe, or a namespace no URL could reach
        assert run(srv, "user", "add", bad).returncode == 1, bad
    assert run(srv, "org", "add", "models", "--owner", "dave").returncode == 1
    assert run(srv, "user", "add", "erin").returncode == 0
    assert run(srv, "org", "add", "team", "--owner", "dave").returncode == 0
    assert run(srv, "org", "add", "dave", "--owner", "dave").returncode == 1  # the name is a user's
    assert run(srv, "org", "add", "other", "--owner", "nobody").returncode == 1
    assert run(srv, "org", "member", "add", "team", "erin", "--role", "write").returncode == 0
    assert run(srv, "org", "member", "add", "team", "erin", "--role", "owner").returncode == 1
    assert run(srv, "org", "member", "add", "nope", "erin", "--role", "read").returncode == 1

    created = run(srv, "token", "create", "erin", "--role", "write", "--name", "laptop")
    token = token_of(created)
    assert token.startswith("hg_") and len(token) >= 30 and " " not in token
    assert len(created.stdout.strip().splitlines()) >= 2  # a notice, then the token alone on the last line
    me = whoami(srv, token)
    assert me.status_code == 200
    assert me.json()["name"] == "erin"
    assert me.json()["auth"]["accessToken"] == {"displayName": "laptop", "role": "write"}
    assert {"name": "team", "roleInOrg": "write"}.items() <= me.json()["orgs"][0].items()
    # the membership gives erin write access to the org's namespace
    response = http.post(f"{srv.url}/api/repos/create", json={"name": "shared", "organization": "team", "private": True},
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    dave = token_of(run(srv, "token", "create", "dave"))  # default role: read
    assert whoami(srv, dave).json()["auth"]["accessToken"]["role"] == "read"
    assert http.get(f"{srv.url}/api/models/team/shared", headers={"Authorization": f"Bearer {dave}"}).status_code == 200

    # a role change and a removal take effect on the running server
    assert run(srv, "org", "member", "set-role", "team", "erin", "read").returncode == 0
    assert http.get(f"{srv.url}/api/models/team/shared/auth-check/write",
                    headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert run(srv, "org", "member", "remove", "team", "erin").returncode == 0
    gone = http.get(f"{srv.url}/api/models/team/shared", headers={"Authorization": f"Bearer {token}"})
    assert (gone.status_code, gone.headers["X-Error-Code"]) == (404, "RepoNotFound")


def test_token_create_refusals(admin_server: Server) -> None:
    for args in (("token", "create", "nobody"), ("token", "create", "dave", "--role", "admin"),
                 ("token", "create", "dave", "--expires", "0s"), ("token", "create", "dave", "--expires", "-1d"),
                 ("token", "create", "dave", "--expires", "99999999999d"), ("token", "create", "dave", "--expires", "2001-01-01"),
                 ("token", "create", "dave", "--repo", "acme=read"), ("token", "create", "dave", "--repo", "acme/x=admin")):
        result = run(admin_server, *args)
        assert result.returncode != 0, args
        assert "hg_" not in result.stdout
        assert "Traceback" not in result.stderr


def test_token_list_never_shows_secrets(admin_server: Server) -> None:
    srv = admin_server
    assert run(srv, "user", "add", "gina").returncode == 0
    tokens = [token_of(run(srv, "token", "create", "gina", "--role", role, "--name", f"gina-{role}", "--expires", "30d"))
              for role in ("read", "write")]
    listing = run(srv, "token", "list")
    assert listing.returncode == 0
    only_gina = run(srv, "token", "list", "gina").stdout
    rows = [line for line in only_gina.splitlines()[1:] if line.strip()]
    assert len(rows) == 2 and all("gina" in row and "active" in row for row in rows)
    assert "gina-read" in only_gina and "gina-write" in only_gina
    for token in tokens:
        for output in (listing.stdout + listing.stderr, only_gina):
            assert token not in output
            assert token[len("hg_"):] not in output
            # not even a long piece of it
            assert not any(token[i:i + 12] in output for i in range(len(token) - 12))


def test_token_revoke_while_running(admin_server: Server) -> None:
    srv = admin_server
    assert run(srv, "user", "add", "hank").returncode == 0
    token = token_of(run(srv, "token", "create", "hank", "--role", "write", "--name", "hank-ci"))
    keep = token_of(run(srv, "token", "create", "hank", "--role", "write", "--name", "hank-keep"))
    assert whoami(srv, token).status_code == 200
    row = next(line for line in run(srv, "token", "list", "hank").stdout.splitlines() if line.rstrip().endswith("hank-ci"))
    token_id = row.split()[0]
    revoked = run(srv, "token", "revoke", token_id)
    assert revoked.returncode == 0
    response = whoami(srv, token)
    assert response.status_code == 401
    assert response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert whoami(srv, keep).status_code == 200  # only that one token
    row = next(line for line in run(srv, "token", "list", "hank").stdout.splitlines() if line.rstrip().endswith("hank-ci"))
    assert "revoked" in row.split()
    assert run(srv, "token", "revoke", "999999").returncode == 1


def test_hubgate_data_environment_variable(admin_server: Server, tmp_path: Path) -> None:
    """`HUBGATE_DATA` instead of `--data`, from another working directory, reaches the same server."""
    env = {**admin_server.env, "HUBGATE_DATA": str(admin_server.data)}

    command = shutil.which("hubgate", path=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    assert command, "the `hubgate` console script is installed"

    def hubgate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([command, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    assert hubgate("user", "add", "ivan").returncode == 0
    token = token_of(hubgate("token", "create", "ivan", "--role", "write"))
    assert whoami(admin_server, token).json()["name"] == "ivan"
    assert not (tmp_path / "data").exists()  # nothing went to the default ./data
    assert "ivan" in run(admin_server, "token", "list").stdout


def test_tokens_are_stored_hashed(admin_server: Server) -> None:
    srv = admin_server
    assert run(srv, "user", "add", "judy").returncode == 0
    token = token_of(run(srv, "token", "create", "judy", "--role", "write"))
    assert whoami(srv, token).status_code == 200
    secret = token.encode()
    files = [p for p in srv.data.rglob("*") if p.is_file()]
    assert any(p.name == "hubgate.db" for p in files)
    for path in files:  # the database and its -wal/-shm companions, blobs, keys: nowhere
        content = path.read_bytes()
        assert secret not in content, path
        assert secret[len("hg_"):] not in content, path
    with sqlite3.connect(srv.data / "hubgate.db") as db:  # the database the server uses does hold the token's row
        rows = db.execute("SELECT t.role FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.name = 'judy'").fetchall()
    assert rows == [("write",)]
