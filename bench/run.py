#!/usr/bin/env python3
"""Download benchmark: hubgate's `resolve` of a 1 GiB LFS file against nginx (sendfile) serving the same file.

One command does everything, on this machine, in one run (see docs/benchmarks.md):

    python bench/run.py            # from the project root; writes docs/benchmarks.md

It installs nginx and curl from Debian if they are missing, starts a fresh `hubgate serve` on 127.0.0.1
with a temporary data folder, creates a user, a write token and a private model repo, uploads a random
file as LFS with huggingface_hub, starts nginx on a free 127.0.0.1 port serving the very blob file
hubgate stored, then downloads the file from both with 1 and with 8 concurrent clients, several
repetitions each (interleaved, so both see the same machine noise), and reports median throughput,
the hubgate/nginx ratio and hubgate's peak RSS (summed over its process tree). Everything it started
is stopped and its temporary folder removed at the end, also on Ctrl-C.

The load client is bench/client.py, one process per client, which lets the kernel drop the body
(MSG_TRUNC) and so costs almost no CPU; curl, on this 2-core VM, burns a core at ~1 GB/s and would be
the bottleneck (`--client curl` shows it). The report gives the clients' CPU use to make that visible.
MB means 10**6 bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before huggingface_hub is imported: take the LFS batch path, not Xet.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_ENDPOINT", None)

from common import (
    require_clean_tree,
    publish,  # bench/common.py: the pieces bench/mirror.py shares too
    MB,
    MIB,
    Batch,
    Hubgate,
    Nginx,
    RssSampler,
    download_batch,
    ensure_tools,
    hwm_bytes,
    log,
    machine,
    make_file,
    rss_bytes,
    tree,
    verify_download,
)

REPO_ID = "bench/blob"
FILE_NAME = "weights.bin"
CLIENT = "python"


def hubgate_variant(opts: argparse.Namespace) -> str:
    """How hubgate ran: uvicorn's HTTP implementation and loop, and the file-body path."""
    import importlib.util

    http = opts.uvicorn_http if opts.uvicorn_http != "auto" else (
        "httptools" if importlib.util.find_spec("httptools") else "h11")
    loop = opts.uvicorn_loop if opts.uvicorn_loop != "auto" else (
        "uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    forced = opts.uvicorn_http != "auto" or opts.uvicorn_loop != "auto"
    body = "chunks copied through Python (--chunked)" if opts.chunked else "sendfile()"
    return f"workers {opts.workers}, {http} + {loop}{' (forced)' if forced else ''}, {body}"


def summarise(batches: list[Batch], clients: int, target: str) -> dict[str, float]:
    mine = [b for b in batches if b.clients == clients and b.target == target]
    gib = sum(b.total_bytes for b in mine) / 1024**3
    return {
        "median": statistics.median(b.mbs for b in mine),
        "min": min(b.mbs for b in mine),
        "max": max(b.mbs for b in mine),
        "client_cpu_pct": 100 * sum(b.client_cpu for b in mine) / sum(b.wall for b in mine),
        "server_cpu_pct": 100 * sum(b.server_cpu for b in mine) / sum(b.wall for b in mine),
        "server_cpu_per_gib": sum(b.server_cpu for b in mine) / gib,
        "client_cpu_per_gib": sum(b.client_cpu for b in mine) / gib,
    }


def render(results: dict, info: dict[str, str], command: str) -> tuple[str, str]:
    """The 'latest run' section and one history row."""
    size_mib = results["size"] // MIB
    lines = [
        f"Run on {results['date']} with `{command}` (total {results['elapsed']:.0f} s).",
        "",
        "| | |",
        "| --- | --- |",
        f"| date | {results['date']} |",
        f"| machine | {info['cores']} cores ({info['cpu']}), {info['memory']} RAM, Linux {info['kernel']} |",
        f"| software | Python {info['python']}, uvicorn {info['uvicorn']}; nginx {info['nginx']}; curl {info['curl']} |",
        f"| hubgate | commit {info['commit']}; {results['variant']} |",
        f"| file | {size_mib} MiB random bytes, uploaded as LFS ({results['upload_mbs']:.0f} MB/s upload incl. hashing) |",
        f"| repetitions | {results['reps']} per (server, clients), interleaved |",
        (
            f"| hubgate peak RSS | **{results['peak_rss'] / MIB:.0f} MiB** sampled sum over its process tree "
            f"({results['samples']} samples; idle {results['idle_rss'] / MIB:.0f} MiB; "
            f"sum of per-process VmHWM {results['hwm'] / MIB:.0f} MiB) |"
        ),
        f"| nginx peak RSS | {results['nginx_peak_rss'] / MIB:.0f} MiB (master + workers) |",
        "",
        (
            "| clients | hubgate median MB/s (min–max) | nginx median MB/s (min–max) | hubgate / nginx | "
            "server CPU s/GiB hubgate / nginx | client CPU % of a core, hubgate / nginx runs |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    history = [results["date"], info["commit"], f"{size_mib} MiB", results["variant"]]
    for clients in results["clients"]:
        h, n = results["summary"][(clients, "hubgate")], results["summary"][(clients, "nginx")]
        ratio = h["median"] / n["median"]
        lines.append(
            f"| {clients} | {h['median']:.0f} ({h['min']:.0f}–{h['max']:.0f}) | {n['median']:.0f} "
            f"({n['min']:.0f}–{n['max']:.0f}) | **{ratio:.2f}** | {h['server_cpu_per_gib']:.2f} / "
            f"{n['server_cpu_per_gib']:.2f} | {h['client_cpu_pct']:.0f} / {n['client_cpu_pct']:.0f} |"
        )
        history.append(f"{h['median']:.0f} / {n['median']:.0f} = **{ratio:.2f}**")
    history.append(f"{results['peak_rss'] / MIB:.0f} MiB")
    verdicts = []
    for clients in results["clients"]:
        h, n = results["summary"][(clients, "hubgate")], results["summary"][(clients, "nginx")]
        ok = h["median"] / n["median"] >= 0.8
        verdicts.append(f"{clients} client{'s' if clients > 1 else ''}: {'met' if ok else 'NOT met'}")
    lines += [
        "",
        (
            f"Targets: throughput ≥ 0.8 × nginx — {'; '.join(verdicts)}. "
            f"RSS < 300 MB — {'met' if results['peak_rss'] < 300 * MB else 'NOT met'} "
            f"({results['peak_rss'] / MB:.0f} MB)."
        ),
    ]
    return "\n".join(lines), "| " + " | ".join(history) + " |"


# --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file (default 1024)")
    parser.add_argument("--reps", type=int, default=9, help="repetitions per server and client count (default 9)")
    parser.add_argument("--clients", default="1,8", help="comma-separated concurrent client counts (default 1,8)")
    parser.add_argument("--workers", type=int, default=1, help="hubgate worker processes (default 1, its default)")
    parser.add_argument("--client", choices=("python", "python-copy", "curl"), default="python",
                        help="load client: bench/client.py dropping bodies in the kernel (default), "
                             "bench/client.py --copy, or curl; to check the client is not the bottleneck")
    parser.add_argument("--uvicorn-http", choices=("auto", "h11", "httptools"), default="auto",
                        help="diagnostics: force uvicorn's HTTP implementation (default: uvicorn's own choice)")
    parser.add_argument("--uvicorn-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="diagnostics: force uvicorn's event loop (default: uvicorn's own choice)")
    parser.add_argument("--chunked", action="store_true",
                        help="diagnostics: hubgate copies file bodies through Python instead of sendfile() "
                             "(the path other ASGI servers get)")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()  # before a long run, not only when writing
    global CLIENT
    CLIENT = opts.client
    if opts.chunked and opts.workers > 1:
        parser.error("--chunked works with --workers 1 only")
    clients_list = [int(c) for c in opts.clients.split(",")]
    size = opts.size_mib * MIB
    command = "python bench/run.py" + "".join(f" {a}" for a in sys.argv[1:])

    began = time.monotonic()
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-bench-"))
    hub: Hubgate | None = None
    nginx: Nginx | None = None
    sampler: RssSampler | None = None
    nginx_sampler: RssSampler | None = None

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log(f"starting hubgate (workers={opts.workers}) in {tmp}")
        hub = Hubgate.start(tmp / "data", opts.workers, opts.uvicorn_http, opts.uvicorn_loop, opts.chunked)
        hub.cli("user", "add", "bench")
        token = hub.cli("token", "create", "bench", "--role", "write", "--name", "bench").strip().splitlines()[-1]

        log(f"writing {opts.size_mib} MiB of random bytes")
        source = tmp / FILE_NAME
        sha256 = make_file(source, size)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hub.url, token=token)
        api.create_repo(REPO_ID, private=True)
        log("uploading it as LFS with huggingface_hub")
        t0 = time.perf_counter()
        api.upload_file(path_or_fileobj=str(source), path_in_repo=FILE_NAME, repo_id=REPO_ID)
        upload_mbs = size / (time.perf_counter() - t0) / MB
        source.unlink()
        blob = tmp / "data" / "blobs" / sha256[:2] / sha256[2:4] / sha256
        if not blob.is_file() or blob.stat().st_size != size:
            raise RuntimeError(f"the upload did not land as the LFS blob {blob}")

        nginx = Nginx.start(tmp / "nginx", tmp / "data" / "blobs")
        targets = {
            "hubgate": (f"{hub.url}/{REPO_ID}/resolve/main/{FILE_NAME}", token, hub.process.pid),
            "nginx": (f"{nginx.url}/{sha256[:2]}/{sha256[2:4]}/{sha256}", None, nginx.process.pid),
        }
        log(f"hubgate {targets['hubgate'][0]}  nginx {targets['nginx'][0]}")
        for name, (url, tok, _) in targets.items():  # also warms the page cache and both servers
            verify_download(url, tok, sha256)
        log("both serve the same bytes (sha256 checked)")

        idle_rss = sum(rss_bytes(p) for p in tree(hub.process.pid))
        sampler = RssSampler(hub.process.pid)
        nginx_sampler = RssSampler(nginx.process.pid, interval=0.2)
        sampler.start()
        nginx_sampler.start()
        batches: list[Batch] = []
        for clients in clients_list:
            for rep in range(opts.reps):
                order = ["hubgate", "nginx"] if rep % 2 == 0 else ["nginx", "hubgate"]
                for name in order:
                    url, tok, pid = targets[name]
                    batch = download_batch(name, url, tok, clients, size, pid, CLIENT)
                    batches.append(batch)
                    log(f"{name:7s} clients={clients} rep={rep + 1}: {batch.mbs:7.0f} MB/s "
                        f"(wall {batch.wall:.2f}s, client CPU {batch.client_cpu:.1f}s, server CPU {batch.server_cpu:.1f}s)")
        sampler.stop()
        nginx_sampler.stop()
        hwm = sum(hwm_bytes(p) for p in tree(hub.process.pid))

        results = {
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "size": size,
            "reps": opts.reps,
            "workers": opts.workers,
            "variant": hubgate_variant(opts),
            "clients": clients_list,
            "upload_mbs": upload_mbs,
            "peak_rss": sampler.peak,
            "samples": sampler.samples,
            "idle_rss": idle_rss,
            "hwm": hwm,
            "nginx_peak_rss": nginx_sampler.peak,
            "summary": {(c, t): summarise(batches, c, t) for c in clients_list for t in ("hubgate", "nginx")},
            "elapsed": time.monotonic() - began,
        }
        section, history_row = render(results, machine(), command)
        publish(section, history_row, "bench", write=not opts.no_doc)
        return 0
    finally:
        for running in (sampler, nginx_sampler):
            if running is not None and running.is_alive():
                running.stop()
        for server in (nginx, hub):
            if server is not None:
                server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped hubgate and nginx, removed the temporary folder")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:
        log(f"interrupted ({stop or 'Ctrl-C'}); everything it started was stopped")
        sys.exit(130)
