"""Readers of one process waiting for a download to advance, woken by the download's threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class Waiters:
    """Readers of this process waiting for a download to advance, woken by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_oid: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}

    async def wait(self, oid: str, timeout: float, ready: Callable[[], bool]) -> None:
        """Until woken for `oid` or `timeout` seconds pass; at once if `ready()` (checked after
        registering, so a wake-up between the caller's check and this wait is not lost)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            self._by_oid.setdefault(oid, []).append(entry)
        try:
            if not ready():
                await asyncio.wait([waiter], timeout=timeout)
        finally:
            with self._lock:
                waiting = self._by_oid.get(oid)
                if waiting and entry in waiting:
                    waiting.remove(entry)
                    if not waiting:
                        del self._by_oid[oid]

    def wake(self, oid: str) -> None:
        """Called from any thread; cheap when nobody waits."""
        if oid not in self._by_oid:
            return
        with self._lock:
            waiting = self._by_oid.pop(oid, [])
        for loop, waiter in waiting:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
