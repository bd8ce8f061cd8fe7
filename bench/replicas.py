#!/usr/bin/env python3
"""Scale-out benchmark: hubgate on PostgreSQL + S3 (SeaweedFS), 1 and 3 replicas behind nginx, against
nginx serving the same bytes and a hubgate on local disk, in one run (issue 10, "Speed").

    python bench/replicas.py [--size-mib 64] [--reps 3] [--clients 4] [--cold-clients 16] [--no-doc]

Uses the test harness (tests/replicas.py: N `hubgate serve` on one fresh PostgreSQL database of the
server on 127.0.0.1:5432 and one SeaweedFS `weed mini` bucket, behind a round-robin nginx), started
twice: 3 replicas with `serve = "proxy"` and 3 with `serve = "redirect"`. Beside them: one hubgate on
local disk and SQLite (1 worker), and nginx serving the file from a folder (bench/common.py's setup).

1. Upload: `--reps` rounds, each uploading a `--size-mib` MiB random file (its first bytes changed every
   time, so nothing deduplicates) with huggingface_hub's `upload_file` (LFS) to the local-disk hubgate
   and straight to replica 0 of each cluster (no nginx in between); MB/s = size / wall time of the
   call, hashing included.
2. Warm download of the file last uploaded, 1 client and `--clients` at once (bench/client.py, body
   dropped in the kernel; `--follow` for redirects, which then fetch from SeaweedFS): nginx (the file
   on disk), the local-disk hubgate, replica 0 of each cluster alone ("1 replica") and each cluster
   through its nginx ("3 replicas"), `--reps` rounds, order rotated; MB/s = all bytes / (first connect
   to last byte), medians.
3. Cold single-flight: 3 replicas mirroring the local-disk hubgate (the mirror on S3), `--cold-clients`
   clients spread by nginx over the replicas ask for the uncached file at once; upstream bytes (the
   mirror's shared `upstreamBytes` counter) / file size. Reported as not measured when this checkout
   cannot run a mirror on S3.

Writes docs/benchmarks.md between the replicas:* markers (only from a clean tree; `--no-doc` only
prints). Everything started is stopped, the databases dropped, the folders removed. MB = 10**6 bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from common import (
    MB,
    MIB,
    ROOT,
    Hubgate,
    Nginx,
    download_batch,
    ensure_tools,
    log,
    machine,
    make_file,
    publish,
    require_clean_tree,
    verify_download,
)

sys.path.insert(0, str(ROOT / "tests"))
import seaweed  # noqa: E402 - the test harness, from tests/
from databases import DATABASES  # noqa: E402
from replicas import Cluster, start_replicas  # noqa: E402

REPO = "bench/replicas"
FILE_NAME = "weights.bin"
SRC_ENV = {"PYTHONPATH": str(ROOT / "src")}  # the replicas run this checkout, wherever hubgate is installed


def stamp(path: Path, label: str) -> str:
    """Make the file's first bytes unique to `label` (no upload deduplicates); its SHA-256."""
    with open(path, "r+b") as f:
        f.write(hashlib.sha256(label.encode()).digest())
        f.seek(0)
        return hashlib.file_digest(f, "sha256").hexdigest()


def upload(url: str, token: str, source: Path) -> float:
    """Seconds `upload_file` takes to put `source` into REPO on the server at `url`."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=token)
    api.create_repo(REPO, exist_ok=True)
    start = time.perf_counter()
    api.upload_file(path_or_fileobj=str(source), path_in_repo=FILE_NAME, repo_id=REPO)
    return time.perf_counter() - start


def file_url(base: str) -> str:
    return f"{base}/{REPO}/resolve/main/{FILE_NAME}"


def cold_single_flight(stack: ExitStack, tmp: Path, origin: Hubgate, size: int, clients: int) -> dict[str, object]:
    """The file fetched cold by `clients` at once through 3 replicas mirroring `origin`."""
    try:
        cluster = stack.enter_context(start_replicas(tmp / "mirror", 3, serve="proxy", upstreams=[origin.url],
                                                     env=SRC_ENV))
    except BaseException as exc:  # noqa: BLE001 - pytest's skip too: said in the report, the run goes on
        lines = str(exc).splitlines() or [type(exc).__name__]
        reason = next((line for line in lines if "rror" in line), lines[0])
        log(f"cold single-flight not measured: {reason}")
        return {"error": reason[:300]}
    batch = download_batch("cold", file_url(cluster.url), None, clients, size, cluster.servers[0].process.pid)
    status = httpx.get(f"{cluster.urls[0]}/api/mirror/status", headers=cluster.servers[0].admin_headers(),
                       timeout=60).json()
    return {"mbs": batch.mbs, "upstream": status["cache"]["upstreamBytes"] / size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cold-clients", type=int, default=16)
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()
    ensure_tools()
    started = time.monotonic()
    size = opts.size_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-bench-replicas-"))
    uploads: dict[str, list[float]] = {}
    downloads: dict[tuple[str, int], list[float]] = {}
    try:
        with ExitStack() as stack:
            stack.callback(seaweed.SHARED.stop)
            stack.callback(DATABASES.drop_all)
            source = tmp / "www" / FILE_NAME
            source.parent.mkdir()
            make_file(source, size)
            (tmp / "local").mkdir()
            local = Hubgate.start(tmp / "local" / "data", 1, env=SRC_ENV)
            stack.callback(local.stop)
            local.cli("user", "add", "bench")
            local_token = local.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
            web = Nginx.start(tmp / "nginx", source.parent)
            stack.callback(web.stop)
            log("starting 3 replicas with serve = proxy and 3 with serve = redirect (PostgreSQL, SeaweedFS, nginx)")
            clusters: dict[str, Cluster] = {
                serve: stack.enter_context(start_replicas(tmp / serve, 3, serve=serve, env=SRC_ENV))
                for serve in ("proxy", "redirect")
            }
            hosts = {"local disk": (local.url, local_token)}
            hosts |= {f"S3, serve = {serve}": (c.urls[0], c.token("bench")) for serve, c in clusters.items()}
            sha: dict[str, str] = {}
            for rep in range(opts.reps):
                order = list(hosts)[rep % len(hosts):] + list(hosts)[:rep % len(hosts)]
                for name in order:
                    sha[name] = stamp(source, f"{rep} {name}")
                    try:
                        seconds = upload(*hosts[name], source)
                    except Exception:
                        for server in [s for c in clusters.values() for s in c.servers]:
                            log(f"log of {server.url}:\n" + "".join(server.log[-40:]))
                        raise
                    uploads.setdefault(name, []).append(size / seconds / MB)
                    log(f"upload to {name}: {size / seconds / MB:.0f} MB/s")
            targets = {"nginx (the file on disk)": (f"{web.url}/{FILE_NAME}", web.process.pid, None),
                       "hubgate, local disk": (file_url(local.url), local.process.pid, sha["local disk"])}
            for serve, cluster in clusters.items():
                pid, digest = cluster.servers[0].process.pid, sha[f"S3, serve = {serve}"]
                targets[f"S3 {serve}, 1 replica"] = (file_url(cluster.urls[0]), pid, digest)
                targets[f"S3 {serve}, 3 replicas behind nginx"] = (file_url(cluster.url), pid, digest)
            for name, (url, _, digest) in targets.items():
                if digest is not None and "redirect" not in name:  # (curl here follows no redirect)
                    verify_download(url, None, digest)
            for rep in range(opts.reps):
                names = list(targets)[rep % len(targets):] + list(targets)[:rep % len(targets)]
                for name in names:
                    url, pid, _ = targets[name]
                    extra = ["--follow"] if "redirect" in name else []
                    for clients in (1, opts.clients):
                        batch = download_batch(name, url, None, clients, size, pid, extra=extra)
                        downloads.setdefault((name, clients), []).append(batch.mbs)
                log(f"download round {rep + 1}: " + ", ".join(
                    f"{name} {downloads[name, 1][-1]:.0f}" for name in targets))
            cold = cold_single_flight(stack, tmp, local, size, opts.cold_clients)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped every server, dropped the databases, removed the temporary folders")
    command = (f"python bench/replicas.py --size-mib {opts.size_mib} --reps {opts.reps} --clients {opts.clients} "
               f"--cold-clients {opts.cold_clients}")
    section, row = render(opts, uploads, downloads, cold, time.monotonic() - started, command)
    publish(section, row, "replicas", write=not opts.no_doc)


def median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def render(opts: argparse.Namespace, uploads: dict[str, list[float]], downloads: dict[tuple[str, int], list[float]],
           cold: dict[str, object], elapsed: float, command: str) -> tuple[str, str]:
    info = machine()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    n = opts.clients
    base = {c: statistics.median(downloads["nginx (the file on disk)", c]) for c in (1, n)}
    local_up = statistics.median(uploads["local disk"])
    lines = [
        f"Run {now} with `{command}` (total {elapsed:.0f} s) on {info['cpu']} ({info['cores']} shared cores; every "
        f"server, SeaweedFS, PostgreSQL and the clients share them: compare within this run), hubgate {info['commit']}, "
        f"{opts.size_mib} MiB LFS file, {opts.reps} rounds, medians (min–max):",
        "",
        f"| download (warm) | 1 client MB/s | / nginx | {n} clients, aggregate MB/s | / nginx |",
        "|---|---:|---:|---:|---:|",
    ]
    for (name, clients), values in downloads.items():
        if clients != 1:
            continue
        many = downloads[name, n]
        lines.append(f"| {name} | {median_spread(values)} | {statistics.median(values) / base[1]:.2f} | "
                     f"{median_spread(many)} | {statistics.median(many) / base[n]:.2f} |")
    lines += ["", "| upload (`upload_file`, LFS, hashing included) | MB/s | / local disk |", "|---|---:|---:|"]
    for name, values in uploads.items():
        lines.append(f"| {name} | {median_spread(values)} | {statistics.median(values) / local_up:.2f} |")
    lines.append("")
    if "error" in cold:
        lines.append(f"Cold single-flight across 3 replicas: **not measured** — this checkout cannot run the mirror "
                     f"on S3 (`{cold['error']}`).")
    else:
        lines.append(f"Cold single-flight: {opts.cold_clients} clients spread by nginx over 3 replicas mirroring the "
                     f"local-disk hubgate: upstream sent **{cold['upstream']:.2f}× the file size**, clients got "
                     f"{cold['mbs']:.0f} MB/s together.")
    proxy3 = statistics.median(downloads["S3 proxy, 3 replicas behind nginx", n]) / base[n]
    redirect3 = statistics.median(downloads["S3 redirect, 3 replicas behind nginx", n]) / base[n]
    s3_up = statistics.median(uploads["S3, serve = proxy"]) / local_up
    cold_text = "not measured" if "error" in cold else f"{cold['upstream']:.2f}× size"
    row = (f"| {now} | {info['commit']} | {opts.size_mib} MiB | proxy ×3 {proxy3:.2f}, redirect ×3 {redirect3:.2f} of "
           f"nginx ({n} clients) | S3 upload {s3_up:.2f} of local | cold ×3: {cold_text} |")
    return "\n".join(lines), row


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ["HF_HUB_DISABLE_XET"] = "1"  # plain LFS uploads: the blob store's own write path, not Xet
    main()
