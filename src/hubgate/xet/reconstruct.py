"""A file's plain bytes from its terms and the stored xorbs (server-side reconstruction, for GET /resolve)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from hubgate.xet.hashing import chunk_hash, hash_to_str
from hubgate.xet.plan import Chunks, StoredDataError, trim, window
from hubgate.xet.shard import ChunkIndex, Term
from hubgate.xet.xorb import XetFormatError, decode_views

# read(xorb hash, first byte, last byte inclusive) -> the serialized xorb's bytes in that range, in pieces
ReadXorb = Callable[[bytes, int, int], Iterator[bytes]]


def _term_chunks(term: Term, chunks: Chunks, read: ReadXorb, check: bool = True) -> Iterator[bytes | memoryview]:
    """The uncompressed chunks of one term (raw ones as views of what `read` gave), each checked against the stored
    index: its size, and its hash unless `check` is False."""
    entries = chunks.of(term)
    name = hash_to_str(term.xorb)
    first, last = chunks.byte_range(term.xorb, term.start, term.end)
    count = 0
    try:
        for data in decode_views(read(term.xorb, first, last)):
            if (count == len(entries) or len(data) != entries[count].unpacked_size
                    or (check and chunk_hash(data) != entries[count].hash)):
                raise StoredDataError(f"xorb {name} is damaged (chunk {term.start + count})")
            count += 1
            yield data
    except XetFormatError as exc:
        raise StoredDataError(f"xorb {name} is damaged: {exc}") from exc
    if count != len(entries):
        raise StoredDataError(f"xorb {name} is short of chunk {term.start + count}")


def file_bytes(terms: Sequence[Term], index: ChunkIndex, read: ReadXorb, start: int, end: int | None) -> Iterator[bytes]:
    """Bytes start..end (inclusive; None: to the end) of the file made of `terms`, in pieces of at most one chunk.

    Reads one term's xorb range at a time and holds at most one chunk record plus one piece from `read`.
    RangeNotSatisfiable (raised at once, before any byte) if start is at or past the end of the file;
    StoredDataError while iterating if a xorb is missing or damaged.
    """
    begin, stop = window(terms, start, end)
    return _stream(terms, index, read, begin, stop)


def _stream(terms: Sequence[Term], index: ChunkIndex, read: ReadXorb, begin: int, stop: int) -> Iterator[bytes]:
    chunks = Chunks(index)
    skip, kept = trim(terms, chunks, begin, stop)
    remaining = stop - begin
    for term in kept:
        for data in _term_chunks(term, chunks, read):
            piece = data[skip:remaining + skip] if skip or len(data) > remaining else data
            skip = 0
            remaining -= len(piece)
            yield piece if isinstance(piece, bytes) else bytes(piece)
            if remaining == 0:
                return


class Digest(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


def digest_file(terms: Sequence[Term], index: ChunkIndex, read: ReadXorb, digest: Digest) -> None:
    """Feed the whole file made of `terms` to `digest` (a hashlib object), decoded where it lies: raw records are hashed
    in place, without a copy, and chunks are not checked against their BLAKE3 hashes again (each was when its xorb was
    uploaded, and `hubgate fsck` scrubs them since): a damaged xorb gives the digest of other bytes, which the caller
    compares with the one it expects. StoredDataError if the records disagree with the index in number or sizes."""
    chunks = Chunks(index)
    for term in terms:
        for data in _term_chunks(term, chunks, read, check=False):
            digest.update(data)
