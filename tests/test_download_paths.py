"""The file-body paths of ContentResponse on one keep-alive connection.

Under uvicorn, local files go out with sendfile() straight to the socket while uvicorn's own byte
count is advanced by hand (see src/hubgate/http/responses.py), so these check what that could break:
framing on a reused connection (HEAD, ranges, a full body, a pipelined pair, a 416 after a body),
and that a client leaving mid-transfer neither leaks the file descriptor nor has the rest of the
file read for nobody. They hold for the chunked path too.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from conftest import Server, start_server, through_lfs

SIZE = 48 * 1024 * 1024 + 12345
REPO = "alice/bigfile"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, so nothing else runs in it while its file descriptors are counted."""
    with start_server(tmp_path_factory.mktemp("downloads")) as server:
        server.add_user("alice")
        yield server


@pytest.fixture(scope="module")
def token(srv: Server) -> str:
    return srv.token("alice", "write")


@pytest.fixture(scope="module")
def big_file(srv: Server, token: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("big") / "model.safetensors"
    path.write_bytes(data)
    api = HfApi(endpoint=srv.url, token=token)
    api.create_repo(REPO, private=True)
    with through_lfs():  # a plain stored blob: these tests watch how its file is read and sent
        api.upload_file(path_or_fileobj=str(path), path_in_repo="model.safetensors", repo_id=REPO)
    return data


class Connection:
    """One raw HTTP/1.1 connection, to see exactly what goes over it."""

    def __init__(self, server: Server, token: str) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.token = token
        self.buffer = b""

    def request(self, method: str, *headers: str) -> bytes:
        lines = [f"{method} /{REPO}/resolve/main/model.safetensors HTTP/1.1", "Host: hubgate",
                 f"Authorization: Bearer {self.token}", *headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def _more(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buffer += data

    def response(self, head_request: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = 0 if head_request else int(headers["content-length"])
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.sock.close()


def test_head_ranges_and_bodies_keep_their_framing_on_one_connection(srv: Server, token: str, big_file: bytes) -> None:
    conn = Connection(srv, token)
    try:
        conn.send(conn.request("HEAD"))
        status, headers, _ = conn.response(head_request=True)
        assert (status, headers["content-length"], headers["accept-ranges"]) == (200, str(SIZE), "bytes")

        conn.send(conn.request("GET", "Range: bytes=100-199"))
        status, headers, body = conn.response()
        assert (status, headers["content-range"], body) == (206, f"bytes 100-199/{SIZE}", big_file[100:200])

        conn.send(conn.request("GET"))
        status, headers, body = conn.response()
        assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(big_file).digest()

        conn.send(conn.request("GET", f"Range: bytes={SIZE}-"))
        status, headers, _ = conn.response()
        assert (status, headers["content-range"]) == (416, f"bytes */{SIZE}")

        start = 7 * 1024 * 1024 + 3  # a large range from the middle, then a tiny one, pipelined
        conn.send(conn.request("GET", f"Range: bytes={start}-"), conn.request("GET", "Range: bytes=-10"))
        first, second = conn.response(), conn.response()
        assert (first[0], second[0]) == (206, 206)
        assert hashlib.sha256(first[2]).digest() == hashlib.sha256(big_file[start:]).digest()
        assert second[2] == big_file[-10:]
    finally:
        conn.close()


def _open_blobs(pid: int, sha256: str) -> int:
    """How many file descriptors of the process point at the blob."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(sha256)
        except OSError:  # closed meanwhile
            pass
    return count


def _bytes_read(pid: int) -> int:
    """Bytes the process read from files so far (read, pread and sendfile all count)."""
    return int(re.search(r"rchar: (\d+)", Path(f"/proc/{pid}/io").read_text()).group(1))  # type: ignore[union-attr]


def _wait_until(condition, what: str, limit: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {limit}s: {what}")
        time.sleep(0.05)  # polling a condition, not waiting for a guessed duration


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc")
def test_client_leaving_mid_download_releases_the_file(srv: Server, token: str, big_file: bytes) -> None:
    pid = srv.process.pid  # one worker: the server process serves the requests itself
    sha256 = hashlib.sha256(big_file).hexdigest()
    before = _bytes_read(pid)
    for reset in (False, True, False, True):
        conn = Connection(srv, token)
        conn.send(conn.request("GET"))
        received = 0
        while received < 1024 * 1024:
            received += len(conn.sock.recv(1 << 20))
        assert _open_blobs(pid, sha256) == 1  # the download is under way
        if reset:  # RST instead of FIN
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        _wait_until(lambda: _open_blobs(pid, sha256) == 0, "the server closed the blob of a client that left")
    read = _bytes_read(pid) - before
    # Four whole downloads would read 4 x 48 MiB; what was in flight (socket buffers) is far less.
    assert read < 2 * SIZE, f"read {read} bytes for 4 downloads abandoned after 1 MiB"
    conn = Connection(srv, token)  # and the server still answers
    conn.send(conn.request("GET", "Range: bytes=5-9"))
    assert conn.response()[2] == big_file[5:10]
    conn.close()
