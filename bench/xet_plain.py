#!/usr/bin/env python3
"""Plain-HTTP downloads of a file uploaded through Xet vs the same-size LFS file (issue 11, point 3).

    python bench/xet_plain.py [--size-mib 512] [--rounds 2]

Starts a fresh `hubgate serve` (1 worker, default settings: plain copies on) on a temporary data
folder, uploads a random file through Xet (huggingface_hub with hf_xet, defaults) and another through
LFS (`HF_HUB_DISABLE_XET=1`), then times plain GETs (curl, body dropped) of:
the LFS file; the Xet file by a Range of all but its first byte (rebuilt from xorbs, no copy kept);
the Xet file whole the first time (rebuilt, plain copy written on the way) and the next times (from
the copy); and, for comparison, the rebuild in this process (XetStore.read, no HTTP). Prints the
figures; stops the server and removes the folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import MIB, Hubgate, log, machine
from sqlalchemy import text
from xet import sha256_of

from hubgate.config import Settings
from hubgate.hub import Hub


def upload(hub: Hubgate, token: str, repo: str, path: Path, name: str, **env: str) -> None:
    code = ("import sys\nfrom huggingface_hub import HfApi\n"
            "HfApi(endpoint=sys.argv[1], token=sys.argv[2]).upload_file(path_or_fileobj=sys.argv[3], "
            "path_in_repo=sys.argv[4], repo_id=sys.argv[5])\n")
    full = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HOME": str(path.parent / f"home-{name}"), **env}
    subprocess.run([sys.executable, "-c", code, hub.url, token, str(path), name, repo], env=full, check=True,
                   capture_output=True)


def in_process_read(data: Path, sha256: str) -> float:
    """Seconds this process takes to rebuild the Xet file from its xorbs (XetStore.read, as the server does)."""
    hub = Hub(Settings.load(data=data))
    with hub.metadata.session() as session:
        repo_pk = session.execute(text("SELECT id FROM repos")).scalar_one()
    file = hub.xet.file_for_sha256(sha256, repo_pk)
    assert file is not None
    started = time.perf_counter()
    for _ in hub.xet.read(file, 1, None):
        pass
    return time.perf_counter() - started


def timed_get(url: str, token: str, byte_range: str | None = None) -> tuple[float, int]:
    """(seconds, bytes) of a GET by curl, its body dropped (a C client: the server's side is what is timed)."""
    args = ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", "-H", f"Authorization: Bearer {token}"]
    if byte_range:
        args += ["-H", f"Range: {byte_range}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=600)
    seconds, size = done.stdout.split()
    return float(seconds), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="timings of each kind")
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="hubgate-bench-xetplain-") as tmp:
        work = Path(tmp)
        hub = Hubgate.start(work / "data", 1)
        try:
            hub.cli("user", "add", "bench")
            token = hub.cli("token", "create", "bench", "--role", "write").strip().splitlines()[-1]
            repo = "bench/plain"
            httpx.post(f"{hub.url}/api/repos/create", json={"name": repo},
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            for name in ("xet.bin", "lfs.bin"):
                with (work / name).open("wb") as out:
                    for _ in range(args.size_mib):
                        out.write(os.urandom(MIB))
            upload(hub, token, repo, work / "xet.bin", "xet.bin")
            upload(hub, token, repo, work / "lfs.bin", "lfs.bin", HF_HUB_DISABLE_XET="1")
            url = f"{hub.url}/{repo}/resolve/main/"
            log(f"{machine()}; {args.size_mib} MiB files")
            rows: list[tuple[str, float, int]] = []
            rows.append(("Xet file, in-process XetStore.read of bytes 1- (no HTTP)",
                         in_process_read(work / "data", sha256_of(work / "xet.bin")), size - 1))
            for _ in range(args.rounds):
                rows.append(("LFS file (sendfile)", *timed_get(url + "lfs.bin", token)))
                rows.append(("Xet file, Range bytes=1- (rebuilt, no copy)", *timed_get(url + "xet.bin", token, "bytes=1-")))
            rows.append(("Xet file, first whole GET (rebuilt + copy written)", *timed_get(url + "xet.bin", token)))
            for _ in range(args.rounds):
                rows.append(("Xet file, next whole GET (plain copy)", *timed_get(url + "xet.bin", token)))
            for label, seconds, got in rows:
                assert got in (size, size - 1), (label, got)
                print(f"{label:55s} {seconds:6.2f} s  {got / MIB / seconds:7.1f} MiB/s")
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
