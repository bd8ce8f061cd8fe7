"""What hf_xet really uploads passes hubgate.xet's checks: the real client (hf_xet 1.8.0, and 1.6.0 from the client venv
the oldest 2.4.0 accepts; in a child process) uploads to
a recorder that stores the xorb and shard bodies it POSTs; every xorb parses and validates (all three compression
schemes occur), every shard parses and each file checks against the stored xorbs, and the bytes rebuilt from them
hash to the sha256 the shard claims. A second upload of an edited copy, with the same local cache, reuses the first
xorb: its terms and verification entries for it check too. And a client with an empty cache, answered by
build_dedup_shard (global dedup), sends only the changed chunks of an edited copy."""

from __future__ import annotations

import hashlib
import http.server
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_env import clean_env
from hubgate.xet.hashing import str_to_hash
from hubgate.xet.reconstruct import file_bytes
from hubgate.xet.shard import FileEntry, XorbEntry, build_dedup_shard, check_file, check_xorb, parse_shard
from hubgate.xet.xorb import ChunkEntry, parse_xorb
from venvs import HF_XET_1_6, ensure


class Recorder(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.xorbs: dict[bytes, bytes] = {}
        self.shards: list[bytes] = []
        self.dedup = False  # answer global dedup queries with build_dedup_shard
        self.holders: dict[bytes, list[XorbEntry]] = {}  # chunk hash -> xorbs holding it
        self.dedup_answers = 0

    def keep(self, xorb: bytes, body: bytes) -> None:
        entry = XorbEntry(xorb, tuple((c.hash, c.unpacked_size) for c in parse_xorb(body, xorb)))
        self.xorbs[xorb] = body
        for chunk, _ in entry.chunks:
            self.holders.setdefault(chunk, []).append(entry)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _answer(self, status: int, body: bytes = b"{}") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        asked = str_to_hash(self.path.rsplit("/", 1)[1]) if self.path.startswith("/v1/chunks/") else None
        holders = self.server.holders.get(asked) if asked else None
        if not (self.server.dedup and holders):
            self._answer(404)
            return
        self.server.dedup_answers += 1
        now = int(time.time())
        self._answer(200, build_dedup_shard(holders, os.urandom(32), now, now + 7 * 86400))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/v1/xorbs/default/"):
            self.server.keep(str_to_hash(self.path.rsplit("/", 1)[1]), body)
            self._answer(200, b'{"was_inserted": true}')
        elif self.path == "/v1/shards":
            self.server.shards.append(body)
            self._answer(200, b'{"result": 1}')
        else:  # xorb grants, v2 shards
            self._answer(404)


@pytest.fixture()
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


UPLOAD = textwrap.dedent("""
    import sys, time
    import hf_xet
    hf_xet.upload_files(sys.argv[2:], sys.argv[1], ("token", int(time.time()) + 3600), None, None, "model")
""")


def _upload(recorder: Recorder, home: Path, paths: list[Path], python: str = sys.executable) -> None:
    url = f"http://127.0.0.1:{recorder.server_address[1]}"
    done = subprocess.run([python, "-c", UPLOAD, url, *map(str, paths)], env=clean_env(HF_HOME=str(home)),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _check(recorder: Recorder, indexes: dict[bytes, list[ChunkEntry]]) -> list[FileEntry]:
    for xorb, body in recorder.xorbs.items():
        indexes.setdefault(xorb, parse_xorb(body, xorb))
    files = []
    for body in recorder.shards:
        shard = parse_shard(body)
        for entry in shard.xorbs:
            check_xorb(entry, indexes.get(entry.xorb))
        for file in shard.files:
            size = check_file(file, indexes.get)

            def read(xorb: bytes, first: int, last: int) -> Iterator[bytes]:
                yield recorder.xorbs[xorb][first : last + 1]

            rebuilt = b"".join(file_bytes(file.terms, indexes.get, read, 0, None))
            assert (len(rebuilt), hashlib.sha256(rebuilt).hexdigest()) == (size, file.sha256)
            files.append(file)
    recorder.shards.clear()
    return files


@pytest.fixture(params=["hf_xet-1.8.0", pytest.param("hf_xet-1.6.0", marks=pytest.mark.clients)])
def python(request: pytest.FixtureRequest) -> str:
    """The interpreter whose hf_xet uploads: this venv's (1.8.0), or the client venv with the oldest hf_xet 2.4.0 takes."""
    return sys.executable if request.param == "hf_xet-1.8.0" else str(ensure(HF_XET_1_6).python)


def test_real_uploads_validate_and_rebuild(recorder: Recorder, tmp_path: Path, python: str) -> None:
    rng = random.Random(4)
    inputs = {
        "random.bin": rng.randbytes(1_500_000),
        "zeros.bin": bytes(300000),
        "weights.bin": b"".join(int(rng.gauss(0, 1000)).to_bytes(4, "little", signed=True) for _ in range(200000)),
        "text.txt": b"".join(rng.choice([b"hello ", b"xet ", b"\n", b"world "]) for _ in range(150000)),
    }
    paths = []
    for name, data in inputs.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    home = tmp_path / "hf-home"
    _upload(recorder, home, paths, python)
    indexes: dict[bytes, list[ChunkEntry]] = {}
    files = _check(recorder, indexes)
    assert sorted(f.sha256 or "" for f in files) == sorted(hashlib.sha256(d).hexdigest() for d in inputs.values())
    schemes = Counter(recorder.xorbs[x][e.offset + 4] for x, entries in indexes.items() for e in entries)
    assert set(schemes) == {0, 1, 2}, schemes
    zeros = next(f for f in files if f.sha256 == hashlib.sha256(bytes(300000)).hexdigest())
    first = zeros.terms[0].start  # the overlapping terms plan.py merges: [n, n+1) and [n, n+2) of one xorb
    assert [(t.xorb, t.start, t.end) for t in zeros.terms] == [(zeros.terms[0].xorb, first, first + n) for n in (1, 2)]
    # an edited copy, same local cache: only new chunks are sent, the rest are terms into the first xorbs
    first_xorbs = set(recorder.xorbs)
    edited = bytearray(inputs["random.bin"])
    edited[700_000:700_010] = b"0123456789"
    paths = [tmp_path / "edited.bin"]
    paths[0].write_bytes(edited)
    _upload(recorder, home, paths, python)
    (file,) = _check(recorder, indexes)
    assert file.sha256 == hashlib.sha256(edited).hexdigest()
    assert {t.xorb for t in file.terms} & first_xorbs
    assert sum(len(recorder.xorbs[x]) for x in set(recorder.xorbs) - first_xorbs) < 300_000


@pytest.mark.parametrize("dedup", [False, True], ids=["no-global-dedup", "global-dedup"])
def test_global_dedup_answer_spares_a_fresh_client_the_unchanged_chunks(recorder: Recorder, tmp_path: Path, dedup: bool,
                                                                       python: str) -> None:
    """A client with an empty cache uploads an edited copy: answered with build_dedup_shard, it sends only the changed
    chunk and its terms reuse the first upload's xorb (verified); answered 404, it sends everything again."""
    original = random.Random(8).randbytes(2_000_000)
    (tmp_path / "v1.bin").write_bytes(original)
    _upload(recorder, tmp_path / "home-1", [tmp_path / "v1.bin"], python)
    indexes: dict[bytes, list[ChunkEntry]] = {}
    _check(recorder, indexes)
    first_xorbs = set(recorder.xorbs)
    edited = bytearray(original)
    edited[1_200_000:1_200_004] = b"v2!!"
    (tmp_path / "v2.bin").write_bytes(edited)
    recorder.dedup = dedup
    _upload(recorder, tmp_path / "home-2", [tmp_path / "v2.bin"], python)
    (file,) = _check(recorder, indexes)
    assert file.sha256 == hashlib.sha256(edited).hexdigest()
    sent = sum(len(recorder.xorbs[x]) for x in set(recorder.xorbs) - first_xorbs)
    if dedup:
        assert recorder.dedup_answers > 0
        assert {t.xorb for t in file.terms} & first_xorbs
        assert sent < 300_000
    else:
        assert sent > len(original)
