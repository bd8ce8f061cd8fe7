"""Request bodies read in batches: the pieces that arrived, about a megabyte at a time, for a
handler to pass to a worker thread in one hop (never joined: a megabyte join is a fresh mmap())."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from hubgate.errors import HubError

BATCH = 1024 * 1024


async def batches(request: Request, limit: int, too_much: Callable[[], HubError]) -> AsyncIterator[list[bytes]]:
    """The body in lists of pieces of about BATCH bytes (the last one possibly empty); `too_much()`
    is raised as soon as more than `limit` bytes arrived (or a Content-Length says they will)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_much()
    pending: list[bytes] = []
    size = received = 0
    async for piece in request.stream():
        received += len(piece)
        if received > limit:
            raise too_much()
        if piece:
            pending.append(piece)
            size += len(piece)
        if size >= BATCH:
            yield pending
            pending, size = [], 0
    yield pending
