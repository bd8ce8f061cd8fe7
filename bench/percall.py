#!/usr/bin/env python3
"""Warm per-request cost of a small file, hosted and mirrored, in repos of 10 and 20,000 files,
before and after the mirror's warm-path fix, in one run (issue 10, "Speed").

    python bench/percall.py [--files 10,20000] [--rounds 300] [--before REV] [--no-doc]

For each of two versions of hubgate — this checkout ("after") and `--before REV` (default: the commit
before the one that added src/hubgate/mirror/tally.py, checked out in a temporary detached worktree) —
starts an origin `hubgate serve` hosting one repo per `--files` count (7-byte files, 7 folders, one
NDJSON commit each) and a mirror `hubgate serve` with that origin as its only upstream (1 worker each,
SQLite, local disk). Each mirror fetches `d0/f0.txt` of every repo once; then `--rounds` rounds each send
one `GET .../resolve/main/d0/f0.txt` to every (version, hosted|mirrored, repo) target, in an order
rotated every round, one keep-alive connection per target. Prints p50/p90 per target and the ratios
mirrored / hosted and largest / smallest repo, and writes them to docs/benchmarks.md (between the
percall:* markers; only from a clean tree; `--no-doc` only prints). Stops every server, removes the
folders and the worktree.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from common import ROOT, Hubgate, log, publish_table, require_clean_tree

FILE = "d0/f0.txt"
BODY = b"1234567"
MARK = "src/hubgate/mirror/tally.py"  # the warm-path fix added it


def default_before() -> str:
    added = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--diff-filter=A", "--format=%H", "--", MARK],
                           capture_output=True, text=True, check=True).stdout.strip()
    if not added:
        raise SystemExit(f"no commit adds {MARK} here: pass --before REV")
    return rev_parse(f"{added}^")


def rev_parse(rev: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                          check=True).stdout.strip()


@contextmanager
def checkout(rev: str, folder: Path) -> Iterator[Path]:
    """A detached worktree of `rev` at `folder`; its `src` folder."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(folder), rev], check=True)
    try:
        yield folder / "src"
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)


def commit_body(n: int) -> bytes:
    content = base64.b64encode(BODY).decode()
    lines = [json.dumps({"key": "header", "value": {"summary": f"{n} files"}})]
    lines += [json.dumps({"key": "file", "value": {"path": f"d{i % 7}/f{i}.txt", "encoding": "base64",
                                                    "content": content}}) for i in range(n)]
    return "\n".join(lines).encode()


def start_pair(stack: ExitStack, src: Path, data: Path, sizes: list[int]) -> tuple[str, str]:
    """An origin hosting one repo per size and a mirror of it, both running `src`; their URLs."""
    env = {"PYTHONPATH": str(src)}
    origin = Hubgate.start(data / "origin", 1, env=env)
    stack.callback(origin.stop)
    origin.cli("user", "add", "bench")
    token = origin.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    for n in sizes:
        httpx.post(f"{origin.url}/api/repos/create", json={"name": f"bench/files-{n}"}, headers=headers,
                   timeout=60).raise_for_status()
        httpx.post(f"{origin.url}/api/models/bench/files-{n}/commit/main", content=commit_body(n), timeout=600,
                   headers={**headers, "Content-Type": "application/x-ndjson"}).raise_for_status()
    config = data / "mirror.toml"
    config.write_text(f'[[upstream]]\nname = "origin"\nurl = "{origin.url}"\n')
    mirror = Hubgate.start(data / "mirror", 1, extra_args=["--config", str(config)], env=env)
    stack.callback(mirror.stop)
    return origin.url, mirror.url


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", default="10,20000", help="comma-separated file counts, one repo each")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--before", default=None, help="the version to compare with (default: before the fix)")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()
    sizes = [int(x) for x in opts.files.split(",")]
    before = rev_parse(opts.before) if opts.before else default_before()
    after = rev_parse("HEAD")
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-bench-percall-"))
    times: dict[tuple[str, str, int], list[float]] = {}
    try:
        with ExitStack() as stack:
            clients: dict[tuple[str, str, int], tuple[httpx.Client, str]] = {}
            for version, src in ((f"before ({before})", stack.enter_context(checkout(before, tmp / "before"))),
                                 (f"after ({after})", ROOT / "src")):
                log(f"starting {version}: origin and mirror, repos of {opts.files} files")
                data = tmp / f"data-{version.split()[0]}"
                data.mkdir()
                urls = start_pair(stack, src, data, sizes)
                for kind, url in zip(("hosted", "mirrored"), urls, strict=True):
                    client = stack.enter_context(httpx.Client(timeout=60))
                    for n in sizes:
                        clients[version, kind, n] = client, f"{url}/bench/files-{n}/resolve/main/{FILE}"
            for client, url in clients.values():  # the mirror fetches the file; then everyone warms up
                for _ in range(20):
                    response = client.get(url)
                    if response.status_code != 200 or response.content != BODY:
                        raise RuntimeError(f"{url} answered {response.status_code} {response.content[:200]!r}")
            log(f"{opts.rounds} rounds over {len(clients)} targets")
            keys = list(clients)
            for key in keys:
                times[key] = []
            for i in range(opts.rounds):
                for key in keys[i % len(keys):] + keys[:i % len(keys)]:
                    client, url = clients[key]
                    start = time.perf_counter()
                    response = client.get(url)
                    times[key].append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200 and response.content == BODY
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped every server, removed the temporary folders")
    rows, summary = [], []
    for version in dict.fromkeys(k[0] for k in times):
        p50 = {(kind, n): statistics.median(times[version, kind, n]) for kind in ("hosted", "mirrored") for n in sizes}
        for n in sizes:
            hosted, mirrored = times[version, "hosted", n], times[version, "mirrored", n]
            rows.append((version, f"{n:,}", f"{p50['hosted', n]:.2f}", f"{percentile(hosted, 90):.2f}",
                         f"{p50['mirrored', n]:.2f}", f"{percentile(mirrored, 90):.2f}",
                         f"**{p50['mirrored', n] / p50['hosted', n]:.2f}×**"))
        big, small = max(sizes), min(sizes)
        rows.append((version, f"{big:,} / {small:,}", f"{p50['hosted', big] / p50['hosted', small]:.2f}×", "",
                     f"{p50['mirrored', big] / p50['mirrored', small]:.2f}×", "", ""))
        summary.append(f"{version}: mirrored/hosted " + ", ".join(
            f"{n}: {p50['mirrored', n]:.2f}/{p50['hosted', n]:.2f} ms" for n in sizes))
    command = f"python bench/percall.py --files {opts.files} --rounds {opts.rounds} --before {before}"
    publish_table("percall", command,
                  [("version", "l"), ("files in repo", "r"), ("hosted p50 ms", "r"), ("hosted p90 ms", "r"),
                   ("mirrored p50 ms", "r"), ("mirrored p90 ms", "r"), ("mirrored / hosted (p50)", "r")],
                  rows, summary, write=not opts.no_doc,
                  note=f", {opts.rounds} rounds, every target once a round (order rotated), 1 worker per server, SQLite")


if __name__ == "__main__":
    main()
