"""Shards (xet-protocol.md §4.3): a header, a file-info section and a xorb-info section of 48-byte entries.

`parse_shard` checks the structure only (whatever the input: a Shard or XetFormatError); `check_file` checks one
file against the stored xorb indexes (§2.2 "Shard upload").
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hubgate.xet.hashing import HASH_SIZE, Aggregator, hash_to_str, keyed_hash, str_to_hash, verification_hash
from hubgate.xet.xorb import MAX_XORB_CHUNKS, ChunkEntry, XetFormatError

TAG = bytes.fromhex("48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa9")  # "HFRepoMetaData\0"...
VERSION = 2
FOOTER_SIZE = 200
ENTRY = 48
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA = 1 << 30
BOOKEND = b"\xff" * HASH_SIZE + bytes(16)

_HEADER = struct.Struct("<32sQQ")
_FILE_HEADER = struct.Struct("<32sII8x")
_TERM = struct.Struct("<32sIIII")
_HASH_ENTRY = struct.Struct("<32s16x")  # verification entries and the metadata extension
_XORB_HEADER = struct.Struct("<32sIIII")
_XORB_CHUNK = struct.Struct("<32sII8x")


@dataclass(frozen=True)
class Term:
    xorb: bytes
    unpacked_size: int
    start: int  # chunk index in the xorb
    end: int  # exclusive


@dataclass(frozen=True)
class FileEntry:
    file_hash: bytes
    terms: tuple[Term, ...]
    verification: tuple[bytes, ...] | None
    sha256: str | None  # ordinary lowercase hex


@dataclass(frozen=True)
class XorbEntry:
    xorb: bytes
    chunks: tuple[tuple[bytes, int], ...]  # (chunk hash, unpacked size)


@dataclass(frozen=True)
class Shard:
    files: tuple[FileEntry, ...]
    xorbs: tuple[XorbEntry, ...]


ChunkIndex = Callable[[bytes], Sequence[ChunkEntry] | None]  # xorb hash -> its stored chunk index, None if unknown


class _Reader:
    """Reads 48-byte entries from body[at:limit], refusing counts the remaining bytes cannot hold."""

    def __init__(self, body: bytes, at: int, limit: int) -> None:
        self.body = body
        self.at = at
        self.limit = limit

    def room(self, entries: int, what: str) -> None:
        if entries * ENTRY > self.limit - self.at:
            raise XetFormatError(f"the shard is truncated: {what} at byte {self.at} runs past its end")

    def at_bookend(self) -> bool:
        self.room(1, "a section without its end marker")
        head = self.body[self.at : self.at + HASH_SIZE]
        if head != BOOKEND[:HASH_SIZE]:
            return False
        if self.body[self.at : self.at + ENTRY] != BOOKEND:
            raise XetFormatError(f"malformed section end marker at byte {self.at}")
        self.at += ENTRY
        return True

    def take(self, layout: struct.Struct) -> tuple[bytes, int, int, int, int]:
        fields = layout.unpack_from(self.body, self.at)
        self.at += ENTRY
        padded = (*fields, 0, 0, 0, 0)
        return padded[0], padded[1], padded[2], padded[3], padded[4]


def _file(reader: _Reader) -> FileEntry:
    at = reader.at
    fhash, flags, n_entries, _, _ = reader.take(_FILE_HEADER)
    if flags & ~(FLAG_VERIFICATION | FLAG_METADATA):
        raise XetFormatError(f"file entry at byte {at} has unknown flags {flags:#x}")
    if n_entries == 0:
        raise XetFormatError(f"file entry at byte {at} has no terms")
    with_verification = bool(flags & FLAG_VERIFICATION)
    reader.room(n_entries * (2 if with_verification else 1) + bool(flags & FLAG_METADATA), "a file entry")
    terms = []
    for _ in range(n_entries):
        xorb, _cas_flags, unpacked, start, end = reader.take(_TERM)
        if not start < end or end - start > MAX_XORB_CHUNKS or unpacked == 0:
            raise XetFormatError(f"file {hash_to_str(fhash)} has an invalid term (chunks {start}..{end}, {unpacked} bytes)")
        terms.append(Term(xorb, unpacked, start, end))
    verification = tuple(reader.take(_HASH_ENTRY)[0] for _ in range(n_entries)) if with_verification else None
    sha256 = hash_to_str(reader.take(_HASH_ENTRY)[0]) if flags & FLAG_METADATA else None
    return FileEntry(fhash, tuple(terms), verification, sha256)


def _xorb(reader: _Reader) -> XorbEntry:
    at = reader.at
    xorb, _flags, n_chunks, _in_xorb, _on_disk = reader.take(_XORB_HEADER)
    if not 0 < n_chunks <= MAX_XORB_CHUNKS:
        raise XetFormatError(f"xorb entry at byte {at} lists {n_chunks} chunks")
    reader.room(n_chunks, "a xorb entry")
    chunks = []
    for _ in range(n_chunks):
        chash, _range_start, unpacked, _, _ = reader.take(_XORB_CHUNK)
        chunks.append((chash, unpacked))
    return XorbEntry(xorb, tuple(chunks))


def parse_shard(body: bytes) -> Shard:
    """The files and xorbs a shard describes; XetFormatError if it is malformed."""
    if len(body) < _HEADER.size:
        raise XetFormatError("the shard is shorter than its header")
    tag, version, footer_size = _HEADER.unpack_from(body, 0)
    if tag != TAG:
        raise XetFormatError("not a shard (wrong header tag)")
    if version != VERSION:
        raise XetFormatError(f"unsupported shard version {version}")
    if footer_size not in (0, FOOTER_SIZE) or len(body) < _HEADER.size + footer_size:
        raise XetFormatError(f"unsupported shard footer size {footer_size}")
    limit = len(body) - footer_size
    if footer_size == 0 and (limit - _HEADER.size) % ENTRY:
        raise XetFormatError("the shard's length is not a whole number of entries")
    reader = _Reader(body, _HEADER.size, limit)
    files = []
    while not reader.at_bookend():
        files.append(_file(reader))
    xorbs = []
    while not reader.at_bookend():
        xorbs.append(_xorb(reader))
    if footer_size == 0 and reader.at != limit:
        raise XetFormatError("the shard has bytes after its xorb section")
    return Shard(tuple(files), tuple(xorbs))


def _pack_file(entry: FileEntry) -> bytes:
    flags = (FLAG_VERIFICATION if entry.verification is not None else 0) | (FLAG_METADATA if entry.sha256 else 0)
    parts = [_FILE_HEADER.pack(entry.file_hash, flags, len(entry.terms))]
    parts += [_TERM.pack(t.xorb, 0, t.unpacked_size, t.start, t.end) for t in entry.terms]
    parts += [_HASH_ENTRY.pack(h) for h in entry.verification or ()]
    if entry.sha256:
        parts.append(_HASH_ENTRY.pack(str_to_hash(entry.sha256)))
    return b"".join(parts)


def _pack_xorb(entry: XorbEntry) -> bytes:
    total = sum(size for _, size in entry.chunks)
    parts = [_XORB_HEADER.pack(entry.xorb, 0, len(entry.chunks), total, 0)]
    offset = 0
    for chash, size in entry.chunks:
        parts.append(_XORB_CHUNK.pack(chash, offset, size))
        offset += size
    return b"".join(parts)


def build_shard(files: Sequence[FileEntry], xorbs: Sequence[XorbEntry]) -> bytes:
    """Serialize a shard as a client uploads it (footer_size 0)."""
    return b"".join([_HEADER.pack(TAG, VERSION, 0), *map(_pack_file, files), BOOKEND, *map(_pack_xorb, xorbs), BOOKEND])


_FOOTER = struct.Struct("<9Q32sQQ48xQQQQ")
_LOOKUP = struct.Struct("<QI")  # file and xorb lookup tables: truncated hash, entry index
_CHUNK_LOOKUP = struct.Struct("<QII")  # truncated keyed chunk hash, xorb entry index, chunk ordinal


def _truncated(h: bytes) -> int:
    return int.from_bytes(h[:8], "little")


def build_dedup_shard(xorbs: Sequence[XorbEntry], key: bytes, created: int, expiry: int) -> bytes:
    """The answer to a global dedup query (GET /v1/chunks/...): a complete shard, footer and lookup tables included,
    listing `xorbs` (raw chunk hashes, as stored) with each chunk hash replaced by BLAKE3 keyed with `key`.

    `key` (32 random bytes, not all zero) keeps the response from revealing raw chunk hashes: a client can only
    match chunks it holds. `created` and `expiry` are Unix seconds; the client forgets the shard after `expiry`.
    """
    if len(key) != HASH_SIZE or key == bytes(HASH_SIZE):
        raise ValueError("the dedup key is 32 bytes, not all zero")
    ordered = sorted(xorbs, key=lambda x: (_truncated(x.xorb), x.xorb))
    keyed = [XorbEntry(x.xorb, tuple((keyed_hash(key, h), size) for h, size in x.chunks)) for x in ordered]
    xorb_info = [_pack_xorb(x) for x in keyed]
    xorb_lookup, chunk_lookup = [], []
    index = 0  # in 48-byte entries from the start of the xorb section
    for entry in keyed:
        xorb_lookup.append(_LOOKUP.pack(_truncated(entry.xorb), index))
        chunk_lookup += [(_truncated(h), index, ordinal) for ordinal, (h, _) in enumerate(entry.chunks)]
        index += 1 + len(entry.chunks)
    chunk_lookup.sort(key=lambda row: row[0])
    file_info_offset = _HEADER.size
    xorb_info_offset = file_info_offset + ENTRY
    lookup_offset = xorb_info_offset + sum(map(len, xorb_info)) + ENTRY
    chunk_lookup_offset = lookup_offset + len(xorb_lookup) * _LOOKUP.size
    footer_offset = chunk_lookup_offset + len(chunk_lookup) * _CHUNK_LOOKUP.size
    stored = sum(size for x in xorbs for _, size in x.chunks)
    footer = _FOOTER.pack(
        1, file_info_offset, xorb_info_offset, lookup_offset, 0, lookup_offset, len(xorb_lookup),
        chunk_lookup_offset, len(chunk_lookup), key, created, expiry, 0, 0, stored, footer_offset,
    )  # fmt: skip
    return b"".join([
        _HEADER.pack(TAG, VERSION, FOOTER_SIZE), BOOKEND, *xorb_info, BOOKEND, *xorb_lookup,
        *(_CHUNK_LOOKUP.pack(*row) for row in chunk_lookup), footer,
    ])  # fmt: skip


def check_xorb(entry: XorbEntry, stored: Sequence[ChunkEntry] | None) -> None:
    """A shard's xorb section entry must agree with the stored xorb's chunk index."""
    if stored is None:
        raise XetFormatError(f"the shard lists xorb {hash_to_str(entry.xorb)}, which was not uploaded")
    if list(entry.chunks) != [(chunk.hash, chunk.unpacked_size) for chunk in stored]:
        raise XetFormatError(f"the shard's chunk list for xorb {hash_to_str(entry.xorb)} disagrees with the xorb")


def check_file(entry: FileEntry, index: ChunkIndex) -> int:
    """Check one file against the stored xorb indexes and return its size; XetFormatError on any failure.

    The verification entries are required: they prove the uploader holds the chunks of each xorb it reuses.
    """
    name = hash_to_str(entry.file_hash)
    if entry.verification is None or len(entry.verification) != len(entry.terms):
        raise XetFormatError(f"file {name} lacks its verification entries")
    hasher = Aggregator()  # bounded memory, however many chunks the file claims
    size = 0
    for term, proof in zip(entry.terms, entry.verification, strict=True):
        chunks = index(term.xorb)
        xorb = hash_to_str(term.xorb)
        if chunks is None:
            raise XetFormatError(f"file {name} uses xorb {xorb}, which was not uploaded")
        if not 0 <= term.start < term.end <= len(chunks):
            raise XetFormatError(f"file {name} uses chunks {term.start}..{term.end} of xorb {xorb}, which has {len(chunks)}")
        used = chunks[term.start : term.end]
        if sum(chunk.unpacked_size for chunk in used) != term.unpacked_size:
            raise XetFormatError(f"file {name}: a term's size disagrees with chunks {term.start}..{term.end} of xorb {xorb}")
        if verification_hash([chunk.hash for chunk in used]) != proof:
            raise XetFormatError(f"file {name}: wrong verification hash for chunks {term.start}..{term.end} of xorb {xorb}")
        for chunk in used:
            hasher.add(chunk.hash, chunk.unpacked_size)
        size += term.unpacked_size
    actual = hasher.file_hash()
    if actual != entry.file_hash:
        raise XetFormatError(f"file {name}: the hash of its chunks is {hash_to_str(actual)}")
    return size
