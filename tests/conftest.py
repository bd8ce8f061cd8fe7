"""Fixtures that start real `hubgate serve` processes on 127.0.0.1 and manage their accounts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx
import huggingface_hub.constants
import pytest
from sqlalchemy import create_engine, text

from databases import DATABASES, wanted
from processes import Child, leftovers, reap, run_id, stop_group
from seaweed import SHARED as SEAWEED
from seaweed import server_env

run_id()  # before any child starts: every process this run starts carries it
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class Server:
    """A running `hubgate serve` with its own data folder."""

    url: str
    data: Path
    process: subprocess.Popen
    log: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `hubgate ARGS --data DIR` against this server's data folder."""
        return subprocess.run(
            [sys.executable, "-m", "hubgate", *args, "--data", str(self.data)],
            capture_output=True, text=True, check=check, env=self.env, timeout=120,
        )

    def add_user(self, name: str, *, admin: bool = False) -> None:
        self.cli("user", "add", name, *(["--admin"] if admin else []))

    def token(self, user: str, role: str = "write") -> str:
        out = self.cli("token", "create", user, "--role", role).stdout
        return out.strip().splitlines()[-1]

    def admin_headers(self) -> dict[str, str]:
        """Authorization of a server administrator (created on first use)."""
        if "admin" not in self.__dict__.setdefault("_tokens", {}):
            self.add_user("ops", admin=True)
            self._tokens["admin"] = self.token("ops", "read")  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {self._tokens['admin']}"}  # type: ignore[attr-defined]

    def sql(self, statement: str, **params: object) -> list[tuple]:
        """The rows of `statement` run on this server's metadata database (SQLite or PostgreSQL)."""
        engine = create_engine(self.env.get("HUBGATE_DATABASE_URL") or f"sqlite:///{self.data / 'hubgate.db'}")
        try:
            with engine.begin() as connection:
                return [tuple(row) for row in connection.execute(text(statement), params)]
        finally:
            engine.dispose()

    def stored_blobs(self) -> set[str]:
        """The digests of the blobs its store holds: files in the data folder's blobs/, or objects
        under its key prefix when it keeps them in the run's SeaweedFS (HUBGATE_TEST_BLOBS=s3)."""
        if "HUBGATE_BLOBS" in self.env:
            prefix = json.loads(self.env["HUBGATE_BLOBS"])["prefix"] + "blobs/"
            return {key.rsplit("/", 1)[1] for key in SEAWEED.get().keys(prefix)}
        return {path.name for path in (self.data / "blobs").glob("*/*/*")}

    def stop(self) -> None:
        """SIGTERM the server's process group (uvicorn and its workers), SIGKILL it after 20 s."""
        stop_group(self.process)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def through_lfs() -> Iterator[None]:
    """In this process, huggingface_hub uploads "lfs" files through the LFS batch API, not Xet:
    for tests about how a plain stored blob is served (sendfile, descriptors, metrics)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
        yield


def start_server(data: Path, *extra: str, env: dict[str, str] | None = None, config: Path | None = None,
                 timeout: float = 60, database: str | None = None, port: int = 0, blobs: str | None = None) -> Server:
    """Start `hubgate serve` (a session of its own) on a free port and return once it accepts
    requests; stop it and raise with its log if it exits or is not up within `timeout` seconds.
    `database`: "sqlite" (in the data folder) or "postgresql" (a database of its own for this data
    folder, see tests/databases.py); default: HUBGATE_TEST_DATABASE, else sqlite. `blobs`: "local"
    (in the data folder) or "s3" (the run's SeaweedFS, see tests/seaweed.py; not when `config` has
    a [blobs] table); default: HUBGATE_TEST_BLOBS, else local. `port`: 0 for any free one."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HF_ENDPOINT", None)
    if wanted(database) == "postgresql" and "HUBGATE_DATABASE_URL" not in full_env:
        full_env["HUBGATE_DATABASE_URL"] = DATABASES.url_for(data)
    if "HUBGATE_BLOBS" not in full_env and not _has_blobs_table(config):
        full_env.update(server_env(data, blobs))
    args = [sys.executable, "-m", "hubgate", "serve", "--host", "127.0.0.1", "--port", str(port), "--data", str(data), *extra]
    if config is not None:
        args += ["--config", str(config)]
    workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1

    def ready(log: list[str]) -> bool:  # uvicorn reported its port and every worker is up
        return any(READY.search(line) for line in log) and sum("Application startup complete" in line for line in log) >= workers

    child = Child(args, full_env)
    child.wait_for(ready, timeout=timeout)
    port = next(int(found.group(1)) for line in child.log if (found := READY.search(line)))
    server = Server(f"http://127.0.0.1:{port}", data, child.process, child.log, full_env)
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    except BaseException:
        server.stop()  # a server that never became healthy must not outlive the test
        raise
    return server


def _has_blobs_table(config: Path | None) -> bool:
    try:
        return config is not None and "blobs" in tomllib.loads(config.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):  # the server will say what is wrong
        return False


def shared_server(data: Path, database: str | None = None) -> Server:
    """A server with users alice (owner), bob (outsider) and carol (read member of the org acme)."""
    srv = start_server(data, database=database)
    try:
        srv.add_user("alice")
        srv.add_user("bob")
        srv.add_user("carol")
        srv.cli("org", "add", "acme", "--owner", "alice")
        srv.cli("org", "member", "add", "acme", "carol", "--role", "read")
    except BaseException:
        srv.stop()
        raise
    return srv


@pytest.fixture(scope="session")
def stores() -> str:
    """Which metadata database and blob store the servers a fixture starts get: here whatever
    HUBGATE_TEST_DATABASE / HUBGATE_TEST_BLOBS say. tests/test_postgresql.py overrides it with a
    parametrised fixture (PostgreSQL; PostgreSQL + S3): module fixtures that start servers request
    it, so they start again for each of its values."""
    return "default"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole session (see `shared_server`); tests/test_postgresql.py runs some
    of the tests that use it again with a server on PostgreSQL."""
    with shared_server(tmp_path_factory.mktemp("hubgate")) as srv:
        yield srv


@pytest.fixture(scope="session")
def alice_token(server: Server) -> str:
    return server.token("alice", "write")


@pytest.fixture(scope="session")
def bob_token(server: Server) -> str:
    return server.token("bob", "write")


@pytest.fixture(scope="session")
def carol_token(server: Server) -> str:
    return server.token("carol", "write")


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    with start_server(tmp_path / "data") as srv:
        yield srv


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if any server (or other process) it started is still alive, and kill those;
    stop the run's SeaweedFS, drop the PostgreSQL databases the run created."""
    SEAWEED.stop()
    alive = leftovers()
    if alive:
        reap(alive)
        listing = "\n".join(f"  {pid}: {cmd[:200]}" for pid, cmd in sorted(alive.items()))
        session.config.get_terminal_writer().line(f"\nprocesses started by this run outlived it (killed now):\n{listing}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    DATABASES.drop_all()
