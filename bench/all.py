#!/usr/bin/env python3
"""Every benchmark, one after the other, each writing its section of docs/benchmarks.md.

    python bench/all.py [--only run,mirror,...] [--skip ...]

Run from a clean checkout (commit first: every script refuses to write docs/benchmarks.md from a
tree with uncommitted changes other than docs/benchmarks.md itself, so that each figure names the
commit it was measured on). Each script runs with its defaults; the figures the README quotes live
in docs/benchmarks.md. Afterwards commit docs/benchmarks.md. On the shared 2-core VM the whole run
takes about 20 minutes (bench/mirror.py alone ~6, with its Olah comparison).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import ROOT, log, require_clean_tree

SCRIPTS = {  # name: the script's arguments (its defaults are the documented run)
    "run": [],  # downloads: hubgate vs nginx
    "mirror": [],  # pull-through: cold, warm, 16 clients, vs the origin, nginx and Olah
    "memory": [],
    "slowclients": [],
    "pull": [],  # hubgate pull vs snapshot_download, start-up
    "commit_scale": [],
    "timing": [],
    "percall": [],  # warm small file, hosted vs mirrored, 10 vs 20,000 files, before vs after the fix
    "replicas": [],  # PostgreSQL + S3: 1 and 3 replicas vs nginx, uploads, cold single-flight
    "xet": [],  # 2 GiB through Xet vs LFS vs inline, an edited re-upload, downloads
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    parser.add_argument("--skip", default="", help="comma-separated scripts to leave out")
    opts = parser.parse_args()
    chosen = [name for name in (opts.only.split(",") if opts.only else SCRIPTS) if name]
    unknown = set(chosen) - set(SCRIPTS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    skipped = set(filter(None, opts.skip.split(",")))
    require_clean_tree()
    took: dict[str, float] = {}
    for name in chosen:
        if name in skipped:
            continue
        log(f"=== bench/{name}.py")
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *SCRIPTS[name]], cwd=ROOT, check=False)
        took[name] = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"bench/{name}.py failed ({done.returncode}) after {took[name]:.0f} s")
    log("done: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items())
        + f"; total {sum(took.values()):.0f} s. Commit docs/benchmarks.md.")


if __name__ == "__main__":
    main()
