"""Cache hits, misses and recency, counted in memory and written to the database in batches.

A warm hit used to cost two database writes (a counter and the file's `last_access`). Now each
process adds them up here and writes them at most `FLUSH_SECONDS` later in one transaction (from a
background thread), and at once before it reads the shared counters or picks eviction victims
itself, and when it closes. What other processes and replicas counted reaches the shared totals
within `FLUSH_SECONDS`; least-recently-used order is as coarse. A process killed outright loses
at most its last `FLUSH_SECONDS` of hits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("hubgate.mirror")

FLUSH_SECONDS = 1.0
Write = Callable[[dict[str, int], dict[str, float]], None]


class AccessTally:
    def __init__(self, write: Write, interval: float = FLUSH_SECONDS) -> None:
        """`write(counts, touched)`: add `counts` to the shared counters and move each touched file's
        `last_access` forward to the time given."""
        self._write = write
        self._interval = interval
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._touched: dict[str, float] = {}
        self._pending = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, oid: str, hit: bool) -> None:
        name = "hits" if hit else "misses"
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            if hit:
                self._touched[oid] = time.time()
            if self._thread is None and not self._closed.is_set():  # started on first use: never before a fork
                self._thread = threading.Thread(target=self._run, name="hubgate-mirror-tally", daemon=True)
                self._thread.start()
        self._pending.set()

    def flush(self) -> None:
        """Write what was counted since the last flush (kept for the next one if the write fails)."""
        with self._lock:
            counts, touched = self._counts, self._touched
            self._counts, self._touched = {}, {}
            self._pending.clear()
        if not counts and not touched:
            return
        try:
            self._write(counts, touched)
        except Exception:
            with self._lock:
                for name, n in counts.items():
                    self._counts[name] = self._counts.get(name, 0) + n
                for oid, at in touched.items():
                    self._touched[oid] = max(at, self._touched.get(oid, 0.0))
            self._pending.set()
            raise

    def close(self) -> None:
        self._closed.set()
        self._pending.set()  # wakes the thread, which then ends
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._pending.wait()
            if self._closed.wait(self._interval):
                return  # close() flushes
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - kept for the next flush; a request never fails for a counter
                log.exception("could not write the mirror's cache hits")
