#!/usr/bin/env python3
"""Commit-size benchmark: one commit of N small files (issue 6, item 8: it was O(N^2)).

    python bench/commit_scale.py [--sizes 2000,16000,32000] [--no-doc]

Starts a fresh `hubgate serve` (1 worker) on 127.0.0.1 with a temporary data folder and, for each
N, commits N new 16-byte files inline (40 per folder, 7 top-level folders) in one request to a new
repo, then one more commit of N files on top of the first (the tree is then 2N files). Prints the
wall time of each commit request and the time per file, and writes them to docs/benchmarks.md
(between the commitscale:* markers; only from a clean tree; `--no-doc` only prints); stops the
server and removes the folder.
"""

from __future__ import annotations

import argparse
import base64
import json
import time

import httpx
from common import log, publish_table, require_clean_tree, scratch_hubgate


def body(n: int, tag: str) -> bytes:
    lines = [json.dumps({"key": "header", "value": {"summary": f"{n} files"}})]
    for i in range(n):
        content = base64.b64encode(f"{tag} file {i:08d}".encode()[:16]).decode()
        lines.append(json.dumps({"key": "file", "value": {"path": f"{tag}{i % 7}/d{i // 40}/f{i}.txt",
                                                          "encoding": "base64", "content": content}}))
    return "\n".join(lines).encode()


def timed_commit(url: str, token: str, repo: str, payload: bytes) -> float:
    start = time.perf_counter()
    response = httpx.post(f"{url}/api/models/{repo}/commit/main", content=payload, timeout=3600,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,16000,32000", help="comma-separated file counts")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()
    with scratch_hubgate("commit") as hub:
        hub.cli("user", "add", "bench")
        token = hub.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
        rows, summary = [], []
        for n in (int(x) for x in opts.sizes.split(",")):
            repo = f"bench/scale-{n}"
            httpx.post(f"{hub.url}/api/repos/create", json={"name": repo}, timeout=60,
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            first = timed_commit(hub.url, token, repo, body(n, "a"))
            second = timed_commit(hub.url, token, repo, body(n, "b"))
            log(f"{n} files: {first:.2f} s, then {second:.2f} s on top of them")
            rows.append((n, f"{first:.2f} s", f"{first / n * 1e6:.0f} µs", f"{second:.2f} s"))
            summary.append(f"{n}: {first:.2f} / {second:.2f} s")
    publish_table("commitscale", f"python bench/commit_scale.py --sizes {opts.sizes}",
                  [("files in one commit", "r"), ("commit (new repo)", "r"), ("per file", "r"),
                   ("same again on top (tree of 2N)", "r")], rows, summary, write=not opts.no_doc, note=", SQLite")


if __name__ == "__main__":
    main()
