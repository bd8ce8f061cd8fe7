#!/usr/bin/env python3
"""Client benchmark: `hubgate pull` against huggingface_hub's `snapshot_download`, same server, one run,
and the client's start-up (see docs/benchmarks.md, "Client pulls").

    python bench/pull.py              # from the project root; writes the Client part of docs/benchmarks.md

One hubgate server (1 worker, fresh data folder) hosts `bench/pull-set`: `--small` small regular files
(1–32 KB, random) and one `--large-mib` LFS file. `hubgate lock` pins it. Then, `--reps` times, in
alternating order, each tool downloads into a fresh cache, in a fresh process, timed from start to exit:
the whole set, only the small files, only the large file. `hubgate pull` runs with its defaults (8
parallel transfers, files of 32 MiB and more in 16 MiB ranges, every file's SHA-256 checked);
`snapshot_download(revision=<locked commit>)` with its defaults (8 workers, no hash check).

Start-up: `hubgate pull --help` and a no-op `hubgate pull` (everything present: a fleet's boot) run
`--startup-reps` times each; `python -c pass` is the floor. Medians throughout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"  # before huggingface_hub is imported: the upload takes plain LFS

from common import MB, MIB, Hubgate, log, machine, publish, require_clean_tree  # noqa: E402

SNAPSHOT = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], revision=sys.argv[2], endpoint=sys.argv[3], cache_dir=sys.argv[4],
                  allow_patterns=sys.argv[5:] or None, token=False)
"""
SCENARIOS = {"whole set": [], "small files": ["small/*"], "large file": ["large.safetensors"]}


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def fill(folder: Path, small: int, large_mib: int) -> int:
    (folder / "small").mkdir(parents=True)
    total = 0
    for i in range(small):
        data = os.urandom(1000 + (i * 7919) % 31_000)
        (folder / "small" / f"file{i:04d}.json").write_bytes(data)
        total += len(data)
    with (folder / "large.safetensors").open("wb") as out:
        for _ in range(large_mib):
            out.write(os.urandom(MIB))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=300, help="small files (default 300)")
    parser.add_argument("--large-mib", type=int, default=512, help="size of the large file (default 512)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool and scenario (default 3)")
    parser.add_argument("--startup-reps", type=int, default=15, help="start-up repetitions (default 15)")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()  # before a long run, not only when writing
    command = "python bench/pull.py" + "".join(f" {a}" for a in sys.argv[1:])
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-pull-bench-"))
    server = Hubgate.start(tmp / "data", workers=1)
    try:
        server.cli("user", "add", "bench")
        token = server.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
        small_bytes = fill(tmp / "set", opts.small, opts.large_mib)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=server.url, token=token)
        api.create_repo("bench/pull-set")
        commit = api.upload_folder(folder_path=tmp / "set", repo_id="bench/pull-set").oid
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", BENCH_TOKEN=token)
        hubgate = [sys.executable, "-m", "hubgate"]
        timed([*hubgate, "lock", f"bench/pull-set@{commit}", "--endpoint", f"{server.url}#BENCH_TOKEN"], env, tmp)
        for name, patterns in SCENARIOS.items():
            if patterns:
                args = [*hubgate, "lock", f"bench/pull-set@{commit}", "-o", f"{name}.lock", "--endpoint", server.url]
                timed([*args, *(a for p in patterns for a in ("--include", p))], env, tmp)
        times: dict[tuple[str, str], list[float]] = {}
        n = 0
        for rep in range(opts.reps):
            for name, patterns in SCENARIOS.items():
                lock = "hubgate.lock" if not patterns else f"{name}.lock"
                runs = {
                    "hubgate pull": [*hubgate, "pull", "--lock", lock, "-q", "--cache-dir"],
                    "snapshot_download": [sys.executable, "-c", SNAPSHOT, "bench/pull-set", commit, server.url],
                }
                order = list(runs) if rep % 2 == 0 else list(reversed(runs))
                for tool in order:
                    n += 1
                    cache = tmp / f"cache{n}"
                    args = runs[tool] + [str(cache)] + (patterns if tool == "snapshot_download" else [])
                    times.setdefault((tool, name), []).append(timed(args, env, tmp))
                    shutil.rmtree(cache)
                log(f"rep {rep + 1}: {name} done")
        warm = tmp / "warm"
        timed([*hubgate, "pull", "-q", "--cache-dir", str(warm)], env, tmp)
        startup = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "hubgate pull --help": [*hubgate, "pull", "--help"],
            "hubgate pull (no-op)": [*hubgate, "pull", "-q", "--cache-dir", str(warm)],
        }
        boot = {name: [timed(args, env, tmp) for _ in range(opts.startup_reps)] for name, args in startup.items()}
        imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import hubgate.client.commands"], env=env,
                                 capture_output=True, text=True, check=True).stderr.strip().splitlines()[-1]
        cumulative_us = int(imports.split("|")[1])
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    total = small_bytes + opts.large_mib * MIB
    sizes = {"whole set": total, "small files": small_bytes, "large file": opts.large_mib * MIB}
    info = machine()
    date = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Run on {date} with `{command}` (total {time.monotonic() - began:.0f} s).",
        "",
        "| | |",
        "| --- | --- |",
        f"| machine | {info['cores']} cores ({info['cpu']}), {info['memory']} RAM, Linux {info['kernel']} |",
        f"| hubgate | commit {info['commit']}; server: 1 worker, the repo hosted on it |",
        f"| repo | {opts.small} small regular files ({small_bytes / MB:.1f} MB) + one {opts.large_mib} MiB LFS file |",
        f"| repetitions | {opts.reps} per tool and scenario, fresh cache and process each, order alternating; medians |",
        "",
        ("| download | hubgate pull s (min–max) | snapshot_download s (min–max) | hubgate MB/s | snapshot_download MB/s "
         "| speed-up |"),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    row = []
    for name in SCENARIOS:
        ours, theirs = times[("hubgate pull", name)], times[("snapshot_download", name)]
        a, b = statistics.median(ours), statistics.median(theirs)
        lines.append(f"| {name} | {a:.2f} ({min(ours):.2f}–{max(ours):.2f}) | {b:.2f} ({min(theirs):.2f}–{max(theirs):.2f}) "
                     f"| {sizes[name] / MB / a:.0f} | {sizes[name] / MB / b:.0f} | **{b / a:.2f}×** |")
        row.append(f"{a:.2f} / {b:.2f}")
    lines += ["", f"Start-up, {opts.startup_reps} runs each (`import hubgate.client.commands`, what `hubgate pull` loads: "
              f"{cumulative_us / 1000:.0f} ms cumulative by `-X importtime`):", "", "| command | median ms (min–max) |",
              "| --- | ---: |"]
    for name, values in boot.items():
        lines.append(f"| `{name}` | {statistics.median(values) * 1000:.0f} ({min(values) * 1000:.0f}–{max(values) * 1000:.0f}) |")
    noop = statistics.median(boot["hubgate pull (no-op)"]) * 1000
    history = f"| {date} | {info['commit']} | {opts.small} + {opts.large_mib} MiB | {' | '.join(row)} | {noop:.0f} ms |"
    publish("\n".join(lines), history, "pull", write=not opts.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
