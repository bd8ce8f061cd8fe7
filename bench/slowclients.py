#!/usr/bin/env python3
"""Hostile-client benchmark: hubgate's RSS and open files while slow and never-reading clients
attack it, and how fast its health check answers meanwhile (issue 6, item 7).

One command (from the project root; writes docs/benchmarks.md, `--no-doc` only prints):

    python bench/slowclients.py

It starts a fresh `hubgate serve` (1 worker) on 127.0.0.1 with a temporary data folder, short
`[http]` timeouts (`--timeout` seconds) and its open-file limit lowered to `--nofile`, stores one
`--size` byte file as LFS, then lets `--addresses` client addresses (127.0.0.10, .11, ...) each open
`--per-address` connections of a mix - never-reading downloads of that file, slowloris heads (a header
line every 0.3 s), stalled bodies, idle connections - `--rounds` times, while a checker on 127.0.0.1
asks `/healthz` and downloads a small file every 0.1 s. It samples the server's RSS and open files
(from /proc) every 50 ms, and reports every answer's status: a 500 or a health check slower than 5 s
is a failure. Everything it started is stopped and its temporary folder removed at the end.

`tests/test_load.py` runs the same mix, smaller, as a test.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from common import MIB, Hubgate, log, machine, publish, require_clean_tree, rss_bytes

KINDS = ("never_reading", "slowloris", "stalled_body", "idle")


@dataclass
class Figures:
    """What one run of the mix measured."""

    connections: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # attackers' answers by status line ("none": no answer)
    checks: Counter[int] = field(default_factory=Counter)  # health checks and small downloads by status
    check_errors: int = 0  # checks that got no answer at all
    slowest_check: float = 0.0
    rss_idle: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    rss_rounds: list[int] = field(default_factory=list)  # RSS once each wave has been let go of
    files_idle: int = 0
    files_peak: int = 0
    files_after: int = 0
    seconds: float = 0.0


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return 0


def open_sockets(pid: int) -> int:
    found = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            continue
    return found


def _attacker(kind: str, host: str, port: int, source: str, big_path: str, stop: threading.Event) -> str:
    """One hostile connection from `source`; the status line it got back ("none" if nothing)."""
    try:
        sock = socket.create_connection((host, port), timeout=30, source_address=(source, 0))
    except OSError:
        return "refused"
    received = b""
    try:
        sock.settimeout(0.3)
        if kind == "never_reading":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET {big_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            stop.wait()
        elif kind == "slowloris":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for i in range(10_000):
                if stop.is_set():
                    break
                sock.sendall(f"X-Slow-{i}: y\r\n".encode())
                try:
                    received = sock.recv(4096)
                    break  # answered (408) or closed
                except TimeoutError:
                    continue
        elif kind == "stalled_body":
            sock.sendall(b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"name\": ")
            stop.wait()
        else:  # idle
            stop.wait()
        if not received:
            sock.settimeout(5)
            received = sock.recv(4096)  # never-readers: the start of what was queued for them
    except OSError:
        pass
    finally:
        sock.close()
    line = received.split(b"\r\n", 1)[0].decode("latin-1")
    return line.split(" ", 2)[1] if line.startswith("HTTP/1.1 ") else "none"


def _checker(url: str, small_url: str, stop: threading.Event, figures: Figures) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            for target in (f"{url}/healthz", url + small_url):
                start = time.monotonic()
                try:
                    figures.checks[client.get(target).status_code] += 1
                except httpx.HTTPError:
                    figures.check_errors += 1
                figures.slowest_check = max(figures.slowest_check, time.monotonic() - start)
            stop.wait(0.1)


def run_mix(url: str, pid: int, big_path: str, small_path: str, *, addresses: int, per_address: int,
            rounds: int, hold: float, settle: float) -> Figures:
    """Attack the server at `url` (process `pid`) with the mix; see the module docstring."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host is not None and port is not None
    figures = Figures(rss_idle=rss_bytes(pid), files_idle=open_files(pid))
    figures.rss_peak, figures.files_peak = figures.rss_idle, figures.files_idle
    sockets_idle = open_sockets(pid) + 1  # the listening socket, and the checker's connection
    sampling, checking = threading.Event(), threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            figures.rss_peak = max(figures.rss_peak, rss_bytes(pid))
            figures.files_peak = max(figures.files_peak, open_files(pid))
            sampling.wait(0.05)

    threads = [threading.Thread(target=sample, daemon=True),
               threading.Thread(target=_checker, args=(url, small_path, checking, figures), daemon=True)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    lock = threading.Lock()
    for _ in range(rounds):
        stop = threading.Event()
        attackers = []
        for a in range(addresses):
            source = f"127.0.0.{10 + a}"
            for i in range(per_address):
                kind = KINDS[i % len(KINDS)]

                def attack(kind: str = kind, source: str = source, stop: threading.Event = stop) -> None:
                    status = _attacker(kind, host, port, source, big_path, stop)
                    with lock:
                        figures.statuses[f"{kind}:{status}"] += 1

                attackers.append(threading.Thread(target=attack, daemon=True))
        for thread in attackers:
            thread.start()
        figures.connections += len(attackers)
        stop.wait(hold)
        stop.set()
        for thread in attackers:
            thread.join(60)
        deadline = time.monotonic() + settle  # the server's timeouts let go of what the attackers left
        while open_sockets(pid) > sockets_idle and time.monotonic() < deadline:
            time.sleep(0.1)
        figures.rss_rounds.append(rss_bytes(pid))
    figures.seconds = time.monotonic() - started
    checking.set()
    sampling.set()
    for thread in threads:
        thread.join(60)
    figures.rss_after, figures.files_after = rss_bytes(pid), open_files(pid)
    return figures


def start_target(data: Path, timeout: float, nofile: int, size: int) -> tuple[Hubgate, str, str]:
    """A hubgate with short timeouts and `nofile` open files at most, holding a big and a small LFS file."""
    limits = {"header_timeout": timeout, "body_timeout": timeout, "send_timeout": timeout, "keep_alive": 5}
    server = Hubgate.start(data, 1, env={"HUBGATE_HTTP": json.dumps(limits), "HUBGATE_LFS_THRESHOLD": "100"})
    httpx.get(f"{server.url}/healthz", timeout=30).raise_for_status()
    server.cli("user", "add", "bench")
    token = server.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{server.url}/api/repos/create", json={"name": "load"}, headers=auth, timeout=60).raise_for_status()
    for name, data_bytes in (("big.bin", os.urandom(size)), ("small.bin", b"s" * 1000)):
        body = _commit_body(name, data_bytes)
        httpx.post(f"{server.url}/api/models/bench/load/commit/main", content=body, timeout=600,
                   headers={**auth, "Content-Type": "application/x-ndjson"}).raise_for_status()
    _, hard = resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (nofile, hard))
    return server, "/bench/load/resolve/main/big.bin", "/bench/load/resolve/main/small.bin"


def _commit_body(name: str, data: bytes) -> bytes:
    lines = [{"key": "header", "value": {"summary": name}},
             {"key": "file", "value": {"path": name, "content": base64.b64encode(data).decode(), "encoding": "base64"}}]
    return "\n".join(json.dumps(line) for line in lines).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=8, help="attacking client addresses (default 8)")
    parser.add_argument("--per-address", type=int, default=40, help="connections per address and round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="waves of attackers (default 3)")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds each wave holds on (default 6)")
    parser.add_argument("--timeout", type=float, default=2.0, help="[http] header/body/send timeouts (default 2 s)")
    parser.add_argument("--nofile", type=int, default=512, help="the server's open-file limit (default 512)")
    parser.add_argument("--size", type=int, default=64 * MIB, help="bytes of the file never-readers ask for")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()  # before a long run, not only when writing
    folder = Path(tempfile.mkdtemp(prefix="hubgate-slow-"))
    server = None
    try:
        server, big, small = start_target(folder / "data", opts.timeout, opts.nofile, opts.size)
        log(f"attacking {server.url}: {opts.addresses} addresses x {opts.per_address} connections x {opts.rounds} rounds")
        figures = run_mix(server.url, server.process.pid, big, small, addresses=opts.addresses,
                          per_address=opts.per_address, rounds=opts.rounds, hold=opts.hold,
                          settle=opts.timeout * 3 + 5)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    failures = sum(n for status, n in figures.statuses.items() if status.endswith(":500")) + figures.checks[500]
    ok = failures == 0 and figures.slowest_check < 5
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    about = machine()
    section = "\n".join([
        f"Run {when} on {about.get('cpu', '?')}, hubgate {about.get('commit', '?')}; `python bench/slowclients.py` "
        f"({opts.addresses} addresses x {opts.per_address} connections x {opts.rounds} rounds of {opts.hold:g} s, "
        f"timeouts {opts.timeout:g} s, open-file limit {opts.nofile}, {opts.size / MIB:g} MiB file).",
        "",
        "| measure | idle | peak | after |",
        "|---|---|---|---|",
        f"| RSS (MiB) | {figures.rss_idle / MIB:.0f} | {figures.rss_peak / MIB:.0f} | {figures.rss_after / MIB:.0f} |",
        f"| open files | {figures.files_idle} | {figures.files_peak} | {figures.files_after} |",
        "",
        "RSS after each wave (MiB): " + ", ".join(f"{r / MIB:.0f}" for r in figures.rss_rounds) + ".",
        "",
        f"Hostile connections: {figures.connections}; their answers: "
        + ", ".join(f"{k} {v}" for k, v in sorted(figures.statuses.items())) + ".",
        f"Checks (health + small download): {dict(sorted(figures.checks.items()))}, {figures.check_errors} unanswered, "
        f"slowest {figures.slowest_check:.2f} s. Result: {'pass' if ok else 'FAIL'} (no 500, checks under 5 s).",
    ])
    history = (f"| {when} | {figures.connections} | {figures.rss_idle / MIB:.0f} / {figures.rss_peak / MIB:.0f} / "
               f"{figures.rss_after / MIB:.0f} | {figures.files_idle} / {figures.files_peak} / {figures.files_after} | "
               f"{figures.slowest_check:.2f} | {failures} |")
    publish(section, history, "slowclients", write=not opts.no_doc)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
