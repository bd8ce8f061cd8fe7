"""The HTTP layer itself: header values built from input, framing (RFC 9112), hostile connections."""

from __future__ import annotations

import json
import socket
import uuid
from urllib.parse import urlsplit

import pytest
from huggingface_hub import HfApi

from conftest import Server


def exchange(server: Server, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers until it closes or goes quiet.

    A reset (the server dropping the connection without an answer) raises ConnectionResetError or
    returns b"".
    """
    return talk(server, request, timeout)[0]


def talk(server: Server, request: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """What the server answers to raw bytes, and whether it then closed the connection (else it went quiet)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = bytearray()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return bytes(received), False
        return bytes(received), True


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the first response in `answer`."""
    assert answer, "the server dropped the connection without answering"
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.fixture(scope="module")
def hello(server: Server, alice_token: str) -> str:
    """A public repo of alice's holding hello.txt."""
    repo_id = f"alice/pub-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="hello.txt", repo_id=repo_id)
    return repo_id


# -- item 1: every header value built from input is valid -------------------------------------------


@pytest.mark.parametrize("suffix", ["%20", "%09", "%0A", "%0D", "%00", "%20%20", "%7F", "%C2%A0"])
def test_error_messages_quoting_whitespace_are_answered(server: Server, hello: str, suffix: str) -> None:
    status, headers, body = parse(exchange(server, get(f"/{hello}/resolve/main/hello.txt{suffix}")))
    assert status == 404, (status, body)
    assert headers["x-error-code"] == "EntryNotFound"
    assert "hello.txt" in headers["x-error-message"]
    assert json.loads(body)["error"]


@pytest.mark.parametrize("path", ["/nothing%20", "/nothing%09", "/api/nothing%0A", "/a/b/c/d%20"])
def test_unknown_routes_ending_in_whitespace_are_answered(server: Server, path: str) -> None:
    status, headers, body = parse(exchange(server, get(path)))
    assert status == 404, (status, body)
    assert headers["x-error-message"].startswith("Not found")
    assert json.loads(body)["error"]


@pytest.mark.parametrize("trace", ["Root=1-abc ", "Root=1-abc\t", "Root=1-abc\x01", "\x7f x", "Root=1-\x0bx"])
def test_echoed_request_ids_are_valid_header_values(server: Server, trace: str) -> None:
    status, headers, _ = parse(exchange(server, get("/healthz", f"X-Amzn-Trace-Id: {trace}")))
    if status == 400:  # refused by the HTTP parser itself: fine, as long as it is an answer
        return
    assert status == 200
    echoed = headers["x-request-id"]
    assert echoed and echoed == echoed.strip()
    assert all(" " <= c <= "~" for c in echoed), repr(echoed)


# -- item 15: message framing as RFC 9112 says ----------------------------------------------------


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\nHost: x\n\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\rX-B: c\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\n",
], ids=["bare-LF", "one-bare-LF", "bare-CR", "bare-LF-blank-line"])
def test_bare_line_endings_are_refused(server: Server, request_bytes: bytes) -> None:
    answer, closed = talk(server, request_bytes, timeout=5)
    status, headers, body = parse(answer)
    assert status == 400 and closed
    assert headers["connection"] == "close"
    assert "bare" in json.loads(body)["error"]


@pytest.mark.parametrize("method, path", [("POST", "/api/repos/create"), ("GET", "/healthz")])
def test_content_length_with_transfer_encoding_is_refused_and_closed(server: Server, method: str, path: str) -> None:
    smuggled = b"GET /api/whoami-v2 HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode() + smuggled
    answer, closed = talk(server, request, timeout=5)
    status, headers, _ = parse(answer)
    assert status == 400 and closed, answer
    assert answer.count(b"HTTP/1.1 ") == 1  # nothing after it was taken for a second request


def test_well_formed_requests_still_pipeline(server: Server) -> None:
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer, _ = talk(server, one + one + one.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert answer.count(b"HTTP/1.1 200 OK") == 3
