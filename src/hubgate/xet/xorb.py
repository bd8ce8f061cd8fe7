"""Xorbs (xet-protocol.md §4.1-§4.2): chunk records back to back, each an 8-byte header and a payload.

`parse_xorb` validates an uploaded body completely; whatever the input, it either returns the chunk index or
raises XetFormatError with a message that is safe to show the client.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import lz4.frame
import numpy as np

from hubgate.xet.hashing import HASH_SIZE, chunk_hash, hash_to_str, xorb_hash

MAX_XORB_CHUNKS = 8192
MAX_CHUNK_BYTES = 131072  # the chunker's maximum (§3.2)
HEADER_SIZE = 8
# hf_xet caps a xorb's chunk data at 64 MiB, not its serialized form: incompressible chunks are stored
# raw, so a full xorb serializes to 64 MiB plus a header per chunk (1.8.0 sent 67109857 bytes).
MAX_XORB_BYTES = 64 * 1024 * 1024 + HEADER_SIZE * MAX_XORB_CHUNKS

SCHEME_RAW = 0
SCHEME_LZ4 = 1
SCHEME_BG4_LZ4 = 2
_SCHEMES = (SCHEME_RAW, SCHEME_LZ4, SCHEME_BG4_LZ4)

_INDEX_ENTRY = struct.Struct(f"<{HASH_SIZE}sIII")


class XetFormatError(ValueError):
    """Malformed Xet data; the message is safe to show to the client that sent it."""


@dataclass(frozen=True)
class ChunkEntry:
    hash: bytes
    unpacked_size: int
    offset: int  # where the chunk's 8-byte header starts in the serialized xorb
    stored_size: int  # 8 + compressed length


def _header(data: bytes | bytearray | memoryview, at: int, where: int | None = None) -> tuple[int, int, int]:
    """(compressed length, scheme, uncompressed length) of the record header at `at` (at `where` in the whole
    upload, for messages; `at` by default), validated."""
    if where is None:
        where = at
    if len(data) - at < HEADER_SIZE:
        raise XetFormatError(f"truncated chunk header at byte {where}")
    version = data[at]
    compressed = int.from_bytes(data[at + 1 : at + 4], "little")
    scheme = data[at + 4]
    unpacked = int.from_bytes(data[at + 5 : at + 8], "little")
    if version != 0:
        raise XetFormatError(f"unsupported chunk record version {version} at byte {where}")
    if scheme not in _SCHEMES:
        raise XetFormatError(f"unsupported compression scheme {scheme} at byte {where}")
    if not 0 < unpacked <= MAX_CHUNK_BYTES:
        raise XetFormatError(f"chunk at byte {where} declares {unpacked} bytes (1..{MAX_CHUNK_BYTES} allowed)")
    if compressed == 0 or (scheme == SCHEME_RAW and compressed != unpacked):
        raise XetFormatError(f"chunk at byte {where} declares a compressed length of {compressed}")
    return compressed, scheme, unpacked


def _lz4(payload: bytes | bytearray | memoryview, unpacked: int, at: int) -> bytes:
    """Decompress one LZ4 frame, never producing more than `unpacked` bytes."""
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(bytes(payload), max_length=unpacked)
    except (RuntimeError, ValueError, MemoryError, OverflowError) as exc:
        raise XetFormatError(f"chunk at byte {at}: not a valid LZ4 frame") from exc
    if len(out) != unpacked or not decompressor.eof or decompressor.unused_data:
        raise XetFormatError(f"chunk at byte {at} does not decompress to exactly its declared {unpacked} bytes")
    return out


def _bg4_join(grouped: bytes) -> bytes:
    """Undo the byte grouping: byte i of the data is the next byte of group i mod 4."""
    n = len(grouped)
    source = np.frombuffer(grouped, dtype=np.uint8)
    out = np.empty(n, dtype=np.uint8)
    base, extra = divmod(n, 4)
    at = 0
    for group in range(4):
        size = base + (1 if group < extra else 0)
        out[group::4] = source[at : at + size]
        at += size
    return out.tobytes()


def _compress(data: bytes) -> bytes:
    """An LZ4 frame shaped as hf_xet writes them: independent 64 KiB blocks, no content size, no checksums."""
    return lz4.frame.compress(data, block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False, store_size=False)


def _bg4_split(data: bytes) -> bytes:
    """Group the bytes: every 4th byte from 0, then from 1, 2 and 3."""
    source = np.frombuffer(data, dtype=np.uint8)
    return np.concatenate([source[group::4] for group in range(4)]).tobytes()


def _decode(data: bytes | bytearray | memoryview, at: int) -> tuple[bytes | memoryview, int, int]:
    """The uncompressed bytes of the record at `at` (a raw one's as a view when `data` is a memoryview), its scheme,
    and where the next record starts."""
    compressed, scheme, unpacked = _header(data, at)
    start = at + HEADER_SIZE
    end = start + compressed
    if end > len(data):
        raise XetFormatError(f"chunk at byte {at} runs past the end of the data")
    payload = data[start:end]
    if scheme == SCHEME_RAW:
        return payload if isinstance(payload, memoryview | bytes) else bytes(payload), scheme, end
    out = _lz4(payload, unpacked, at)
    return (_bg4_join(out) if scheme == SCHEME_BG4_LZ4 else out), scheme, end


Sink = Callable[[bytes | memoryview], None]


class XorbReader:
    """An uploaded xorb checked as it arrives, in pieces of any size, within the limits.

    Each record is validated and decoded once and its chunk hashed; the bytes this server stores for it go to `sink`
    in order. Raw records are kept as sent: their header says nothing but the length twice (checked equal) and their
    payload is the chunk itself, so there is nothing a decoder could read two ways; a run of them reaches the sink as
    one view of the piece it arrived in (no copy). Compressed chunks are compressed again in the scheme the client
    chose (raw where that is not smaller). The xorb hash covers the chunks, not their encoding, and LZ4 decoders
    disagree on some malformed streams (a match offset of 0 copies whatever the decoder's buffer holds): storing the
    uploader's LZ4 frames as they came would let one client store, under a xorb hash others will upload too, bytes that
    only decode right here. Holds at most one record split between pieces; `finish` checks the xorb hash and returns
    the chunk index of the stored bytes. XetFormatError, with a message safe to show the client, on anything wrong.
    """

    def __init__(self, sink: Sink | None = None) -> None:
        self._sink = sink
        self._rest = bytearray()  # a record begun in an earlier piece
        self._rest_at = 0  # where it starts in the upload
        self._received = 0
        self._stored = 0  # bytes passed to the sink: where the next record lands
        self.entries: list[ChunkEntry] = []

    def feed(self, piece: bytes) -> None:
        origin = self._received  # where `piece` starts in the upload
        self._received += len(piece)
        if self._received > MAX_XORB_BYTES:
            raise XetFormatError(f"the xorb exceeds {MAX_XORB_BYTES} bytes")
        view = memoryview(piece)
        at = 0
        while self._rest and at < len(view):  # complete the record begun before
            take = _wanted(self._rest, 0, self._rest_at) - len(self._rest)
            self._rest += view[at : at + take]
            at = min(at + take, len(view))
            if len(self._rest) > HEADER_SIZE and len(self._rest) == _wanted(self._rest, 0, self._rest_at):
                record = bytes(self._rest)
                self._rest.clear()
                self._record(memoryview(record), 0, len(record), self._rest_at, keep=record)
        if self._rest:
            return
        run = at  # a run of raw records, passed on as one view
        while len(view) - at >= HEADER_SIZE:
            end = at + _wanted(view, at, origin)
            if end > len(view):
                break
            if view[at + 4] != SCHEME_RAW:  # re-encoded: the raw records before it go first
                if run < at:
                    self._emit(view[run:at])
                run = end
            self._record(view, at, end, origin + at)
            at = end
        if run < at:
            self._emit(view[run:at])
        self._rest += view[at:]
        self._rest_at = origin + at

    def _record(self, data: memoryview, at: int, end: int, where: int, keep: bytes | None = None) -> None:
        """Check and index the whole record data[at:end] (at `where` in the upload). A raw one is kept as sent (left to
        the caller to pass on, unless `keep` is given); a compressed one's re-encoding goes to the sink."""
        if len(self.entries) == MAX_XORB_CHUNKS:
            raise XetFormatError(f"the xorb holds more than {MAX_XORB_CHUNKS} chunks")
        _, scheme, unpacked = _header(data, at, where)
        payload = data[at + HEADER_SIZE : end]
        if scheme == SCHEME_RAW:
            self.entries.append(ChunkEntry(chunk_hash(payload), unpacked, self._stored, end - at))
            self._stored += end - at
            if keep is not None:
                self._emit(keep)
            return
        out = _lz4(payload, unpacked, where)
        chunk = _bg4_join(out) if scheme == SCHEME_BG4_LZ4 else out
        record = _record(scheme, _compress(out), unpacked)
        if len(record) - HEADER_SIZE >= unpacked:
            record = _record(SCHEME_RAW, chunk, unpacked)
        self.entries.append(ChunkEntry(chunk_hash(chunk), unpacked, self._stored, len(record)))
        self._stored += len(record)
        self._emit(record)

    def _emit(self, data: bytes | memoryview) -> None:
        if self._sink is not None:
            self._sink(data)

    def finish(self, expected_hash: bytes) -> list[ChunkEntry]:
        if not self._received:
            raise XetFormatError("the xorb is empty")
        if self._rest:
            if len(self._rest) < HEADER_SIZE:
                raise XetFormatError(f"truncated chunk header at byte {self._rest_at}")
            raise XetFormatError(f"chunk at byte {self._rest_at} runs past the end of the data")
        _check_hash(self.entries, expected_hash)
        return self.entries


def _check_hash(entries: Sequence[ChunkEntry], expected_hash: bytes) -> None:
    actual = xorb_hash([(entry.hash, entry.unpacked_size) for entry in entries])
    if actual != expected_hash:
        raise XetFormatError(f"the xorb's contents hash to {hash_to_str(actual)}, not {hash_to_str(expected_hash)}")


def parse_xorb(body: bytes, expected_hash: bytes) -> list[ChunkEntry]:
    """Validate an uploaded xorb and return the chunk index of the bytes this server stores for it (canonical_xorb);
    XetFormatError on anything wrong."""
    reader = XorbReader()
    reader.feed(body)
    return reader.finish(expected_hash)


def canonical_xorb(body: bytes, expected_hash: bytes) -> tuple[bytes, list[ChunkEntry]]:
    """Validate an uploaded xorb (XorbReader) and return the bytes this server stores for it, with their index."""
    parts: list[bytes | memoryview] = []
    reader = XorbReader(parts.append)
    reader.feed(body)
    entries = reader.finish(expected_hash)
    return b"".join(parts), entries


def _wanted(data: bytes | bytearray | memoryview, at: int, where: int | None = None) -> int:
    """The bytes the record at `at` needs to be decoded: its header while that is incomplete, then the whole record."""
    if len(data) - at < HEADER_SIZE:
        return HEADER_SIZE
    return HEADER_SIZE + _header(data, at, where)[0]


def decode_views(pieces: Iterable[bytes]) -> Iterator[bytes | memoryview]:
    """Consecutive chunk records, arriving in pieces of any size, as their uncompressed bytes: a raw record's as a view
    of the piece it lies in (no copy; pieces are bytes, which never change).

    Records are decoded where they lie in a piece; only a record split between pieces is copied (to join its parts).
    Holds at most one record plus one piece in memory.
    """
    rest = b""  # the beginning of a record whose end is in a later piece
    for piece in pieces:
        at = 0
        while rest and at < len(piece):  # complete it from the front of this piece
            take = _wanted(rest, 0) - len(rest)
            rest += piece[at : at + take]
            at = min(at + take, len(piece))
            if len(rest) > HEADER_SIZE and len(rest) == _wanted(rest, 0):  # a record is never its header alone
                yield _decode(rest, 0)[0]
                rest = b""
        if rest:
            continue
        view = memoryview(piece)
        while len(view) - at >= _wanted(view, at):
            chunk, _, at = _decode(view, at)
            yield chunk
        rest = piece[at:]
    if rest:
        raise XetFormatError("the chunk data ends in the middle of a record")


def decode_stream(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """decode_views, every chunk as bytes."""
    for chunk in decode_views(pieces):
        yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def decode_chunk_records(data: bytes) -> Iterator[bytes]:
    """Consecutive chunk records -> their uncompressed bytes."""
    return decode_stream([data])


def _encode(chunk: bytes, scheme: int) -> tuple[bytes, bytes]:
    """(header, payload) of a chunk record in the given scheme."""
    if not 0 < len(chunk) <= MAX_CHUNK_BYTES:
        raise ValueError(f"a chunk has 1..{MAX_CHUNK_BYTES} bytes")
    if scheme == SCHEME_RAW:
        payload = chunk
    elif scheme == SCHEME_LZ4:
        payload = _compress(chunk)
    elif scheme == SCHEME_BG4_LZ4:
        payload = _compress(_bg4_split(chunk))
    else:
        raise ValueError(f"unknown compression scheme {scheme}")
    return _header_bytes(scheme, len(payload), len(chunk)), payload


def _header_bytes(scheme: int, stored: int, unpacked: int) -> bytes:
    return bytes([0]) + stored.to_bytes(3, "little") + bytes([scheme]) + unpacked.to_bytes(3, "little")


def _record(scheme: int, payload: bytes, unpacked: int) -> bytes:
    """A whole chunk record: header and payload."""
    return _header_bytes(scheme, len(payload), unpacked) + payload


def encode_record(chunk: bytes, scheme: int = SCHEME_LZ4) -> bytes:
    """One chunk record in the given scheme (no fallback to raw: the caller chooses)."""
    header, payload = _encode(chunk, scheme)
    return header + payload


def build_xorb(chunks: Sequence[bytes], scheme: int = SCHEME_LZ4) -> bytes:
    """Serialize chunks as an uploaded xorb (records back to back, no footer)."""
    return b"".join(encode_record(chunk, scheme) for chunk in chunks)


def pack_index(entries: Sequence[ChunkEntry]) -> bytes:
    """A compact form of a chunk index, for the database (44 bytes per chunk)."""
    return b"".join(_INDEX_ENTRY.pack(e.hash, e.unpacked_size, e.offset, e.stored_size) for e in entries)


def unpack_index(data: bytes) -> list[ChunkEntry]:
    return list(IndexView(data))


class IndexView(Sequence[ChunkEntry]):
    """A packed chunk index read in place: an entry is decoded only when asked for, so a plan or a check that needs a
    few chunks of a large xorb does not decode its thousands."""

    def __init__(self, data: bytes) -> None:
        if len(data) % _INDEX_ENTRY.size:
            raise XetFormatError("a packed chunk index has a partial entry")
        self._data = data

    def __len__(self) -> int:
        return len(self._data) // _INDEX_ENTRY.size

    def __iter__(self) -> Iterator[ChunkEntry]:
        return (ChunkEntry(*fields) for fields in _INDEX_ENTRY.iter_unpack(self._data))

    @overload
    def __getitem__(self, at: int) -> ChunkEntry: ...

    @overload
    def __getitem__(self, at: slice) -> list[ChunkEntry]: ...

    def __getitem__(self, at: int | slice) -> ChunkEntry | list[ChunkEntry]:
        size = _INDEX_ENTRY.size
        if isinstance(at, slice):
            start, stop, step = at.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            packed = self._data[start * size : max(start, stop) * size]
            return [ChunkEntry(*fields) for fields in _INDEX_ENTRY.iter_unpack(packed)]
        index = at + len(self) if at < 0 else at
        if not 0 <= index < len(self):
            raise IndexError("chunk index out of range")
        return ChunkEntry(*_INDEX_ENTRY.unpack_from(self._data, index * size))
