"""Slow, idle, greedy and never-reading clients are bounded; running out of files answers 503 (issue 6, item 7)."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from huggingface_hub import HfApi

from conftest import Server, start_server, through_lfs

LIMITS = {"header_timeout": 1.5, "body_timeout": 1.5, "send_timeout": 1.5, "keep_alive": 1,
          "max_connections_per_client": 8}
BIG = 8 * 1024 * 1024  # far more than socket buffers hold


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with short timeouts and a small per-client connection cap, holding one big file."""
    server = start_server(tmp_path_factory.mktemp("strict"), env={"HUBGATE_HTTP": json.dumps(LIMITS)})
    try:
        server.add_user("alice")
        api = HfApi(endpoint=server.url, token=server.token("alice"))
        repo = f"alice/big-{uuid.uuid4().hex[:6]}"
        api.create_repo(repo)
        with through_lfs():  # a plain blob, sent by sendfile
            api.upload_file(path_or_fileobj=os.urandom(BIG), path_in_repo="big.bin", repo_id=repo)
        server.env["BIG_URL"] = f"/{repo}/resolve/main/big.bin"
        yield server
    finally:
        server.stop()


def connect(server: Server, timeout: float = 10) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds` (reading and keeping what it sent)."""
    deadline = time.monotonic() + seconds
    received = bytearray()
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, bytes(received)
        if not chunk:
            return True, bytes(received)
        received += chunk
    return False, bytes(received)


def open_files(server: Server) -> int:
    """The server's open files but its database's (a connection the pool opens when threads use
    the database at once stays pooled for reuse, and is no leak)."""
    count = 0
    for fd in os.listdir(f"/proc/{server.process.pid}/fd"):
        try:
            count += "hubgate.db" not in os.readlink(f"/proc/{server.process.pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
    return count


def healthy(server: Server) -> bool:
    return httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_idle_connection_is_closed(strict: Server) -> None:
    with connect(strict) as sock:
        closed, sent = closed_within(sock, LIMITS["header_timeout"] + 3)
    assert closed and sent == b""


def test_slowloris_headers_get_408(strict: Server) -> None:
    start = time.monotonic()
    with connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(40):  # a header line every 0.1 s: data keeps coming, the head never ends
            try:
                sock.sendall(f"X-Slow-{i}: y\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                break
            closed, sent = closed_within(sock, 0.1)
            if closed:
                break
        else:
            closed, sent = closed_within(sock, 1)
    assert closed, "a trickled head was never timed out"
    assert sent.startswith(b"HTTP/1.1 408"), sent
    assert time.monotonic() - start < LIMITS["header_timeout"] + 2.5


def test_stalled_body_drops_the_connection(strict: Server) -> None:
    token = strict.token("alice")
    with connect(strict) as sock:
        sock.sendall(f"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": ".encode())
        closed, _ = closed_within(sock, LIMITS["body_timeout"] + 3)
    assert closed
    assert healthy(strict)


def test_never_reading_download_is_dropped_and_its_files_closed(strict: Server) -> None:
    assert len(httpx.get(strict.url + strict.env["BIG_URL"], timeout=30).content) == BIG  # database pool warm
    before = open_files(strict)
    sockets = []
    for _ in range(4):
        sock = connect(strict)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {strict.env['BIG_URL']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sockets.append(sock)
    try:
        deadline = time.monotonic() + LIMITS["send_timeout"] + 5
        while (count := open_files(strict)) > before and time.monotonic() < deadline:
            assert healthy(strict)  # the server stays responsive meanwhile
        # (the count seen last: a second look could catch the socket of a health check closing)
        assert count <= before, "stalled downloads still hold files"
        for sock in sockets:  # each got part of the file, then the connection ended
            closed, received = closed_within(sock, 10)
            assert closed and 0 < len(received) < BIG
    finally:
        for sock in sockets:
            sock.close()


def test_file_downloads_go_out_by_sendfile(strict: Server) -> None:
    """The zero-copy path is taken (through the audit's wrapper of `send`): while it waits on a
    client that reads slowly, it polls a duplicate of the connection's socket."""
    def socket_inodes() -> list[str]:
        pid = strict.process.pid
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except FileNotFoundError:
                continue
        return [link for link in links if link.startswith("socket:")]

    with connect(strict) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {strict.env['BIG_URL']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        deadline = time.monotonic() + LIMITS["send_timeout"]
        doubled = False
        while not doubled and time.monotonic() < deadline:
            inodes = socket_inodes()
            doubled = len(inodes) != len(set(inodes))
        assert doubled, "the body did not go out by sendfile()"


def test_connections_per_client_are_capped(strict: Server) -> None:
    cap = LIMITS["max_connections_per_client"]
    held = [connect(strict) for _ in range(cap - 1)]  # the probe below is one more, and fits
    try:
        for sock in held:  # make sure the server has accepted each before the next test
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        with connect(strict) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(4096).startswith(b"HTTP/1.1 200")
            with connect(strict) as over:
                over.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                closed, answer = closed_within(over, 5)
        assert closed and answer.startswith(b"HTTP/1.1 503"), answer
        assert b"\r\nRetry-After: " in answer and b'"error"' in answer
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5  # the server sees the closes above soon: new connections are let in
    while httpx.get(f"{strict.url}/healthz", timeout=5).status_code == 503 and time.monotonic() < deadline:
        pass
    assert healthy(strict)


def test_running_out_of_files_answers_503_not_500(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"HUBGATE_LFS_THRESHOLD": "100"})  # a.txt is served from a file
    try:
        server.add_user("alice")
        token = server.token("alice")
        api = HfApi(endpoint=server.url, token=token)
        api.create_repo("alice/r")
        with through_lfs():
            api.upload_file(path_or_fileobj=b"x" * 1000, path_in_repo="a.txt", repo_id="alice/r")
        client = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=4, max_connections=4))
        url = f"{server.url}/alice/r/resolve/main/a.txt"
        assert client.get(url).status_code == 200  # connections open and warm before the limit drops
        soft, hard = resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE)
        statuses: list[int] = []
        for _round in range(3):  # a file the server held for a moment (an audit write) may free a slot
            # New descriptors take the lowest free number: none below the limit means none at all.
            in_use = {int(fd) for fd in os.listdir(f"/proc/{server.process.pid}/fd")}
            lowest_free = min(set(range(len(in_use) + 1)) - in_use)
            resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (lowest_free, hard))
            statuses += [client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code for _ in range(10)]
            resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (soft, hard))
            if 503 in statuses:
                break
        assert 500 not in statuses, statuses
        assert set(statuses) <= {200, 503}, statuses
        assert 503 in statuses, statuses
        assert client.get(url).status_code == 200
    finally:
        server.stop()
