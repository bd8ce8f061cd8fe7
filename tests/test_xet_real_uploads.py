"""hubgate.xet against the real client (hf_xet 1.8.0, and 1.6.0 from the client venv the oldest 2.4.0 accepts; in a
child process), through a minimal CAS stand-in on 127.0.0.1 built from the library alone: uploaded xorbs are validated
and stored re-encoded (canonical_xorb), shards parsed and every file checked against the stored xorbs (check_xorb,
check_file, verification and file hash), the bytes rebuilt server-side (file_bytes) hash to the shard's sha256, and
the client downloads every file back byte-exactly, whole (both versions) and by range (1.8's XetSession streams), from
v1 reconstructions built by plan() (overlapping terms merged, ranges trimmed) over the re-encoded xorbs. An edited
copy uploaded with the same cache reuses the first xorb through verified terms; one uploaded with an empty cache sends
only the changed chunks when dedup queries are answered with build_dedup_shard, and everything again on 404."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import re
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
from hubgate.xet.hashing import hash_to_str, str_to_hash
from hubgate.xet.plan import RangeNotSatisfiable, plan
from hubgate.xet.reconstruct import file_bytes
from hubgate.xet.shard import FileEntry, Term, XorbEntry, build_dedup_shard, check_file, check_xorb, parse_shard
from hubgate.xet.xorb import ChunkEntry, canonical_xorb
from venvs import HF_XET_1_6, ensure


class Cas(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.sent: dict[bytes, bytes] = {}  # xorb hash -> the body the client POSTed
        self.stored: dict[bytes, bytes] = {}  # xorb hash -> what canonical_xorb made of it
        self.indexes: dict[bytes, list[ChunkEntry]] = {}
        self.shards: list[bytes] = []
        self.files: dict[bytes, tuple[Term, ...]] = {}
        self.dedup = False  # answer global dedup queries with build_dedup_shard
        self.holders: dict[bytes, list[XorbEntry]] = {}  # chunk hash -> xorbs holding it
        self.dedup_answers = 0
        self.asked: list[str] = []  # the Range header of each reconstruction request

    def keep(self, xorb: bytes, body: bytes) -> None:
        stored, entries = canonical_xorb(body, xorb)
        self.sent[xorb], self.stored[xorb], self.indexes[xorb] = body, stored, entries
        entry = XorbEntry(xorb, tuple((c.hash, c.unpacked_size) for c in entries))
        for chunk, _ in entry.chunks:
            self.holders.setdefault(chunk, []).append(entry)

    def reconstruction(self, file: bytes, header: str) -> dict[str, object]:
        self.asked.append(header)
        first, last = re.fullmatch(r"bytes=(\d+)-(\d*)", header).groups()  # type: ignore[union-attr]
        found = plan(self.files[file], self.indexes.get, int(first), int(last) if last else None)
        return {
            "offset_into_first_range": found.offset_into_first_range,
            "terms": [{"hash": hash_to_str(t.xorb), "unpacked_length": t.unpacked_size,
                       "range": {"start": t.start, "end": t.end}} for t in found.terms],
            "fetch_info": {hash_to_str(x): [{"range": {"start": r.chunk_start, "end": r.chunk_end},
                                             "url": f"{self.url}/data/{hash_to_str(x)}",
                                             "url_range": {"start": r.byte_start, "end": r.byte_end}} for r in ranges]
                           for x, ranges in found.fetch.items()},
        }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Cas

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _answer(self, status: int, body: bytes = b"{}", kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        cas, last = self.server, self.path.rsplit("/", 1)[1]
        if self.path.startswith("/v1/chunks/") and cas.dedup and cas.holders.get(str_to_hash(last)):
            cas.dedup_answers += 1
            now = int(time.time())
            self._answer(200, build_dedup_shard(cas.holders[str_to_hash(last)], os.urandom(32), now, now + 7 * 86400))
        elif self.path.startswith("/v1/reconstructions/") and str_to_hash(last) in cas.files:
            try:
                self._answer(200, json.dumps(cas.reconstruction(str_to_hash(last), self.headers["Range"])).encode())
            except RangeNotSatisfiable:
                self._answer(416)
        elif self.path.startswith("/data/"):
            first, end = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers["Range"]).groups())  # type: ignore[union-attr]
            self._answer(206, cas.stored[str_to_hash(last)][first : end + 1], "application/octet-stream")
        else:  # dedup queries without an answer, v2 reconstructions
            self._answer(404)

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
def cas() -> Iterator[Cas]:
    server = Cas()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(params=["hf_xet-1.8.0", pytest.param("hf_xet-1.6.0", marks=pytest.mark.clients)])
def python(request: pytest.FixtureRequest) -> str:
    """The interpreter whose hf_xet runs: this venv's (1.8.0), or the client venv with the oldest hf_xet 2.4.0 takes."""
    return sys.executable if request.param == "hf_xet-1.8.0" else str(ensure(HF_XET_1_6).python)


UPLOAD = textwrap.dedent("""
    import sys, time
    import hf_xet
    hf_xet.upload_files(sys.argv[2:], sys.argv[1], ("token", int(time.time()) + 3600), None, None, "model")
""")
DOWNLOAD = textwrap.dedent("""
    import sys, time
    import hf_xet
    wanted = [hf_xet.PyXetDownloadInfo(sys.argv[i], sys.argv[i + 1], int(sys.argv[i + 2])) for i in range(2, len(sys.argv), 3)]
    hf_xet.download_files(wanted, sys.argv[1], ("token", int(time.time()) + 3600), None, None)
""")


RANGES = textwrap.dedent("""
    import sys, time
    import hf_xet
    group = hf_xet.XetSession().new_download_stream_group(endpoint=sys.argv[1], token="token",
                                                          token_expiry_unix_secs=int(time.time()) + 3600)
    for i in range(2, len(sys.argv), 5):
        file, size, start, end, out = sys.argv[i : i + 5]
        stream = group.download_stream(hf_xet.XetFileInfo(file, int(size)), start=int(start), end=int(end))
        with open(out, "wb") as f:
            for piece in stream:
                f.write(piece)
    group.finish()
""")


def _client(python: str, code: str, cas: Cas, home: Path, *args: str) -> None:
    done = subprocess.run([python, "-c", code, cas.url, *args], env=clean_env(HF_HOME=str(home)),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _register(cas: Cas) -> list[FileEntry]:
    """Check the shards uploaded since the last call, as the CAS does, and rebuild each file's bytes from the store."""
    files = []
    for body in cas.shards:
        shard = parse_shard(body)
        for entry in shard.xorbs:
            check_xorb(entry, cas.indexes.get(entry.xorb))
        for file in shard.files:
            size = check_file(file, cas.indexes.get)

            def read(xorb: bytes, first: int, last: int) -> Iterator[bytes]:
                yield cas.stored[xorb][first : last + 1]

            rebuilt = b"".join(file_bytes(file.terms, cas.indexes.get, read, 0, None))
            assert (len(rebuilt), hashlib.sha256(rebuilt).hexdigest()) == (size, file.sha256)
            cas.files[file.file_hash] = file.terms
            files.append(file)
    cas.shards.clear()
    return files


def test_real_uploads_check_rebuild_and_download(cas: Cas, tmp_path: Path, python: str) -> None:
    rng = random.Random(4)
    inputs = {
        "random.bin": rng.randbytes(1_500_000),
        "zeros.bin": bytes(300000),
        "weights.bin": b"".join(int(rng.gauss(0, 1000)).to_bytes(4, "little", signed=True) for _ in range(200000)),
        "text.txt": b"".join(rng.choice([b"hello ", b"xet ", b"\n", b"world "]) for _ in range(150000)),
    }
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    home = tmp_path / "hf-home"
    _client(python, UPLOAD, cas, home, *(str(tmp_path / name) for name in inputs))
    files = _register(cas)
    by_sha = {f.sha256: f for f in files}
    assert sorted(by_sha) == sorted(hashlib.sha256(d).hexdigest() for d in inputs.values())
    sent_schemes = Counter(body[at + 4] for body in cas.sent.values() for at in _record_offsets(body))
    assert set(sent_schemes) == {0, 1, 2}, sent_schemes  # what the client chose; the store holds its own encoding
    zeros = by_sha[hashlib.sha256(bytes(300000)).hexdigest()]
    first = zeros.terms[0].start  # the overlapping terms plan() must merge: [n, n+1) and [n, n+2) of one xorb
    assert [(t.xorb, t.start, t.end) for t in zeros.terms] == [(zeros.terms[0].xorb, first, first + n) for n in (1, 2)]
    # the client downloads every file back from the re-encoded xorbs (fresh cache)
    args = []
    for name, data in inputs.items():
        entry = by_sha[hashlib.sha256(data).hexdigest()]
        args += [str(tmp_path / f"back-{name}"), hash_to_str(entry.file_hash), str(len(data))]
    _client(python, DOWNLOAD, cas, tmp_path / "hf-home-down", *args)
    for name, data in inputs.items():
        assert (tmp_path / f"back-{name}").read_bytes() == data, name
    # and ranges (end exclusive here), which plan() trims: offset_into_first_range, first and last terms cut
    if python == sys.executable:  # XetSession streams: hf_xet 1.8
        ranges = [("zeros.bin", 131072 + 5, 300000), ("zeros.bin", 10, 20), ("zeros.bin", 299997, 300000),
                  ("zeros.bin", 131000, 131172), ("random.bin", 700000, 700100), ("random.bin", 0, 1),
                  ("random.bin", 1499990, 1500000), ("weights.bin", 77777, 654321)]
        args = []
        for i, (name, start, end) in enumerate(ranges):
            entry = by_sha[hashlib.sha256(inputs[name]).hexdigest()]
            args += [hash_to_str(entry.file_hash), str(len(inputs[name])), str(start), str(end), str(tmp_path / f"range-{i}")]
        _client(python, RANGES, cas, tmp_path / "hf-home-ranges", *args)
        for i, (name, start, end) in enumerate(ranges):
            assert (tmp_path / f"range-{i}").read_bytes() == inputs[name][start:end], (name, start, end)
        assert f"bytes={131072 + 5}-299999" in cas.asked and "bytes=10-19" in cas.asked
    # an edited copy, same local cache: only new chunks are sent, the rest are terms into the first xorbs
    first_xorbs = set(cas.sent)
    edited = bytearray(inputs["random.bin"])
    edited[700_000:700_010] = b"0123456789"
    (tmp_path / "edited.bin").write_bytes(edited)
    _client(python, UPLOAD, cas, home, str(tmp_path / "edited.bin"))
    (file,) = _register(cas)
    assert file.sha256 == hashlib.sha256(edited).hexdigest()
    assert {t.xorb for t in file.terms} & first_xorbs
    assert sum(len(cas.sent[x]) for x in set(cas.sent) - first_xorbs) < 300_000
    _client(python, DOWNLOAD, cas, tmp_path / "hf-home-down-2", str(tmp_path / "back-edited.bin"),
            hash_to_str(file.file_hash), str(len(edited)))
    assert (tmp_path / "back-edited.bin").read_bytes() == edited


def _record_offsets(body: bytes) -> Iterator[int]:
    at = 0
    while at < len(body):
        yield at
        at += 8 + int.from_bytes(body[at + 1 : at + 4], "little")


@pytest.mark.parametrize("dedup", [False, True], ids=["no-global-dedup", "global-dedup"])
def test_global_dedup_answer_spares_a_fresh_client_the_unchanged_chunks(cas: Cas, tmp_path: Path, dedup: bool,
                                                                       python: str) -> None:
    """A client with an empty cache uploads an edited copy: answered with build_dedup_shard, it sends only the changed
    chunk and its terms reuse the first upload's xorb (verified); answered 404, it sends everything again."""
    original = random.Random(8).randbytes(2_000_000)
    (tmp_path / "v1.bin").write_bytes(original)
    _client(python, UPLOAD, cas, tmp_path / "home-1", str(tmp_path / "v1.bin"))
    _register(cas)
    first_xorbs = set(cas.sent)
    edited = bytearray(original)
    edited[1_200_000:1_200_004] = b"v2!!"
    (tmp_path / "v2.bin").write_bytes(edited)
    cas.dedup = dedup
    _client(python, UPLOAD, cas, tmp_path / "home-2", str(tmp_path / "v2.bin"))
    (file,) = _register(cas)
    assert file.sha256 == hashlib.sha256(edited).hexdigest()
    sent = sum(len(cas.sent[x]) for x in set(cas.sent) - first_xorbs)
    if dedup:
        assert cas.dedup_answers > 0
        assert {t.xorb for t in file.terms} & first_xorbs
        assert sent < 300_000
    else:
        assert sent > len(original)
