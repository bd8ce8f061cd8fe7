"""Fixtures that start real `hubgate serve` processes on 127.0.0.1 and manage their accounts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data: Path, *extra: str, env: dict[str, str] | None = None, config: Path | None = None) -> Server:
    """Start `hubgate serve` on a free port and return once it accepts requests."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HF_ENDPOINT", None)
    args = [sys.executable, "-m", "hubgate", "serve", "--host", "127.0.0.1", "--port", "0", "--data", str(data), *extra]
    if config is not None:
        args += ["--config", str(config)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    log: list[str] = []
    port = None
    workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1
    started = 0
    assert process.stdout is not None
    for line in process.stdout:  # blocks until uvicorn reports its port and every worker is up
        log.append(line)
        found = READY.search(line)
        if found:
            port = int(found.group(1))
        started += "Application startup complete" in line
        if port is not None and started >= workers:
            break
    if port is None or started < workers:
        process.wait(timeout=10)
        raise RuntimeError("hubgate serve did not start:\n" + "".join(log))
    threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
    server = Server(f"http://127.0.0.1:{port}", data, process, log, full_env)
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    except BaseException:
        server.stop()  # a server that never became healthy must not outlive the test
        raise
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole session, with users alice (owner) and bob (outsider), org acme."""
    srv = start_server(tmp_path_factory.mktemp("hubgate"))
    srv.add_user("alice")
    srv.add_user("bob")
    srv.add_user("carol")
    srv.cli("org", "add", "acme", "--owner", "alice")
    srv.cli("org", "member", "add", "acme", "carol", "--role", "read")
    yield srv
    srv.stop()


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
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()
