#!/usr/bin/env python3
"""A minimal HTTP/1.1 download client that discards the body with few, large `recv_into` calls.

    python bench/client.py URL [--token T] [--buffer-mib 4]

Prints one line: `STATUS BYTES START END CPU`, START and END being CLOCK_MONOTONIC seconds (shared by all
processes of the machine) at connect and at the last byte, so a driver can time several clients without
counting interpreter start-up, and CPU the seconds of CPU this process spent in between. Each request is one connection (Connection: close). The body
is dropped by the kernel without being copied (`recv` with MSG_TRUNC, which Linux honours on TCP
sockets), a few MiB per call, so the client costs almost no CPU: on this 2-core virtual machine curl
(16 KiB reads, each followed by a write to /dev/null) burns a whole core at ~1 GB/s and becomes the
bottleneck, and even a plain copying reader spends most of a core at ~2 GB/s. With --copy the body is
copied into one reused buffer instead, as a real client would.

Options used by bench/mirror.py: --follow follows redirects (301/302/303/307/308, a new connection
each, the token only to the first URL's origin, as huggingface_hub does), START staying the first
connect; --ttfb appends a sixth field FIRST, the CLOCK_MONOTONIC time the first body byte arrived.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from urllib.parse import urljoin, urlsplit


def download(url: str, token: str | None, buffer_size: int, copy: bool = False,
             follow: bool = False) -> tuple[int, int, float, float, float, float]:
    """(status, body bytes, start, end, CPU seconds, first body byte time) of a GET of `url`."""
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    start, cpu = time.monotonic(), time.process_time()
    first_origin = urlsplit(url)[:2]
    for _hop in range(6):
        send_token = token if urlsplit(url)[:2] == first_origin else None
        status, received, first, location = _get(url, send_token, view, buffer_size, copy)
        if follow and status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        break
    return status, received, start, time.monotonic(), time.process_time() - cpu, first


def _get(url: str, token: str | None, view: memoryview, buffer_size: int,
         copy: bool) -> tuple[int, int, float, str | None]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise SystemExit(f"client: only http:// URLs: {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "User-Agent: hubgate-bench", "Accept-Encoding: identity",
             "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    with socket.create_connection((parts.hostname, parts.port or 80)) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(view)
            if n == 0:
                raise SystemExit(f"client: connection closed inside the headers: {head[:200]!r}")
            head += view[:n]
        first = time.monotonic()  # the headers (and maybe the first body bytes) are in
        head, _, body_start = head.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        length, location = None, None
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "location":
                location = value.strip()
            elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                raise SystemExit("client: chunked bodies are not supported")
        received = len(body_start)
        flags = 0 if copy else socket.MSG_TRUNC
        while length is None or received < length:
            n = sock.recv_into(view, buffer_size, flags)
            if n == 0:
                break
            if received == 0:
                first = time.monotonic()
            received += n
    return status, received, first, location


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--buffer-mib", type=float, default=4)
    parser.add_argument("--copy", action="store_true", help="copy the body into user space instead of dropping it")
    parser.add_argument("--follow", action="store_true", help="follow redirects")
    parser.add_argument("--ttfb", action="store_true", help="also print when the first body byte arrived")
    opts = parser.parse_args()
    status, received, start, end, cpu, first = download(opts.url, opts.token, int(opts.buffer_mib * 1024 * 1024),
                                                        opts.copy, opts.follow)
    print(f"{status} {received} {start:.6f} {end:.6f} {cpu:.6f}" + (f" {first:.6f}" if opts.ttfb else ""))
    sys.exit(0 if status == 200 else 1)


if __name__ == "__main__":
    main()
