"""Appending a download to its part file in threads of its own, so receiving never waits for a write."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

PIPE_BYTES = 16 * 1024 * 1024  # received and hashed, not yet written: the network thread waits beyond this
SYNC_EVERY = 64 * 1024 * 1024  # written since the last flush to disk: the syncer thread starts another
# Readers are woken once this much was written since the last wake-up, or this long after it:
# big enough bites that serving costs little per byte, soon enough that a slow upstream still flows.
WAKE_BYTES = 512 * 1024
WAKE_INTERVAL = 0.002


class PartWriter:
    """Appends pieces to the part file in a thread of its own, so receiving never waits for a write.

    `put` queues a piece (blocking only while `PIPE_BYTES` are already queued) and raises the
    writer's error if a write failed. Leaving the `with` block writes everything queued, waits
    for the threads, and raises OSError if a write failed (then the part file lacks bytes that
    were hashed: the caller re-hashes what is on disk). Every `SYNC_EVERY` bytes another thread
    flushes the file to disk (`fdatasync`), in parallel with the writes.
    """

    def __init__(self, fd: int, offset: int, on_written: Callable[[], None]) -> None:
        self.fd = fd
        self.offset = offset  # where the next byte goes
        self.on_written = on_written
        self.error: OSError | None = None
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._closed = False
        self._cond = threading.Condition()
        self._synced = offset
        self._sync_cond = threading.Condition()
        self._woken, self._woken_at = offset, 0.0
        self._threads = [threading.Thread(target=self._write_loop, daemon=True, name="fetch-writer"),
                         threading.Thread(target=self._sync_loop, daemon=True, name="fetch-sync")]

    def __enter__(self) -> PartWriter:
        for thread in self._threads:
            thread.start()
        return self

    def put(self, piece: bytes) -> None:
        if not piece:
            return
        with self._cond:
            while self._pending_bytes >= PIPE_BYTES and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error
            self._pending.append(piece)
            self._pending_bytes += len(piece)
            self._cond.notify_all()

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._threads[0].join()
        with self._sync_cond:
            self._sync_cond.notify_all()
        self._threads[1].join()
        self.on_written()
        if self.error is not None and exc_info[0] is None:
            raise self.error

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                pieces = list(self._pending)  # all that is queued, in one system call
                self._pending.clear()
            size = sum(len(p) for p in pieces)
            try:
                _pwrite_all(self.fd, pieces, self.offset)
            except Exception as exc:  # noqa: BLE001 - the receiving thread must hear of any failure
                with self._cond:
                    self.error = exc if isinstance(exc, OSError) else OSError(f"writing the part file: {exc!r}")
                    self._pending.clear()
                    self._pending_bytes = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._pending_bytes -= size
                self._cond.notify_all()
            with self._sync_cond:
                self.offset += size
                if self.offset - self._synced >= SYNC_EVERY:
                    self._sync_cond.notify_all()
            now = time.monotonic()
            if self.offset - self._woken >= WAKE_BYTES or now - self._woken_at >= WAKE_INTERVAL:
                self._woken, self._woken_at = self.offset, now
                self.on_written()

    def _sync_loop(self) -> None:
        while True:
            with self._sync_cond:
                while self.offset - self._synced < SYNC_EVERY and self._threads[0].is_alive():
                    self._sync_cond.wait(timeout=1.0)
                if not self._threads[0].is_alive():
                    return  # the rest is flushed by whoever publishes the file
                target = self.offset
            try:
                os.fdatasync(self.fd)
            except OSError:  # only an optimisation: the publishing fsync reports real errors
                return
            with self._sync_cond:
                self._synced = target


def _pwrite_all(fd: int, pieces: list[bytes], offset: int) -> None:
    """Write `pieces` contiguously at `offset`, resuming after short writes."""
    first = 0
    while first < len(pieces):
        written = os.pwritev(fd, pieces[first:first + 1024], offset)  # at most IOV_MAX buffers a call
        if written <= 0:
            raise OSError("the part file accepts no more bytes")
        offset += written
        while first < len(pieces) and written >= len(pieces[first]):
            written -= len(pieces[first])
            first += 1
        if written:  # a short write inside a piece: the rest of it goes first next time
            pieces[first] = pieces[first][written:]
