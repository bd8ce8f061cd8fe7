"""Which chunks of which xorbs make up bytes a..b of a file (xet-protocol.md §2.2 "Building the answer").

The file's terms are trimmed to the requested window and the chunk ranges each xorb must serve are merged when
they overlap or touch (clients fail on unmerged overlapping ranges, e.g. a file of 300000 zero bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hubgate.xet.hashing import hash_to_str
from hubgate.xet.shard import ChunkIndex, Term
from hubgate.xet.xorb import ChunkEntry


class RangeNotSatisfiable(Exception):
    """The requested range starts at or after the end of the file (HTTP 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range starts at or after the end of the file ({size} bytes)")
        self.size = size


class StoredDataError(Exception):
    """The stored xorbs do not match what the file's terms say: a server-side fault, never the caller's."""


@dataclass
class FetchRange:
    chunk_start: int
    chunk_end: int  # exclusive
    byte_start: int  # in the serialized xorb
    byte_end: int  # inclusive


@dataclass
class Plan:
    offset_into_first_range: int
    terms: list[Term]
    fetch: dict[bytes, list[FetchRange]]


class Chunks:
    """A caching view of the stored chunk indexes a plan needs."""

    def __init__(self, index: ChunkIndex) -> None:
        self._index = index
        self._seen: dict[bytes, Sequence[ChunkEntry]] = {}

    def of(self, term: Term) -> Sequence[ChunkEntry]:
        """The chunks a term names, checked against its size."""
        entries = self._seen.get(term.xorb)
        if entries is None:
            found = self._index(term.xorb)
            if found is None:
                raise StoredDataError(f"xorb {hash_to_str(term.xorb)} is missing")
            entries = self._seen[term.xorb] = found
        chunks = entries[term.start : term.end]
        if len(chunks) != term.end - term.start or sum(c.unpacked_size for c in chunks) != term.unpacked_size:
            raise StoredDataError(f"xorb {hash_to_str(term.xorb)} disagrees with a term naming it")
        return chunks

    def byte_range(self, xorb: bytes, chunk_start: int, chunk_end: int) -> tuple[int, int]:
        """Serialized bytes from chunk_start's header to the last byte of chunk_end - 1 (inclusive)."""
        entries = self._seen[xorb]
        last = entries[chunk_end - 1]
        return entries[chunk_start].offset, last.offset + last.stored_size - 1


def file_size(terms: Sequence[Term]) -> int:
    return sum(term.unpacked_size for term in terms)


def window(terms: Sequence[Term], start: int, end: int | None) -> tuple[int, int]:
    """[start, stop) of the file for the inclusive request start..end (None: to the end); 416 past the end."""
    size = file_size(terms)
    if start < 0 or start >= size or (end is not None and end < start):
        raise RangeNotSatisfiable(size)
    return start, size if end is None else min(end + 1, size)


def trim(terms: Sequence[Term], chunks: Chunks, start: int, stop: int) -> tuple[int, list[Term]]:
    """The terms covering [start, stop), cut to the chunks that hold those bytes, and where `start` falls in the
    first kept chunk."""
    kept: list[Term] = []
    offset_into_first = 0
    position = 0  # file offset where the current term begins
    for term in terms:
        begins, position = position, position + term.unpacked_size
        if position <= start:
            continue
        if begins >= stop:
            break
        sizes = [chunk.unpacked_size for chunk in chunks.of(term)]
        first, head = 0, begins
        while head + sizes[first] <= start:  # leading chunks that end at or before the window
            head += sizes[first]
            first += 1
        last, tail = len(sizes), position
        while tail - sizes[last - 1] >= stop:  # trailing chunks that start at or after its end
            tail -= sizes[last - 1]
            last -= 1
        if not kept:
            offset_into_first = start - head
        kept.append(Term(term.xorb, tail - head, term.start + first, term.start + last))
    return offset_into_first, kept


def merged_ranges(terms: Sequence[Term], chunks: Chunks) -> dict[bytes, list[FetchRange]]:
    """Per xorb, the chunk ranges the terms use, sorted, with overlapping or touching ones merged."""
    spans: dict[bytes, list[tuple[int, int]]] = {}
    for term in terms:
        spans.setdefault(term.xorb, []).append((term.start, term.end))
    fetch: dict[bytes, list[FetchRange]] = {}
    for xorb, ranges in spans.items():
        merged: list[list[int]] = []
        for begin, end in sorted(ranges):
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([begin, end])
        fetch[xorb] = [FetchRange(begin, end, *chunks.byte_range(xorb, begin, end)) for begin, end in merged]
    return fetch


def plan(terms: Sequence[Term], index: ChunkIndex, start: int, end: int | None) -> Plan:
    """The reconstruction of bytes start..end (inclusive; None: to the end) of the file made of `terms`.

    RangeNotSatisfiable if start is at or past the end; StoredDataError if the stored xorbs disagree.
    """
    chunks = Chunks(index)
    offset, kept = trim(terms, chunks, *window(terms, start, end))
    return Plan(offset, kept, merged_ranges(kept, chunks))
