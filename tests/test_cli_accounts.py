"""`hubgate user|org|org member …`, `--version`, `--json` listings, read-only commands on a folder
that holds no instance, the last admin of an organisation, and the mirror commands' rules."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import start_server
from hubgate import __version__
from hubgate.cli import app as cli_app


def hubgate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def data(tmp_path: Path) -> str:
    path = tmp_path / "data"
    assert hubgate("user", "add", "alice", "--data", str(path))[0] == 0  # the first write creates the instance
    return str(path)


def rows(*args: str) -> list[dict]:
    """A `--json` listing: one JSON object per line."""
    return [json.loads(line) for line in ok(*args, "--json").splitlines()]


def ok(*args: str) -> str:
    status, out, err = hubgate(*args)
    assert (status, err) == (0, ""), (args, out, err)
    return out


def refused(*args: str, status: int = 1) -> str:
    code, out, err = hubgate(*args)
    assert code == status, (args, out, err)
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err.removeprefix("error: ").rstrip("\n")


def test_version() -> None:
    assert ok("--version") == f"hubgate {__version__}\n"


def test_users(data: str) -> None:
    ok("user", "add", "bob", "--email", "bob@example.org", "--data", data)
    assert ok("user", "set-admin", "bob", "--data", data) == "bob is a server admin\n"
    users = rows("user", "list", "--data", data)
    assert [(u["name"], u["admin"], u["email"]) for u in users] == [("alice", False, None), ("bob", True, "bob@example.org")]
    assert all(u["created"].endswith("+00:00") for u in users)  # UTC, and says so
    table = ok("user", "list", "--data", data).splitlines()
    assert table[0].split() == ["NAME", "ADMIN", "EMAIL", "ORGS", "CREATED"]
    assert table[2].split()[:3] == ["bob", "yes", "bob@example.org"]
    ok("user", "unset-admin", "bob", "--data", data)
    assert not rows("user", "list", "--data", data)[1]["admin"]
    assert refused("user", "set-admin", "nobody", "--data", data) == "No user named 'nobody'"
    assert ok("user", "remove", "bob", "--data", data) == "user bob removed\n"
    assert [u["name"] for u in rows("user", "list", "--data", data)] == ["alice"]
    assert refused("user", "remove", "bob", "--data", data) == "No user named 'bob'"


def test_removing_a_user_removes_their_tokens(data: str) -> None:
    ok("user", "add", "tina", "--data", data)
    ok("token", "create", "tina", "--data", data)
    ok("user", "remove", "tina", "--data", data)
    with sqlite3.connect(Path(data) / "hubgate.db") as db:
        assert db.execute("SELECT count(*) FROM tokens").fetchone() == (0,)


def test_orgs_and_members(data: str) -> None:
    ok("user", "add", "bob", "--data", data)
    ok("org", "add", "acme", "--owner", "alice", "--data", data)
    ok("org", "add", "beta", "--owner", "bob", "--data", data)
    orgs = rows("org", "list", "--data", data)
    assert [(o["name"], o["admins"], o["members"]) for o in orgs] == [("acme", ["alice"], 1), ("beta", ["bob"], 1)]
    assert ok("org", "member", "add", "acme", "bob", "--role", "write", "--data", data) == "bob is a write member of acme\n"
    assert refused("org", "member", "add", "acme", "bob", "--role", "read", "--data", data) == (
        "bob is already a write member of acme: use set-role to change it")
    assert ok("org", "member", "set-role", "acme", "bob", "read", "--data", data) == "bob is a read member of acme\n"
    assert refused("org", "member", "set-role", "acme", "bob", "owner", "--data", data) == "Role must be one of read, write, admin"
    members = rows("org", "member", "list", "acme", "--data", data)
    assert members == [{"user": "alice", "role": "admin"}, {"user": "bob", "role": "read"}]
    assert ok("org", "member", "list", "acme", "--data", data).split() == ["USER", "ROLE", "alice", "admin", "bob", "read"]
    assert refused("org", "member", "list", "nope", "--data", data) == "No organisation named 'nope'"
    assert [u["orgs"] for u in rows("user", "list", "--data", data)] == [["acme"], ["acme", "beta"]]
    ok("org", "member", "remove", "acme", "bob", "--data", data)
    assert refused("org", "member", "remove", "acme", "bob", "--data", data) == "bob is not a member of acme"
    assert ok("org", "remove", "beta", "--data", data) == "organisation beta removed\n"
    assert [o["name"] for o in rows("org", "list", "--data", data)] == ["acme"]


def test_an_org_never_loses_its_last_admin(data: str) -> None:
    ok("user", "add", "bob", "--data", data)
    ok("org", "add", "acme", "--owner", "alice", "--data", data)
    last = "alice is the last admin of acme: name another admin first"
    assert refused("org", "member", "set-role", "acme", "alice", "write", "--data", data) == last
    assert refused("org", "member", "remove", "acme", "alice", "--data", data) == last
    assert refused("user", "remove", "alice", "--data", data) == last
    ok("org", "member", "add", "acme", "bob", "--role", "admin", "--data", data)
    ok("org", "member", "set-role", "acme", "alice", "write", "--data", data)  # bob is still an admin
    assert refused("org", "member", "remove", "acme", "bob", "--data", data) == "bob is the last admin of acme: name another admin first"
    ok("user", "remove", "alice", "--data", data)  # a write member may go
    assert rows("org", "member", "list", "acme", "--data", data) == [{"user": "bob", "role": "admin"}]


def test_owners_of_repos_are_not_removed(data: str) -> None:
    ok("org", "add", "acme", "--owner", "alice", "--data", data)
    with sqlite3.connect(Path(data) / "hubgate.db") as db:
        db.execute("INSERT INTO repos (type, namespace, name, private, created_at, updated_at) "
                   "VALUES ('model', 'acme', 'm', 0, '2026-01-01', '2026-01-01')")
    assert refused("org", "remove", "acme", "--data", data) == "The organisation acme owns 1 repo(s): delete or move them first"


def test_read_only_commands_refuse_a_folder_without_an_instance(tmp_path: Path) -> None:
    typo = tmp_path / "dta"
    expected = f"{typo} holds no hubgate instance (no hubgate.db); expected the data folder of a server"
    for command in (("user", "list"), ("org", "list"), ("org", "member", "list", "acme"), ("token", "list"),
                    ("user", "remove", "x"), ("user", "set-admin", "x"), ("org", "remove", "x"),
                    ("token", "revoke", "1"), ("mirror", "status")):
        assert refused(*command, "--data", str(typo), status=2) == expected, command
    assert not typo.exists()


def test_mirror_pull_never_asks_upstream_about_a_local_namespace(data: str, tmp_path: Path) -> None:
    config = tmp_path / "hubgate.toml"
    config.write_text("[[upstream]]\nname = 'down'\nurl = 'http://127.0.0.1:9'\n")
    ok("org", "add", "acme", "--owner", "alice", "--data", data)
    for repo in ("acme/private-model", "ACME/x", "alice/y@main"):
        err = refused("mirror", "pull", repo, "--config", str(config), "--data", data)
        namespace = repo.split("/")[0]
        kind = "org" if namespace.lower() == "acme" else "user"
        assert err == f"{namespace} is a local {kind}: its repos are hosted here, never pulled from an upstream"
    status = json.loads(ok("mirror", "status", "--config", str(config), "--data", data))
    assert status["upstreams"][0]["lastError"] is None  # nobody asked it anything


def test_mirror_status_tells_the_running_servers_mode(tmp_path: Path) -> None:
    config = tmp_path / "hubgate.toml"
    config.write_text("[[upstream]]\nname = 'down'\nurl = 'http://127.0.0.1:9'\n")
    data = tmp_path / "data"
    with start_server(data, "--offline", config=config) as server:
        status = json.loads(ok("mirror", "status", "--config", str(config), "--data", str(data)))
        assert status["offline"] is True  # the server's mode, though the config file says online
        assert status["server"]["pid"] == server.process.pid
        assert status["server"]["version"] == __version__
    status = json.loads(ok("mirror", "status", "--config", str(config), "--data", str(data)))
    assert status["offline"] is False and status["server"] is None
