"""One upstream transfer of a mirrored file: how its first answer went, how far it got, and the
checks that let it resume (bytes left on disk by an earlier attempt, an upstream that ignores Range
and resends the whole file)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 1024 * 1024  # most bytes read from a part file at once

Hashers = Callable[[], "tuple[hashlib._Hash, hashlib._Hash | None]"]  # fresh sha256 and, for git blobs, sha1


class Started:
    """How a download's first answer went: bytes are on their way, or why none will come."""

    def __init__(self) -> None:
        self._answered = threading.Event()
        self._error: Exception | None = None

    def ok(self) -> None:
        self._answered.set()

    def fail(self, error: Exception) -> None:
        if not self._answered.is_set():
            self._error = error
            self._answered.set()

    def wait(self, timeout: float) -> None:
        """Until the first answer (at most `timeout` seconds); raises why no bytes will come."""
        if self._answered.wait(timeout) and self._error is not None:
            raise self._error


class Progress:
    """How far a download got, and the running hashes of the bytes so far."""

    def __init__(self, hashers: Hashers) -> None:
        self.hashers = hashers
        self.restart()

    def restart(self) -> None:
        self.offset = 0
        self.sha256, self.sha1 = self.hashers()

    def add(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)
        self.offset += len(chunk)


class Diverged(Exception):
    """An upstream resent the start of the file with other bytes than those already written."""


class Resent:
    """The start of a whole-file answer to a Range request: checked against the bytes we have, dropped."""

    def __init__(self, state: Progress) -> None:
        self.left = state.offset
        self.expected = state.sha256.copy().digest()
        self.hasher = hashlib.sha256()
        self.done = False

    def skip(self, chunk: bytes) -> bytes:
        """What of `chunk` comes after the bytes we have; raises Diverged if those differ."""
        head, rest = chunk[: self.left], chunk[self.left :]
        self.hasher.update(head)
        self.left -= len(head)
        if self.left == 0:
            if self.hasher.digest() != self.expected:
                raise Diverged("the upstream ignored Range and resent other bytes than those already written")
            self.done = True
        return rest


def hash_existing(out: BinaryIO, size: int, state: Progress) -> int:
    """Feed the bytes a previous attempt left in the part file to the hashers; returns the offset."""
    out.seek(0, os.SEEK_END)
    have = out.tell()
    if have > size:
        out.seek(0)
        out.truncate()
        return 0
    out.seek(0)
    remaining = have
    while remaining:
        chunk = out.read(min(CHUNK, remaining))
        if not chunk:
            break
        state.add(chunk)
        remaining -= len(chunk)
    return state.offset
