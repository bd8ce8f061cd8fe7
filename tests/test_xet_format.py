"""Xet formats (issue 11): the hashes against xet-protocol.md §3.8 and hf_xet, xorbs and shards round trip, and
every malformed input gives XetFormatError (a clean 400 upstream), never another exception."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import struct
from collections.abc import Sequence
from pathlib import Path

import hf_xet
import lz4.frame
import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubgate.xet.chunking import GEAR_TABLE, MAX_CHUNK, MIN_CHUNK, chunk_boundaries, chunk_nodes
from hubgate.xet.hashing import (
    NODE_KEY,
    chunk_hash,
    dedup_eligible,
    file_hash,
    hash_to_str,
    str_to_hash,
    verification_hash,
    xorb_hash,
)
from hubgate.xet.shard import (
    BOOKEND,
    FileEntry,
    Shard,
    Term,
    XorbEntry,
    build_dedup_shard,
    build_shard,
    check_file,
    check_xorb,
    parse_shard,
)
from hubgate.xet.xorb import (
    HEADER_SIZE,
    MAX_CHUNK_BYTES,
    SCHEME_RAW,
    ChunkEntry,
    IndexView,
    XetFormatError,
    XorbReader,
    build_xorb,
    canonical_xorb,
    decode_chunk_records,
    decode_stream,
    encode_record,
    pack_index,
    parse_xorb,
    unpack_index,
)


def _lcg(n: int) -> bytes:
    """xet-protocol.md §3.8's LCG(n)."""
    out = bytearray()
    s = 1
    while len(out) < n:
        s = (s * 6364136223846793005 + 1442695040888963407) % 2**64
        out += (s >> 32).to_bytes(4, "little")
    return bytes(out[:n])


def _nodes(chunks: Sequence[bytes]) -> list[tuple[bytes, int]]:
    return [(chunk_hash(c), len(c)) for c in chunks]


def _xorb(chunks: Sequence[bytes], scheme: int = 1) -> tuple[bytes, bytes]:
    """(xorb hash, serialized xorb)."""
    return xorb_hash(_nodes(chunks)), build_xorb(chunks, scheme)


def _header(compressed: int, scheme: int, unpacked: int, version: int = 0) -> bytes:
    return bytes([version]) + compressed.to_bytes(3, "little") + bytes([scheme]) + unpacked.to_bytes(3, "little")


# --- hashes ------------------------------------------------------------------------------------------------


def test_string_form_reverses_each_word() -> None:
    raw = bytes(range(32))
    assert hash_to_str(raw) == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert str_to_hash(hash_to_str(raw)) == raw
    for bad in ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, " " * 64, "٠" * 64]:
        with pytest.raises(ValueError):
            str_to_hash(bad)


def test_vectors_hello_and_zeros() -> None:
    hello = b"Hello World!\n"
    h = chunk_hash(hello)
    assert xorb_hash([(h, 13)]) == h
    assert hash_to_str(h) == "e11d004e9968f3c8a9179dca907aafe0fc1cbb73f429fe142514db413b6552f6"
    assert hash_to_str(file_hash([(h, 13)])) == "26bcb87aa2953ba3b5c282d9581ac5572a4c7481399a64c03cdff89242a9b3f2"
    z = chunk_hash(bytes(8191))
    assert hash_to_str(z) == "461b3d677f5a6e106501096980089da139bbf22ab66ca36345727adcb5e8ad84"
    assert hash_to_str(file_hash([(z, 8191)])) == "80c25c0cf8afd7a10eabd09184c813addb4328bd727089be2b62a77028848772"
    zeros = _nodes([bytes(131072), bytes(131072), bytes(37856)])
    assert hash_to_str(file_hash(zeros)) == "3d7bd4178bc2851ba07d59c24c3a88ae0c7220e9920d6c5c6a06b01556d46404"
    assert file_hash([]) == bytes(32)


def _level_by_level(nodes: list[tuple[bytes, int]]) -> bytes:
    """§3.4 as written: rebuild the whole list level by level (the library streams instead)."""
    level = nodes
    if not level:
        return bytes(32)
    while len(level) > 1:
        merged, start = [], 0
        while start < len(level):
            remaining = len(level) - start
            end = len(level) if remaining <= 2 else start + min(9, remaining)
            if remaining > 2:
                for i in range(2, min(9, remaining)):
                    if int.from_bytes(level[start + i][0][24:32], "little") % 4 == 0:
                        end = start + i + 1
                        break
            text = "".join(f"{hash_to_str(h)} : {size}\n" for h, size in level[start:end])
            merged.append((blake3(text.encode(), key=NODE_KEY).digest(), sum(size for _, size in level[start:end])))
            start = end
        level = merged
    return level[0][0]


def test_streaming_aggregation_equals_the_level_by_level_rule() -> None:
    rng = random.Random(2)
    for n in [*range(40), 81, 82, 729, 5000]:
        nodes = [(rng.randbytes(32), rng.randint(1, 131072)) for _ in range(n)]
        assert xorb_hash(nodes) == _level_by_level(nodes), n
        expected = bytes(32) if n == 0 else blake3(_level_by_level(nodes), key=bytes(32)).digest()
        assert file_hash(iter(nodes)) == expected


def test_lcg_prefix() -> None:
    assert _lcg(16).hex() == "ac6f576cb386688299e1faa5cd550362"


# --- chunking ----------------------------------------------------------------------------------------------


def _chunks(data: bytes) -> list[bytes]:
    ends = chunk_boundaries(data)
    return [data[a:b] for a, b in zip([0, *ends], ends, strict=False)]


def _reference_boundaries(data: bytes) -> list[int]:
    """§3.2 literally: one byte at a time, the hash reset after every cut (slow; small inputs only)."""
    table = [int(x) for x in GEAR_TABLE]
    ends, h, size = [], 0, 0
    for i, byte in enumerate(data):
        h = ((h << 1) + table[byte]) & 0xFFFFFFFFFFFFFFFF
        size += 1
        if size >= MIN_CHUNK and (size >= MAX_CHUNK or h & 0xFFFF000000000000 == 0):
            ends.append(i + 1)
            h, size = 0, 0
    if size:
        ends.append(len(data))
    return ends


def test_gear_table() -> None:
    assert len(GEAR_TABLE) == 256 and len(set(GEAR_TABLE.tolist())) == 256
    assert (int(GEAR_TABLE[0]), int(GEAR_TABLE[128]), int(GEAR_TABLE[255])) == (
        0xB088D3A9E840F559, 0xA315F5EBFB706D26, 0x63C7A906C1DD187B)


def test_vectors_lcg() -> None:
    data = _lcg(1048576)
    chunks = _chunks(data)
    assert [len(c) for c in chunks[:8]] == [10536, 62603, 15850, 40636, 11221, 82940, 131072, 29766]
    assert len(chunks) == 19
    nodes = _nodes(chunks)
    assert hash_to_str(nodes[0][0]) == "ca89110d996026e92a5829264debfdfceb158d422da0139ee50c385cf4dee32d"
    assert hash_to_str(xorb_hash(nodes)) == "f5569207bb70c1e3708e3137c8da4db73e6953c684a7e414b9543dda128e212a"
    assert hash_to_str(file_hash(nodes)) == "75f5fd99da30912c2c896d1eacd3c3dd38c4233ce41596b41ab8033ad903c665"
    proof = verification_hash([h for h, _ in nodes])
    assert hash_to_str(proof) == "493abb2a16cfbe5033d85053cd1bc095b07dcdc3a8ebd84218f99f6f58b24ad7"
    assert hashlib.sha256(data).hexdigest() == "3829caab2bb5085e147c556f5b28f801b4122cefce2c902176f80a29b2ae8f6f"


def test_zero_runs_cut_at_the_maximum() -> None:
    assert [len(c) for c in _chunks(bytes(300000))] == [131072, 131072, 37856]
    assert chunk_boundaries(b"") == []
    assert chunk_boundaries(b"x") == [1]
    assert chunk_boundaries(bytes(MAX_CHUNK)) == [MAX_CHUNK]
    assert chunk_boundaries(bytes(MAX_CHUNK + 1)) == [MAX_CHUNK, MAX_CHUNK + 1]


def _inputs() -> dict[str, bytes]:
    rng = random.Random(7)
    words = [b"weights ", b"layer.0 ", b"\n", b"attention ", b"0.125 ", b"tokenizer "]
    return {
        "random-1": rng.randbytes(1),
        "random-8191": rng.randbytes(8191),
        "random-8193": rng.randbytes(8193),
        "random-131073": rng.randbytes(131073),
        "random-3M": rng.randbytes(3 * 1024 * 1024 + 17),
        "zeros-1M": bytes(1 << 20),
        "runs": rng.randbytes(70000) + bytes(400000) + rng.randbytes(200000) + b"ab" * 150000 + rng.randbytes(9000),
        "text": b"".join(rng.choice(words) for _ in range(300000)),
        "repeated-block": rng.randbytes(50000) * 12,
    }


def test_file_hash_matches_hf_xet(tmp_path: Path) -> None:
    inputs = _inputs()
    paths = []
    for name, data in inputs.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    reference = hf_xet.hash_files([str(p) for p in paths])
    for (name, data), info in zip(inputs.items(), reference, strict=True):
        assert (name, hash_to_str(file_hash(_nodes(_chunks(data)))), len(data)) == (name, info.hash, info.file_size)
        assert chunk_nodes(data) == _nodes(_chunks(data))


def test_chunking_matches_the_byte_at_a_time_definition() -> None:
    rng = random.Random(3)
    for data in [rng.randbytes(400000), bytes(20000) + rng.randbytes(300000), (rng.randbytes(70) * 5000)[:350000]]:
        assert chunk_boundaries(data) == _reference_boundaries(data)
        assert chunk_boundaries(memoryview(data)) == chunk_boundaries(bytearray(data))


# --- xorbs -------------------------------------------------------------------------------------------------

CHUNKS = [os.urandom(1001), bytes(5000), b"abc" * 3001, os.urandom(131072), bytes(range(256)) * 3 + b"x"]


@pytest.mark.parametrize("scheme", [0, 1, 2])
def test_xorb_round_trip(scheme: int) -> None:
    expected, body = _xorb(CHUNKS, scheme)
    entries = parse_xorb(body, expected)
    assert [(e.hash, e.unpacked_size) for e in entries] == _nodes(CHUNKS)
    assert entries[0].offset == 0
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.offset == before.offset + before.stored_size
    stored = canonical_xorb(body, expected)[0]  # the index is the stored bytes' (this server's encoding)
    assert entries[-1].offset + entries[-1].stored_size == len(stored)
    assert stored == body if scheme == 0 else len(stored) <= len(body)
    assert list(decode_chunk_records(body)) == list(decode_chunk_records(stored)) == CHUNKS
    pieces = [body[i : i + 777] for i in range(0, len(body), 777)]
    assert list(decode_stream(pieces)) == CHUNKS
    assert unpack_index(pack_index(entries)) == entries


def test_mixed_schemes_in_one_xorb() -> None:
    body = b"".join(encode_record(c, s) for c, s in zip(CHUNKS, [0, 1, 2, 0, 2], strict=True))
    assert len(parse_xorb(body, xorb_hash(_nodes(CHUNKS)))) == len(CHUNKS)


def _rejects(body: bytes, expected: bytes, words: str) -> None:
    with pytest.raises(XetFormatError, match=words):
        parse_xorb(body, expected)


def test_xorb_negatives() -> None:
    expected, body = _xorb(CHUNKS[:3])
    _rejects(body, bytes(32), "hash to")
    _rejects(body, expected[::-1], "hash to")
    _rejects(body[:-1], expected, "runs past the end")
    _rejects(body + b"\0", expected, "truncated chunk header")
    _rejects(body + _header(1, 0, 1), expected, "runs past the end")
    _rejects(body + body[:8], expected, "runs past the end")
    _rejects(b"", expected, "empty")
    _rejects(_header(3, 0, 3, version=1) + b"abc", chunk_hash(b"abc"), "version 1")
    _rejects(_header(3, 3, 3) + b"abc", chunk_hash(b"abc"), "scheme 3")
    _rejects(_header(3, 0, 4) + b"abc", chunk_hash(b"abc"), "compressed length")
    _rejects(_header(0, 0, 0), chunk_hash(b""), "declares 0 bytes")
    _rejects(_header(131073, 0, 131073) + bytes(131073), chunk_hash(bytes(131073)), "declares 131073")
    packed = lz4.frame.compress(b"hello world")
    _rejects(_header(len(packed), 1, 10) + packed, chunk_hash(b"hello worl"), "exactly its declared 10")
    _rejects(_header(len(packed), 1, 12) + packed, chunk_hash(b"hello world"), "exactly its declared 12")
    _rejects(_header(len(packed) + 1, 1, 11) + packed + b"x", chunk_hash(b"hello world"), "exactly")
    _rejects(_header(5, 1, 11) + b"hello", chunk_hash(b"hello world"), "exactly")
    _rejects(_header(12, 1, 11) + b"\x04\x22\x4d\x18garbage!", chunk_hash(b"hello world"), "not a valid LZ4 frame")
    valid = _header(len(packed), 1, 11) + packed
    assert parse_xorb(valid, chunk_hash(b"hello world"))[0].unpacked_size == 11


def test_lz4_bomb_is_refused_without_inflating() -> None:
    bomb = lz4.frame.compress(bytes(64 * 1024 * 1024))
    _rejects(_header(len(bomb), 1, 131072) + bomb, chunk_hash(bytes(131072)), "exactly its declared")
    _rejects(_header(len(bomb), 2, 131072) + bomb, chunk_hash(bytes(131072)), "exactly its declared")


def test_canonical_xorb_stores_this_servers_encoding() -> None:
    chunks = [bytes(5000), CHUNKS[0], b"abc" * 3001, bytes(range(256)) * 3 + b"x"]
    expected = xorb_hash(_nodes(chunks))
    for schemes in ([0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [1, 0, 2, 1]):
        uploaded = b"".join(encode_record(c, s) for c, s in zip(chunks, schemes, strict=True))
        stored, entries = canonical_xorb(uploaded, expected)
        assert parse_xorb(stored, expected) == entries
        assert list(decode_chunk_records(stored)) == chunks
        # a chunk compression does not shrink (random bytes) is stored raw
        assert stored[entries[1].offset + 4] == 0 and entries[1].stored_size == 8 + len(CHUNKS[0])
        assert [stored[e.offset + 4] for e in entries][::2] == schemes[::2]
    # an LZ4 stream with a match offset of 0 decodes to zeros here (a fresh buffer) but to whatever another decoder's
    # buffer holds: accepted as content, never stored as sent
    clean = lz4.frame.compress(bytes(5000))
    at = clean.find(bytes.fromhex("1f000100"))
    assert at > 0
    poisoned = clean[: at + 2] + b"\0" + clean[at + 3 :]
    record = _header(len(poisoned), 1, 5000) + poisoned
    stored, entries = canonical_xorb(record, chunk_hash(bytes(5000)))
    assert poisoned not in stored
    assert stored == canonical_xorb(_header(len(clean), 1, 5000) + clean, chunk_hash(bytes(5000)))[0]
    with pytest.raises(XetFormatError, match="hash to"):
        canonical_xorb(record, bytes(32))


def _read_in_pieces(body: bytes, cuts: Sequence[int], expected: bytes) -> tuple[list[bytes | memoryview], list[ChunkEntry]]:
    """What XorbReader passes on, and the index, for `body` fed in pieces cut at `cuts`."""
    parts: list[bytes | memoryview] = []
    reader = XorbReader(parts.append)
    bounds = [0, *sorted(c % (len(body) + 1) for c in cuts), len(body)]
    pieces = [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    for piece in pieces:
        reader.feed(piece)
    return parts, reader.finish(expected)


def test_raw_records_are_stored_as_sent_and_compressed_ones_re_encoded() -> None:
    chunks = [CHUNKS[0], b"abc" * 3001, CHUNKS[1], bytes(5000), CHUNKS[2]]
    expected = xorb_hash(_nodes(chunks))
    raw = b"".join(encode_record(c, 0) for c in chunks)
    parts, entries = _read_in_pieces(raw, [], expected)
    assert len(parts) == 1 and isinstance(parts[0], memoryview) and parts[0].obj is raw  # the body, not a copy
    assert len(parts[0]) == len(raw) and entries == parse_xorb(raw, expected)
    for schemes in ([0, 1, 0, 2, 0], [1, 0, 0, 2, 1], [0, 0, 1, 1, 0]):
        records = [encode_record(c, s) for c, s in zip(chunks, schemes, strict=True)]
        parts, entries = _read_in_pieces(b"".join(records), [], expected)
        stored = b"".join(parts)
        assert (stored, entries) == canonical_xorb(b"".join(records), expected)
        assert list(decode_chunk_records(stored)) == chunks
        for record, scheme, entry in zip(records, schemes, entries, strict=True):
            if scheme == 0:
                assert stored[entry.offset : entry.offset + entry.stored_size] == record


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemes=st.lists(st.sampled_from([0, 1, 2]), min_size=5, max_size=5),
       cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12),
       damage=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 20)),
       cut_short=st.integers(min_value=0, max_value=20))
def test_a_xorb_read_in_pieces_is_read_as_if_whole(schemes: list[int], cuts: list[int], damage: int | None,
                                                    cut_short: int) -> None:
    """However the body is split as it arrives, the reader stores the same bytes with the same index, or refuses it
    with the same message; damaged or truncated bodies are refused."""
    chunks = [CHUNKS[0], b"abc" * 3001, CHUNKS[1], bytes(5000), CHUNKS[2][:777]]
    expected = xorb_hash(_nodes(chunks))
    body = b"".join(encode_record(c, s) for c, s in zip(chunks, schemes, strict=True))
    if damage is not None:
        at = damage % len(body)
        body = body[:at] + bytes([body[at] ^ 0x5A]) + body[at + 1 :]
    if cut_short:
        body = body[: len(body) - cut_short]
    whole: tuple[bytes, list[ChunkEntry]] | str
    try:
        whole = canonical_xorb(body, expected)
    except XetFormatError as error:
        whole = str(error)
    try:
        parts, entries = _read_in_pieces(body, cuts, expected)
        pieced: tuple[bytes, list[ChunkEntry]] | str = (b"".join(parts), entries)
    except XetFormatError as error:
        pieced = str(error)
    assert pieced == whole
    if damage is None and not cut_short:
        assert isinstance(whole, tuple) and list(decode_chunk_records(whole[0])) == chunks
    elif cut_short:
        assert isinstance(whole, str)


def test_xorb_limits() -> None:
    tiny = [i.to_bytes(2, "little") for i in range(8193)]
    expected, body = _xorb(tiny, 0)
    _rejects(body, expected, "more than 8192 chunks")
    expected, body = _xorb(tiny[:8192], 0)
    assert len(parse_xorb(body, expected)) == 8192
    big = [os.urandom(131072)] * 513  # 513 * (131072 + 8) > 64 MiB
    expected, body = _xorb(big, 0)
    _rejects(body, expected, "exceeds")


def test_packed_index_rejects_partial_entries() -> None:
    entries = [ChunkEntry(os.urandom(32), 5, 0, 13)]
    with pytest.raises(XetFormatError):
        unpack_index(pack_index(entries) + b"x")
    with pytest.raises(XetFormatError):
        IndexView(pack_index(entries)[:-1])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 12), st.integers(-15, 15), st.integers(-15, 15), st.sampled_from([None, 1, 2, -1, 3]))
def test_index_view_reads_like_the_list(n: int, start: int, stop: int, step: int | None) -> None:
    entries = [ChunkEntry(bytes([i]) * 32, 100 + i, 108 * i, 108) for i in range(n)]
    view = IndexView(pack_index(entries))
    assert len(view) == n and list(view) == entries == unpack_index(pack_index(entries))
    assert view[start:stop:step] == entries[start:stop:step]
    if -n <= start < n:
        assert view[start] == entries[start]
    else:
        with pytest.raises(IndexError):
            view[start]


VALID_XORB = _xorb(CHUNKS[:3], 2)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_are_a_format_error(body: bytes) -> None:
    with pytest.raises(XetFormatError):
        parse_xorb(body, bytes(32))
    with pytest.raises(XetFormatError):
        canonical_xorb(body, bytes(32))
    with contextlib.suppress(XetFormatError):
        list(decode_chunk_records(body))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutated_xorbs_are_a_format_error(data: st.DataObject) -> None:
    expected, body = VALID_XORB
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    candidate = bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated)
    try:
        entries = parse_xorb(candidate, expected)
    except XetFormatError:
        with contextlib.suppress(XetFormatError):
            list(decode_chunk_records(candidate))
        return
    # accepted only if it still holds exactly the same chunks (an LZ4 stream can be altered without changing its
    # output, e.g. a match offset within a repeated pattern): the xorb hash covers the content, not the encoding
    assert [(e.hash, e.unpacked_size) for e in entries] == _nodes(CHUNKS[:3])
    assert list(decode_chunk_records(candidate)) == CHUNKS[:3]
    stored, index = canonical_xorb(candidate, expected)
    assert parse_xorb(stored, expected) == index and stored == canonical_xorb(body, expected)[0]


# --- shards ------------------------------------------------------------------------------------------------


class Stored:
    """A stand-in for the store: xorb hash -> chunk index."""

    def __init__(self) -> None:
        self.xorbs: dict[bytes, list[ChunkEntry]] = {}

    def add(self, chunks: Sequence[bytes], scheme: int = 1) -> bytes:
        expected, body = _xorb(chunks, scheme)
        self.xorbs[expected] = parse_xorb(body, expected)
        return expected

    def __call__(self, xorb: bytes) -> list[ChunkEntry] | None:
        return self.xorbs.get(xorb)


def _term(store: Stored, xorb: bytes, start: int, end: int) -> tuple[Term, bytes]:
    chunks = store.xorbs[xorb][start:end]
    term = Term(xorb, sum(c.unpacked_size for c in chunks), start, end)
    return term, verification_hash([c.hash for c in chunks])


def _file_entry(store: Stored, spans: Sequence[tuple[bytes, int, int]], sha256: str | None = "ab" * 32) -> FileEntry:
    terms, proofs = zip(*(_term(store, x, s, e) for x, s, e in spans), strict=True)
    nodes = [(c.hash, c.unpacked_size) for x, s, e in spans for c in store.xorbs[x][s:e]]
    return FileEntry(file_hash(nodes), tuple(terms), tuple(proofs), sha256)


@pytest.fixture()
def store() -> Stored:
    return Stored()


def test_shard_round_trip_and_check(store: Stored) -> None:
    a = store.add(CHUNKS[:3])
    b = store.add(CHUNKS[3:])
    one = _file_entry(store, [(a, 0, 3), (b, 0, 2)])
    two = _file_entry(store, [(b, 1, 2), (a, 1, 2), (a, 0, 2)], sha256=None)
    xorbs = [XorbEntry(x, tuple((c.hash, c.unpacked_size) for c in store.xorbs[x])) for x in (a, b)]
    body = build_shard([one, two], xorbs)
    assert len(body) == 48 + (48 + 2 * 2 * 48 + 48) + (48 + 3 * 2 * 48) + 48 + (48 + 3 * 48) + (48 + 2 * 48) + 48
    assert parse_shard(body) == Shard((one, two), tuple(xorbs))
    assert check_file(one, store) == sum(map(len, CHUNKS))
    assert check_file(two, store) == len(CHUNKS[4]) + len(CHUNKS[1]) + len(CHUNKS[0]) + len(CHUNKS[1])
    for entry in xorbs:
        check_xorb(entry, store(entry.xorb))
    empty = build_shard([one], [])
    assert len(empty) == 48 + 48 + 2 * 2 * 48 + 48 + 48 + 48
    lookup_tables = b"\x99" * (2 * 12 + 16)  # lookup entries are 12 or 16 bytes, not 48
    with_footer = body[:32] + struct.pack("<QQ", 2, 200) + body[48:] + lookup_tables + bytes(200)
    assert parse_shard(with_footer) == Shard((one, two), tuple(xorbs))


def test_shard_sha256_is_in_xet_byte_order(store: Stored) -> None:
    a = store.add(CHUNKS[:1])
    sha = "3829caab2bb5085e147c556f5b28f801b4122cefce2c902176f80a29b2ae8f6f"
    body = build_shard([_file_entry(store, [(a, 0, 1)], sha)], [])
    assert str_to_hash(sha) in body and bytes.fromhex(sha) not in body
    assert parse_shard(body).files[0].sha256 == sha


def _shard_rejects(body: bytes, words: str) -> None:
    with pytest.raises(XetFormatError, match=words):
        parse_shard(body)


def test_malformed_shards(store: Stored) -> None:
    a = store.add(CHUNKS[:3])
    body = build_shard([_file_entry(store, [(a, 0, 3)])], [XorbEntry(a, tuple(_nodes(CHUNKS[:3])))])
    assert parse_shard(body).files
    _shard_rejects(body[:47], "shorter than its header")
    _shard_rejects(b"X" + body[1:], "tag")
    _shard_rejects(body[:32] + struct.pack("<Q", 3) + body[40:], "version 3")
    _shard_rejects(body[:40] + struct.pack("<Q", 100) + body[48:], "footer size 100")
    _shard_rejects(body[:40] + struct.pack("<Q", 200) + body[48:], "truncated|end marker")  # no room for the footer it claims
    _shard_rejects(body[:-48], "without its end marker")
    _shard_rejects(body[:-1], "whole number")
    _shard_rejects(body + bytes(48), "after its xorb section")
    _shard_rejects(body[:-1] + b"\x01", "end marker")
    file_header = 48
    flags_at = file_header + 32
    _shard_rejects(body[:flags_at] + struct.pack("<I", 0xC0000001) + body[flags_at + 4 :], "unknown flags")
    for count in (0, 100, 2**32 - 1):
        at = flags_at + 4
        _shard_rejects(body[:at] + struct.pack("<I", count) + body[at + 4 :], "no terms" if count == 0 else "truncated")
    term = file_header + 48
    _shard_rejects(body[: term + 40] + struct.pack("<II", 2, 2) + body[term + 48 :], "invalid term")
    xorb_header = len(body) - 48 - (48 + 3 * 48)
    for count in (0, 8193, 2**32 - 1):
        at = xorb_header + 36
        _shard_rejects(body[:at] + struct.pack("<I", count) + body[at + 4 :], "chunks|truncated")
    # a huge claimed count in a short body is refused before anything is allocated
    at = xorb_header + 36
    _shard_rejects(body[:at] + struct.pack("<I", 8192) + body[at + 4 :], "truncated")
    assert BOOKEND in body


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_random_and_mutated_shards(data: st.DataObject) -> None:
    store = Stored()
    a = store.add(CHUNKS[:3])
    body = build_shard([_file_entry(store, [(a, 0, 3), (a, 1, 2)])], [XorbEntry(a, tuple(_nodes(CHUNKS[:3])))])
    if data.draw(st.booleans()):
        candidate = data.draw(st.binary(max_size=2048))
        if data.draw(st.booleans()):
            candidate = body[:48] + candidate
    else:
        mutated = bytearray(body)
        for _ in range(data.draw(st.integers(1, 4))):
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
        candidate = bytes(mutated[: data.draw(st.integers(0, len(mutated)))])
    try:
        shard = parse_shard(candidate)
    except XetFormatError:
        return
    for entry in shard.files:
        with contextlib.suppress(XetFormatError):
            check_file(entry, store)


def test_check_file_negatives(store: Stored) -> None:
    a = store.add(CHUNKS[:3])
    good = _file_entry(store, [(a, 0, 3), (a, 1, 2)])
    assert check_file(good, store) == sum(map(len, CHUNKS[:3])) + len(CHUNKS[1])
    term = good.terms[0]

    def rejects(entry: FileEntry, words: str) -> None:
        with pytest.raises(XetFormatError, match=words):
            check_file(entry, store)

    def with_terms(*terms: Term) -> FileEntry:
        return FileEntry(good.file_hash, terms, good.verification, good.sha256)

    missing = Term(os.urandom(32), term.unpacked_size, 0, 3)
    rejects(with_terms(missing, good.terms[1]), "not uploaded")
    rejects(with_terms(Term(a, term.unpacked_size, 0, 4), good.terms[1]), "which has 3")
    rejects(with_terms(Term(a, term.unpacked_size + 1, 0, 3), good.terms[1]), "size disagrees")
    wrong_proof = (good.verification or ())[::-1]
    rejects(FileEntry(good.file_hash, good.terms, wrong_proof, None), "verification hash")
    rejects(FileEntry(good.file_hash, good.terms, None, None), "lacks its verification")
    rejects(FileEntry(good.file_hash, good.terms, (good.verification or ())[:1], None), "lacks its verification")
    rejects(FileEntry(os.urandom(32), good.terms, good.verification, None), "hash of its chunks")
    # a wrong file hash that is the file hash of a different chunk order
    swapped = FileEntry(good.file_hash, good.terms[::-1], (good.verification or ())[::-1], None)
    rejects(swapped, "hash of its chunks")
    with pytest.raises(XetFormatError, match="not uploaded"):
        check_xorb(XorbEntry(os.urandom(32), ()), None)
    with pytest.raises(XetFormatError, match="disagrees"):
        check_xorb(XorbEntry(a, tuple(_nodes(CHUNKS[:2]))), store(a))


def test_random_file_layouts_check(store: Stored) -> None:
    rng = random.Random(11)
    xorbs = [store.add([rng.randbytes(rng.randint(1, 3000)) for _ in range(rng.randint(1, 9))]) for _ in range(4)]
    for _ in range(50):
        spans = []
        for _ in range(rng.randint(1, 6)):
            x = rng.choice(xorbs)
            n = len(store.xorbs[x])
            start = rng.randrange(n)
            spans.append((x, start, rng.randint(start + 1, n)))
        entry = _file_entry(store, spans)
        size = sum(c.unpacked_size for x, s, e in spans for c in store.xorbs[x][s:e])
        assert check_file(entry, store) == size
        assert check_file(entry, lambda x: IndexView(pack_index(store.xorbs[x]))) == size  # as the CAS reads it
        assert parse_shard(build_shard([entry], [])).files == (entry,)


def test_dedup_shard_layout(store: Stored) -> None:
    rng = random.Random(12)
    xorbs = [store.add([rng.randbytes(rng.randint(1, 2000)) for _ in range(n)]) for n in (3, 1, 7)]
    entries = [XorbEntry(x, tuple((c.hash, c.unpacked_size) for c in store.xorbs[x])) for x in xorbs]
    key = rng.randbytes(32)
    body = build_dedup_shard(entries, key, 1_800_000_000, 1_800_604_800)
    shard = parse_shard(body)
    assert shard.files == ()
    by_xorb = {x.xorb: x for x in shard.xorbs}
    order = [x.xorb for x in shard.xorbs]
    assert order == sorted(order, key=lambda h: int.from_bytes(h[:8], "little"))
    for entry in entries:
        assert by_xorb[entry.xorb].chunks == tuple((blake3(h, key=key).digest(), n) for h, n in entry.chunks)
    (version, file_info, xorb_info, file_lookup, file_count, xorb_lookup, xorb_count, chunk_lookup, chunk_count,
     footer_key, created, expiry, _, _, stored, footer_offset) = struct.unpack("<9Q32sQQ48xQQQQ", body[-200:])
    assert (version, file_info, xorb_info, file_count, xorb_count, chunk_count) == (1, 48, 96, 0, 3, 11)
    assert (footer_key, created, expiry, footer_offset) == (key, 1_800_000_000, 1_800_604_800, len(body) - 200)
    assert stored == sum(c.unpacked_size for x in xorbs for c in store.xorbs[x])
    assert file_lookup == xorb_lookup == 96 + 48 * (3 + 11) + 48 and chunk_lookup == xorb_lookup + 3 * 12
    rows = [struct.unpack_from("<QI", body, xorb_lookup + 12 * i) for i in range(3)]
    for (truncated, index), xorb in zip(rows, order, strict=True):
        at = xorb_info + 48 * index
        assert body[at : at + 32] == xorb and truncated == int.from_bytes(xorb[:8], "little")
    chunks = [struct.unpack_from("<QII", body, chunk_lookup + 16 * i) for i in range(11)]
    assert [c[0] for c in chunks] == sorted(c[0] for c in chunks)
    for truncated, index, ordinal in chunks:
        at = xorb_info + 48 * (index + 1 + ordinal)
        assert int.from_bytes(body[at : at + 8], "little") == truncated
    with pytest.raises(ValueError):
        build_dedup_shard(entries, bytes(32), 0, 0)


def test_dedup_eligibility() -> None:
    assert dedup_eligible(bytes(24) + (3 * 1024).to_bytes(8, "little"))
    assert not dedup_eligible(bytes(24) + (3 * 1024 + 1).to_bytes(8, "little"))
    assert not dedup_eligible((1024).to_bytes(8, "little") + bytes(16) + (7).to_bytes(8, "little"))


def test_a_full_xorb_of_incompressible_chunks_is_accepted() -> None:
    """hf_xet fills a xorb with up to 64 MiB of chunk data; stored raw, that serializes past 64 MiB
    (1.8.0 uploaded a 67109857-byte xorb of 1028 chunks for a 512 MiB random file)."""
    chunks = [os.urandom(MAX_CHUNK_BYTES) for _ in range(512)]
    body = build_xorb(chunks, scheme=SCHEME_RAW)
    assert len(body) == 64 * 1024 * 1024 + 512 * HEADER_SIZE
    assert len(parse_xorb(body, xorb_hash([(chunk_hash(c), len(c)) for c in chunks]))) == 512
