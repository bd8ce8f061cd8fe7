#!/usr/bin/env python3
"""Timing oracle benchmark: does an existing private repo answer slower than a missing one?
(issue 6, item 3)

    python bench/timing.py [--pairs 600] [--repos 200] [--no-doc]

Starts a fresh `hubgate serve` (1 worker) on 127.0.0.1 with a temporary data folder, creates
`--repos` repos (one of them the private `owner/private-model`), then sends `--pairs` interleaved
pairs of `GET /api/models/owner/private-model` and `GET /api/models/owner/missing-model` (same
length), the order within each pair alternating, over one keep-alive connection, first
anonymously, then as an authenticated outsider. Both answer 401/404 `RepoNotFound`. Prints, per
caller, the median and mean of (private - missing) in µs and the share of pairs in which the
private repo was slower (50 % is no signal), and writes them to docs/benchmarks.md (between the
timing:* markers; only from a clean tree; `--no-doc` only prints). Stops the server and removes
the folder.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from common import publish_table, require_clean_tree, scratch_hubgate


def pairs(client: httpx.Client, url: str, count: int) -> list[float]:
    private, missing = f"{url}/api/models/owner/private-model", f"{url}/api/models/owner/missing-model"
    differences = []
    for i in range(count):
        timings = {}
        for target in ((private, missing) if i % 2 else (missing, private)):
            start = time.perf_counter()
            response = client.get(target)
            timings[target] = time.perf_counter() - start
            assert response.status_code in (401, 404) and response.headers.get("x-error-code") == "RepoNotFound"
        differences.append((timings[private] - timings[missing]) * 1e6)
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()
    with scratch_hubgate("timing") as hub:
        for user in ("owner", "outsider"):
            hub.cli("user", "add", user)
        owner = hub.cli("token", "create", "owner", "--role", "write").strip().splitlines()[-1]
        outsider = hub.cli("token", "create", "outsider", "--role", "read").strip().splitlines()[-1]
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {owner}"}) as client:
            client.post(f"{hub.url}/api/repos/create", json={"name": "private-model", "private": True}).raise_for_status()
            for i in range(opts.repos - 1):
                client.post(f"{hub.url}/api/repos/create", json={"name": f"filler-{i}"}).raise_for_status()
        rows, summary = [], []
        for caller, headers in (("anonymous", {}), ("outsider", {"Authorization": f"Bearer {outsider}"})):
            with httpx.Client(timeout=60, headers=headers) as client:
                pairs(client, hub.url, 50)  # warm-up
                diffs = pairs(client, hub.url, opts.pairs)
            slower = sum(d > 0 for d in diffs) / len(diffs)
            rows.append((caller, len(diffs), f"{statistics.median(diffs):+.0f} µs", f"{statistics.mean(diffs):+.0f} µs",
                         f"{slower:.0%}"))
            summary.append(f"{caller} {statistics.median(diffs):+.0f} µs, {slower:.0%}")
    publish_table("timing", f"python bench/timing.py --pairs {opts.pairs} --repos {opts.repos}",
                  [("caller", "l"), ("pairs", "r"), ("median private − missing", "r"), ("mean", "r"),
                   ("private slower in", "r")], rows, summary, write=not opts.no_doc)


if __name__ == "__main__":
    main()
