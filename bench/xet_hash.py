#!/usr/bin/env python3
"""Xet format speed: hubgate.xet's chunking and hashing against hf_xet.hash_files, plus xorb validation and
server-side reconstruction, in one run on the same data.

    python bench/xet_hash.py [--mib 256] [--repeat 3]

Writes a `--mib` MiB file of random bytes and one of float32 "weights" (normal values, compressible a little) to a
temporary folder; for each, times (best of `--repeat`, wall and CPU seconds of this process, all threads; on a
shared machine the CPU figure is the steadier one):
- hubgate chunking alone (`chunk_boundaries`), and chunking + BLAKE3 chunk hashes + file hash (`chunk_nodes`,
  `file_hash`), over an mmap of the file;
- `hf_xet.hash_files([path])` (Rust; the file hash must equal ours, else the run fails);
then, on the weights, parsing and validating xorbs of up to 64 MiB as a CAS upload does (`parse_xorb`, and
`canonical_xorb` which also re-encodes them; schemes 0, 1 and 2) and rebuilding the file's bytes from them
(`reconstruct.file_bytes`). Prints a Markdown table; writes nothing else (the figures go into docs/benchmarks.md by
hand).
"""

from __future__ import annotations

import argparse
import mmap
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hf_xet
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hubgate.xet.chunking import chunk_boundaries, chunk_nodes  # noqa: E402
from hubgate.xet.hashing import file_hash, hash_to_str, xorb_hash  # noqa: E402
from hubgate.xet.reconstruct import file_bytes  # noqa: E402
from hubgate.xet.shard import Term  # noqa: E402
from hubgate.xet.xorb import (  # noqa: E402
    MAX_XORB_BYTES,
    MAX_XORB_CHUNKS,
    ChunkEntry,
    build_xorb,
    canonical_xorb,
    parse_xorb,
)

MIB = 1024 * 1024


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best wall time, the CPU time of that run, and its result."""
    best = (float("inf"), 0.0, None)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        took = (time.perf_counter() - wall, time.process_time() - cpu, result)
        best = min(best, took, key=lambda t: t[0])
    return best


def row(what: str, size: int, wall: float, cpu: float) -> str:
    per_cpu = f"{size / MIB / cpu:.0f} MiB/s" if cpu > 0 else "-"
    return f"| {what} | {size / MIB:.0f} MiB | {size / MIB / wall:.0f} MiB/s | {per_cpu} | {wall:.2f} s | {cpu:.2f} s |"


def xorbs_of(data: memoryview, scheme: int) -> list[tuple[bytes, bytes, list[bytes]]]:
    """The file's chunks packed into xorbs as a client would: (xorb hash, serialized xorb, chunks)."""
    out, chunks, size, start = [], [], 0, 0
    for end in [*chunk_boundaries(data), None]:
        if end is None or len(chunks) == MAX_XORB_CHUNKS or size + (end - start) + 8 > MAX_XORB_BYTES - MIB:
            body = build_xorb(chunks, scheme)
            out.append((xorb_hash(chunk_nodes_of(chunks)), body, chunks))
            chunks, size = [], 0
        if end is None:
            break
        chunks.append(bytes(data[start:end]))
        size += end - start + 8
        start = end
    return out


def chunk_nodes_of(chunks: list[bytes]) -> list[tuple[bytes, int]]:
    return [node for chunk in chunks for node in chunk_nodes(chunk)]


def bench_file(path: Path, repeat: int) -> list[str]:
    size = path.stat().st_size
    rows = []
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        wall, cpu, _ = timed(lambda: chunk_boundaries(view), repeat)
        rows.append(row(f"hubgate chunk_boundaries ({path.name})", size, wall, cpu))
        wall, cpu, ours = timed(lambda: hash_to_str(file_hash(chunk_nodes(view))), repeat)
        rows.append(row(f"hubgate chunking + hashing ({path.name})", size, wall, cpu))
        view.release()
    wall, cpu, theirs = timed(lambda: hf_xet.hash_files([str(path)])[0].hash, repeat)
    rows.append(row(f"hf_xet.hash_files ({path.name})", size, wall, cpu))
    if ours != theirs:
        raise SystemExit(f"file hash mismatch on {path.name}: hubgate {ours}, hf_xet {theirs}")
    return rows


def bench_xorbs(path: Path, repeat: int) -> list[str]:
    data = memoryview(path.read_bytes())
    rows = []
    for scheme in (0, 1, 2):
        xorbs = xorbs_of(data, scheme)
        stored = sum(len(body) for _, body, _ in xorbs)
        indexes: dict[bytes, list[ChunkEntry]] = {}

        def validate() -> None:
            for xorb, body, _ in xorbs:  # noqa: B023 - called within this iteration
                indexes[xorb] = parse_xorb(body, xorb)  # noqa: B023

        wall, cpu, _ = timed(validate, repeat)
        rows.append(row(f"parse_xorb, scheme {scheme} ({len(xorbs)} xorbs, {stored / MIB:.0f} MiB stored)",
                        len(data), wall, cpu))
        wall, cpu, _ = timed(lambda: [canonical_xorb(body, xorb) for xorb, body, _ in xorbs], repeat)  # noqa: B023
        rows.append(row(f"canonical_xorb (validate + re-encode), scheme {scheme}", len(data), wall, cpu))
        bodies = {xorb: body for xorb, body, _ in xorbs}
        terms = [Term(xorb, len(b"".join(chunks)), 0, len(chunks)) for xorb, _, chunks in xorbs]

        def read(xorb: bytes, first: int, last: int) -> Iterator[bytes]:
            body = bodies[xorb]  # noqa: B023
            for at in range(first, last + 1, 4 * MIB):
                yield body[at : min(at + 4 * MIB, last + 1)]

        def rebuild() -> int:
            return sum(len(piece) for piece in file_bytes(terms, indexes.get, read, 0, None))  # noqa: B023

        wall, cpu, total = timed(rebuild, repeat)
        assert total == len(data)
        rows.append(row(f"reconstruct.file_bytes, scheme {scheme}", len(data), wall, cpu))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hubgate-bench-xet-") as tmp:
        random_file = Path(tmp) / "random.bin"
        random_file.write_bytes(os.urandom(opts.mib * MIB))
        weights = Path(tmp) / "weights.bin"
        rng = np.random.default_rng(1)
        weights.write_bytes(rng.standard_normal(opts.mib * MIB // 4, dtype=np.float32).tobytes())
        rows = ["| what | data | speed (wall) | per CPU second | wall | CPU (all threads) |", "|---|---|---|---|---|---|"]
        rows += bench_file(random_file, opts.repeat)
        rows += bench_file(weights, opts.repeat)
        rows += bench_xorbs(weights, opts.repeat)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
