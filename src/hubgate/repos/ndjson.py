"""NDJSON lines read from a spooled request body, one way whatever their size.

A commit line may carry a file of hundreds of megabytes as one base64 JSON string. Every line is
scanned the same way: its structure (everything but long strings) is copied, each JSON string
longer than `LONG_STRING` is replaced by a placeholder that points back into the spool, and the
copy is parsed with `json.loads`. So a long line and a short one with the same content give the
same result (duplicate keys included: the last one wins), and a long string is only ever read in
slices.
"""

from __future__ import annotations

import codecs
import json
import mmap
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hubgate.errors import BadRequest

LONG_STRING = 64 * 1024  # raw bytes of a JSON string kept in the spool rather than parsed
MAX_STRUCTURE = 16 * 1024 * 1024  # a line's bytes outside its long strings, held in memory
MAX_MATERIALIZED = 16 * 1024 * 1024  # a long string read into memory when a field needs its text
SLICE = 4 * 1024 * 1024
# Bytes a slice may have to end earlier so as not to split an escape (6) or a UTF-8 character (4).
_MAX_BACKTRACK = 12

# The rest of a JSON string after its opening quote, closing quote included, as json.loads
# accepts it: no raw control character, only valid escapes.
_STRING_REST = re.compile(rb'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"')
_RAW_CONTROL = re.compile(rb"[\x00-\x1f]")


def malformed(reason: str) -> BadRequest:
    return BadRequest(f"Malformed NDJSON line: {reason}")


@dataclass(frozen=True)
class Span:
    """The raw bytes between the quotes of a long JSON string, in the spool."""

    start: int
    end: int
    escaped: bool  # holds backslash escapes (then already validated)

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class Line:
    """One parsed line: `item` as json.loads would give it, long strings as placeholders."""

    item: Any
    spool: mmap.mmap
    marker: str
    spans: list[Span]
    used: set[int] = field(default_factory=set)

    def span(self, value: object) -> Span | None:
        """The long string a value stands for, or None for any other value."""
        if isinstance(value, str) and value.startswith(self.marker):
            index = int(value[len(self.marker) :])
            self.used.add(index)
            return self.spans[index]
        return None

    def text(self, value: object, what: str) -> object:
        """`value` with a long string read into memory (it must be short enough to be of use)."""
        span = self.span(value)
        if span is None:
            return value
        if span.size > MAX_MATERIALIZED:
            raise BadRequest(f"{what} is too long")
        return _decode(self.spool[span.start - 1 : span.end + 1])

    def pieces(self, value: str | Span) -> Iterator[str]:
        """The text of a string in slices: the string itself, or a long one read from the spool.

        A long string without escapes is passed on byte for byte (as Latin-1: whoever reads it
        refuses what is not in its alphabet); one with escapes is decoded a slice at a time, each
        slice ending between two escape sequences and characters.
        """
        if isinstance(value, str):
            yield value
            return
        start = value.start
        while start < value.end:
            end = min(start + SLICE, value.end)
            if not value.escaped:
                yield self.spool[start:end].decode("latin-1")
                start = end
                continue
            for _attempt in range(_MAX_BACKTRACK):
                try:
                    text = _decode(b'"' + self.spool[start:end] + b'"', partial=end < value.end)
                    break
                except BadRequest:
                    if end == value.end or end <= start + 1:
                        raise
                    end -= 1
            else:
                raise malformed("invalid string")
            yield text
            start = end

    def check_unused(self) -> None:
        """Long strings no field read must still be valid JSON strings (as json.loads demands)."""
        for index, span in enumerate(self.spans):
            if index in self.used or span.escaped:
                continue
            if _RAW_CONTROL.search(self.spool, span.start, span.end):
                raise malformed("control character in a string")
            decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                for offset in range(span.start, span.end, SLICE):
                    decoder.decode(self.spool[offset : min(offset + SLICE, span.end)])
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise malformed(str(exc)) from exc


def _decode(raw: bytes, partial: bool = False) -> str:
    """A JSON string literal (quotes included) to text."""
    try:
        text = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise malformed("invalid string" if partial else str(exc)) from exc
    if not isinstance(text, str):
        raise malformed("invalid string")
    return text


def lines(spool: mmap.mmap) -> Iterator[Line]:
    """Each non-blank line of the spool, parsed."""
    pos, end = 0, len(spool)
    while pos < end:
        newline = spool.find(b"\n", pos)
        line_end = end if newline == -1 else newline
        line = _parse(spool, pos, line_end)
        if line is not None:
            yield line
        pos = line_end + 1


def _keep(parts: list[bytes], spool: mmap.mmap, start: int, end: int, kept: int) -> int:
    """Copy spool[start:end] into the structure of a line, within MAX_STRUCTURE bytes."""
    if kept + end - start > MAX_STRUCTURE:
        raise malformed(f"more than {MAX_STRUCTURE} bytes outside file contents")
    parts.append(spool[start:end])
    return end - start


def _parse(spool: mmap.mmap, start: int, end: int) -> Line | None:
    marker = f"\x00hubgate-{secrets.token_hex(8)}:"
    placeholder = json.dumps(marker)[1:-1].encode()  # the marker as a JSON string body
    parts: list[bytes] = []
    spans: list[Span] = []
    kept = 0
    # A line this short holds no long string: its structure is the line itself.
    pos = end if end - start <= LONG_STRING else start
    if pos == end:
        parts.append(spool[start:end])
    while pos < end:
        quote = spool.find(b'"', pos, end)
        if quote == -1:
            _keep(parts, spool, pos, end, kept)
            break
        close = spool.find(b'"', quote + 1, end)
        backslash = spool.find(b"\\", quote + 1, close) if close != -1 else -1
        if close == -1 or backslash != -1:  # escapes: validate the string as json.loads would
            found = _STRING_REST.match(spool, quote + 1, end)
            if found is None:
                raise malformed("unterminated or invalid string")
            close = found.end() - 1
        if close - quote - 1 > LONG_STRING:
            kept += _keep(parts, spool, pos, quote + 1, kept)
            parts.append(placeholder + str(len(spans)).encode() + b'"')
            spans.append(Span(quote + 1, close, escaped=backslash != -1))
        else:
            kept += _keep(parts, spool, pos, close + 1, kept)
        pos = close + 1
    structure = b"".join(parts)
    if not structure.strip():
        return None
    try:
        item = json.loads(structure)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise malformed(str(exc)) from exc
    except RecursionError as exc:
        raise malformed("nested too deeply") from exc
    return Line(item, spool, marker, spans)
