#!/usr/bin/env python3
"""Memory benchmark: hubgate's RSS while serving many distinct ~9.5 MiB regular files, and while
clients that never read hold downloads open (issue 6, item 6).

One command (from the project root; writes docs/benchmarks.md, `--no-doc` only prints):

    python bench/memory.py

It starts a fresh `hubgate serve` (1 worker) on 127.0.0.1 with a temporary data folder, commits
`--files` distinct random regular files of `--size` bytes inline (as huggingface_hub >= 1.20 does),
10 per commit, and measures the server process's RSS (from /proc) during those commits, idle,
after downloading every file once with `--clients` concurrent clients, with `--non-readers` clients
that request one file and never read its body, and with both at once (peaks sampled every 50 ms). Everything it started is stopped
and its temporary folder removed at the end. MiB means 2**20 bytes.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime as dt
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from common import MIB, Hubgate, RssSampler, log, machine, publish, require_clean_tree, rss_bytes

REPO_ID = "bench/memory"


def commit(url: str, token: str, files: dict[str, bytes]) -> None:
    lines = [json.dumps({"key": "header", "value": {"summary": "bench files"}})]
    for path, data in files.items():
        lines.append(json.dumps({"key": "file", "value": {"path": path, "encoding": "base64",
                                                          "content": base64.b64encode(data).decode()}}))
    response = httpx.post(f"{url}/api/models/{REPO_ID}/commit/main", content="\n".join(lines).encode(), timeout=600,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    response.raise_for_status()


def download(url: str) -> int:
    received = 0
    with httpx.stream("GET", url, timeout=120) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1024 * 1024):
            received += len(chunk)
    return received


def never_reading(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:  # the response head only; the body is never read
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("connection closed before the response head")
        head += chunk
    return sock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30, help="distinct regular files (default 30)")
    parser.add_argument("--size", type=int, default=9_961_472, help="bytes per file (default 9.5 MiB)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent downloading clients (default 4)")
    parser.add_argument("--non-readers", type=int, default=100, help="clients that never read (default 100)")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()  # before a long run, not only when writing
    command = "python bench/memory.py" + "".join(f" {a}" for a in sys.argv[1:])
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-bench-memory-"))
    hub: Hubgate | None = None
    sockets: list[socket.socket] = []
    try:
        # All clients come from 127.0.0.1 here: lift the per-address connection cap (a memory test, not a limit test).
        hub = Hubgate.start(tmp / "data", 1, env={"HUBGATE_HTTP": json.dumps({"max_connections_per_client": 0})})
        hub.cli("user", "add", "bench")
        token = hub.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
        httpx.post(f"{hub.url}/api/repos/create", json={"name": "memory", "organization": "bench"},
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        names = [f"part-{i:03d}.txt" for i in range(opts.files)]
        pid = hub.process.pid
        base = f"{hub.url}/{REPO_ID}/resolve/main"
        rows: list[tuple[str, int, int]] = []
        started = rss_bytes(pid)
        rows.append(("started, empty repo", started, started))

        def measured(label: str, action) -> None:  # type: ignore[no-untyped-def]
            sampler = RssSampler(pid)
            sampler.start()
            action()
            sampler.stop()
            rows.append((label, rss_bytes(pid), sampler.peak))
            log(f"{label}: RSS {rss_bytes(pid) / MIB:.0f} MiB (peak {sampler.peak / MIB:.0f} MiB)")

        def upload() -> None:
            for start in range(0, opts.files, 10):  # huggingface_hub packs ~100 MiB per inline commit
                commit(hub.url, token, {name: os.urandom(opts.size) for name in names[start : start + 10]})

        log(f"committing {opts.files} files of {opts.size} bytes inline, 10 per commit")
        measured(f"{opts.files} files committed inline, 10 per commit", upload)
        download(f"{base}/{names[0]}")
        idle = rss_bytes(pid)
        rows.append(("idle, after the uploads", idle, idle))

        def all_files() -> None:
            with concurrent.futures.ThreadPoolExecutor(opts.clients) as pool:
                sizes = list(pool.map(download, [f"{base}/{name}" for name in names]))
            if sizes != [opts.size] * opts.files:
                raise RuntimeError("a download came back short")

        measured(f"{opts.files} distinct files downloaded, {opts.clients} clients", all_files)
        measured(f"+ {opts.non_readers} never-reading clients of one file",
                 lambda: sockets.extend(never_reading(f"{base}/{names[1]}") for _ in range(opts.non_readers)))
        measured("+ every file downloaded again meanwhile", all_files)
        healthy = httpx.get(f"{hub.url}/healthz", timeout=10).status_code == 200
        info = machine()
        lines = [
            f"Run {dt.datetime.now():%Y-%m-%d %H:%M} with `{command}` on {info.get('cpu', '?')}, "
            f"hubgate {info.get('commit', '?')}: {opts.files} regular files of {opts.size / MIB:.1f} MiB. "
            f"Health check during the last phase: {'200' if healthy else 'FAILED'}.",
            "",
            "| phase | RSS after (MiB) | peak RSS (MiB) | growth over start (MiB) |",
            "|---|---:|---:|---:|",
        ]
        for label, after, peak in rows:
            lines.append(f"| {label} | {after / MIB:.0f} | {peak / MIB:.0f} | {(max(after, peak) - started) / MIB:+.0f} |")
        growth = max(max(after, peak) for _, after, peak in rows[2:]) - idle
        history = (f"| {dt.datetime.now():%Y-%m-%d %H:%M} | {opts.files}×{opts.size / MIB:.1f} MiB, "
                   f"{opts.non_readers} non-readers | {idle / MIB:.0f} | {growth / MIB:+.0f} |")
        publish("\n".join(lines), history, "memory", write=not opts.no_doc)
        return 0
    finally:
        for sock in sockets:
            sock.close()
        if hub is not None:
            hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped hubgate, removed the temporary folder")


if __name__ == "__main__":
    sys.exit(main())
