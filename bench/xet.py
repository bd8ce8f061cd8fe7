#!/usr/bin/env python3
"""Xet benchmark: uploading a large file through Xet vs the LFS path vs inline, an edited re-upload, downloads.

    python bench/xet.py [--size-mib 2048] [--edit-percent 2] [--rounds 3] [--no-doc]

Starts a fresh `hubgate serve` (1 worker) on 127.0.0.1 with a temporary data folder and a random file
of `--size-mib` MiB, then, each client a fresh process of this interpreter's huggingface_hub with
hf_xet at its defaults and a fresh HF_HOME:
- uploads it (`upload_file`) to a new repo through Xet (defaults) and through the LFS batch path
  (`HF_HUB_DISABLE_XET=1`), `--rounds` times each with a new random file per round (alternating which
  path goes first; medians and their ratio), and once inline (the NDJSON commit with base64 content that hubgate answered
  Xet clients before it had Xet; posted by httpx, as huggingface_hub sends "regular" files);
- re-uploads a copy with `--edit-percent` % of its ~64 KiB chunks overwritten (16 random bytes each,
  spread evenly) through Xet with the first upload's HF_HOME (a publisher's machine), and through LFS;
- downloads the Xet-uploaded file with `hf_hub_download` through Xet and over plain HTTP
  (`HF_HUB_DISABLE_XET=1`), checking its sha256.
Bytes stored are the blob store's growth (xorbs and LFS objects alike); xorbs sent are the xorb
POSTs of the server's access log, their bytes the xorbs stored by the run (a client with a warm cache
sends only xorbs the server does not hold). Writes docs/benchmarks.md between the xet:* markers (only
from a clean tree; `--no-doc` only prints); stops the server and removes the folder.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from common import MIB, Hubgate, log, machine, make_file, publish, require_clean_tree

CHUNK = 64 * 1024  # Xet's target chunk size
UPLOAD = ("from huggingface_hub import HfApi; import sys; "
          "print(HfApi().upload_file(path_or_fileobj=sys.argv[1], path_in_repo=sys.argv[2], repo_id=sys.argv[3]).oid)")
DOWNLOAD = "from huggingface_hub import hf_hub_download; import sys; print(hf_hub_download(sys.argv[1], sys.argv[2]))"


class Bench:
    def __init__(self, hub: Hubgate, token: str, work: Path) -> None:
        self.hub, self.token, self.work = hub, token, work
        self.homes = 0

    def home(self) -> Path:
        self.homes += 1
        return self.work / f"hf-home-{self.homes}"

    def client(self, code: str, *args: str, home: Path, **env: str) -> float:
        """Run `code` in a fresh interpreter with HF_ENDPOINT/HF_TOKEN/HF_HOME set; its wall time."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        full.update(HF_ENDPOINT=self.hub.url, HF_TOKEN=self.token, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
                    HF_HUB_DISABLE_PROGRESS_BARS="1", **env)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, *args], env=full, capture_output=True, text=True, check=False)
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"client failed:\n{done.stdout}\n{done.stderr[-4000:]}")
        self.last_output = done.stdout.strip().splitlines()[-1]
        return took

    def repo(self, name: str) -> str:
        repo = f"bench/{name}"
        httpx.post(f"{self.hub.url}/api/repos/create", json={"name": repo}, timeout=60,
                   headers={"Authorization": f"Bearer {self.token}"}).raise_for_status()
        return repo

    def stored(self) -> int:
        """Bytes in the blob store."""
        return sum(p.stat().st_size for p in (self.hub.data / "blobs").rglob("*") if p.is_file())

    def server_cpu(self) -> float:
        """CPU seconds (user + system) the server process and its live descendants have used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        parents: dict[int, int] = {}
        times: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            pid = int(stat.parent.name)
            parents[pid], times[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
        ours = {self.hub.process.pid}
        while grown := {pid for pid, parent in parents.items() if parent in ours} - ours:
            ours |= grown
        return sum(times.get(pid, 0.0) for pid in ours)

    def xorb_posts(self, since: int) -> int:
        return sum(1 for line in self.hub.log[since:] if '"POST /xet-cas/v1/xorbs/' in line)

    def inline(self, path: Path, repo: str) -> float:
        """The NDJSON commit of the whole file as base64, streamed."""

        def body() -> Iterator[bytes]:
            yield json.dumps({"key": "header", "value": {"summary": "inline"}}).encode() + b"\n"
            yield b'{"key": "file", "value": {"path": "big.bin", "encoding": "base64", "content": "'
            with path.open("rb") as handle:
                while piece := handle.read(3 * MIB):
                    yield base64.b64encode(piece)
            yield b'"}}\n'

        started = time.perf_counter()
        httpx.post(f"{self.hub.url}/api/models/{repo}/commit/main", content=body(), timeout=7200,
                   headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"}
                   ).raise_for_status()
        return time.perf_counter() - started


def edit(source: Path, target: Path, percent: float, seed: int = 7) -> int:
    """Copy `source` with `percent` % of its ~64 KiB chunks overwritten by 16 random bytes; the edits made."""
    shutil.copyfile(source, target)
    size = source.stat().st_size
    edits = max(1, round(size / CHUNK * percent / 100))
    rng = random.Random(seed)
    with target.open("r+b") as handle:
        for i in range(edits):
            handle.seek(min(int((i + rng.random()) * size / edits), size - 16))
            handle.write(rng.randbytes(16))
    return edits


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(16 * MIB):
            digest.update(piece)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=2048, help="size of the file, MiB")
    parser.add_argument("--edit-percent", type=float, default=2.0, help="share of the chunks the re-upload changes")
    parser.add_argument("--rounds", type=int, default=3, help="uploads of a new file through Xet and through LFS")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()
    info = machine()
    size = opts.size_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-bench-xet-"))
    hub = None
    try:
        hub = Hubgate.start(tmp / "data", 1, env={"HUBGATE_MAX_COMMIT_BYTES": str(2 * size + 64 * MIB)})
        hub.cli("user", "add", "bench")
        token = hub.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
        bench = Bench(hub, token, tmp)
        original, edited, other = tmp / "original.bin", tmp / "edited.bin", tmp / "other.bin"
        make_file(original, size)
        make_file(other, size)  # for the inline path: the blob store holds the LFS upload's bytes already
        edits = edit(original, edited, opts.edit_percent)
        rows: list[str] = []
        cpus: list[str] = []  # the server's CPU time for each row's step

        def cpu(since: float) -> str:
            used = bench.server_cpu() - since
            return f"{used:.1f} s ({used / (size / 1024 / MIB):.1f} s/GiB)"

        def upload(label: str, path: Path, repo: str, home: Path, **env: str) -> tuple[float, int, int]:
            before, since, cpu_before = bench.stored(), len(hub.log), bench.server_cpu()
            took = bench.client(UPLOAD, str(path), "big.bin", repo, home=home, **env)
            grown, posts = bench.stored() - before, bench.xorb_posts(since)
            cpus.append(cpu(cpu_before))
            log(f"{label}: {took:.1f} s, stored +{grown / MIB:.1f} MiB, {posts} xorb POSTs, server CPU {cpus[-1]}")
            return took, grown, posts

        # The two upload paths, `--rounds` times each, alternating which goes first, each round with a new random
        # file (a Xet upload of bytes the server holds already would store nothing): medians and their ratio.
        runs: dict[str, list[tuple[float, int, int, float]]] = {"xet": [], "lfs": []}
        xet_repo, xet_home, lfs_repo = "", tmp, ""
        for round_ in range(opts.rounds):
            path = original if round_ == 0 else tmp / f"round-{round_}.bin"
            if round_:
                make_file(path, size)
            for kind in ("xet", "lfs") if round_ % 2 == 0 else ("lfs", "xet"):
                repo, home = bench.repo(f"{kind}-{round_}"), bench.home()
                env = {"HF_HUB_DISABLE_XET": "1"} if kind == "lfs" else {}
                cpu_before = bench.server_cpu()
                took, grown, posts = upload(f"{kind} upload (round {round_ + 1})", path, repo, home, **env)
                runs[kind].append((took, grown, posts, bench.server_cpu() - cpu_before))
                if round_ == 0:
                    if kind == "xet":
                        xet_repo, xet_home = repo, home
                    else:
                        lfs_repo = repo
            if round_:
                path.unlink()
        del cpus[:]  # one figure per row below: the medians'

        def median_run(kind: str) -> tuple[float, int, int, float, str]:
            ordered = sorted(runs[kind])
            took, grown, posts, used = ordered[len(ordered) // 2]
            cpus.append(f"{used:.1f} s ({used / (size / 1024 / MIB):.1f} s/GiB)")
            return took, grown, posts, used, ", ".join(f"{r[0]:.1f}" for r in runs[kind])

        took, grown, posts, _, all_runs = median_run("xet")
        xet_median = took
        rows.append(f"| upload, Xet (default settings), median of {opts.rounds} ({all_runs} s) | {took:.1f} s | "
                    f"{size / MIB / took:.0f} MiB/s | {posts} xorbs, {grown / MIB:.0f} MiB | {grown / MIB:.0f} MiB |")
        took, grown, _, _, all_runs = median_run("lfs")
        ratio = xet_median / took
        rows.append(f"| upload, LFS batch (`HF_HUB_DISABLE_XET=1`), median of {opts.rounds} ({all_runs} s) | {took:.1f} s | "
                    f"{size / MIB / took:.0f} MiB/s | {size / MIB:.0f} MiB | {grown / MIB:.0f} MiB |")
        log(f"Xet/LFS upload time, medians: {ratio:.2f}")
        before, cpu_before = bench.stored(), bench.server_cpu()
        took = bench.inline(other, bench.repo("inline"))
        grown = bench.stored() - before
        cpus.append(cpu(cpu_before))
        log(f"inline upload: {took:.1f} s, stored +{grown / MIB:.1f} MiB")
        rows.append(f"| upload, inline (base64 NDJSON commit) | {took:.1f} s | {size / MIB / took:.0f} MiB/s | "
                    f"{size * 4 / 3 / MIB:.0f} MiB | {grown / MIB:.0f} MiB |")
        took, grown, posts = upload("xet edited re-upload", edited, xet_repo, xet_home)
        rows.append(f"| re-upload with {opts.edit_percent:g} % of the chunks changed ({edits} edits), Xet | "
                    f"{took:.1f} s | — | {posts} xorbs, {grown / MIB:.1f} MiB ({grown / size * 100:.1f} %) | "
                    f"{grown / MIB:.1f} MiB ({grown / size * 100:.1f} %) |")
        took, grown, _ = upload("lfs edited re-upload", edited, lfs_repo, bench.home(), HF_HUB_DISABLE_XET="1")
        rows.append(f"| re-upload with {opts.edit_percent:g} % of the chunks changed, LFS | {took:.1f} s | — | "
                    f"{size / MIB:.0f} MiB | {grown / MIB:.0f} MiB |")
        expected = sha256_of(edited)  # what the Xet repo's main holds now
        for label, env in (("Xet", {}), ("plain HTTP (`HF_HUB_DISABLE_XET=1`)", {"HF_HUB_DISABLE_XET": "1"})):
            cpu_before = bench.server_cpu()
            took = bench.client(DOWNLOAD, xet_repo, "big.bin", home=bench.home(), **env)
            cpus.append(cpu(cpu_before))
            if sha256_of(Path(bench.last_output)) != expected:
                raise RuntimeError(f"download via {label} returned other bytes")
            log(f"download {label}: {took:.1f} s")
            rows.append(f"| download of the Xet-uploaded (edited) file, {label} | {took:.1f} s | "
                        f"{size / MIB / took:.0f} MiB/s | — | — |")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        section = "\n".join([
            f"Run {now} with `python bench/xet.py --size-mib {opts.size_mib} --edit-percent {opts.edit_percent:g}` on "
            f"{info['cpu']} ({info['cores']} shared cores), hubgate {info['commit']}, SQLite, local blob store, "
            "huggingface_hub 2.4.0 with hf_xet 1.8.0, a fresh process and HF_HOME per client (the Xet re-upload "
            f"reuses the first Xet upload's). Xet/LFS upload time (medians): {ratio:.2f}.",
            "",
            "| step | wall time (client) | rate | sent | stored (blob store growth) | server CPU |",
            "|---|---:|---:|---:|---:|---:|",
            *(f"{row} {used} |" for row, used in zip(rows, cpus, strict=True)),
        ])
        summary = "; ".join(r.split("|")[1].strip().split(",")[0] + " " + r.split("|")[2].strip() for r in rows)
        publish(section, f"| {now} | {info['commit']} | {opts.size_mib} MiB | {summary} |", "xet", write=not opts.no_doc)
    finally:
        if hub is not None:
            hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped hubgate, removed the temporary folder")


if __name__ == "__main__":
    main()
