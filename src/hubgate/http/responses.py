"""HF-style answers: JSON, errors with `X-Error-Code`, and file bodies with Range support."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

import anyio
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from hubgate import constants
from hubgate.config import HttpSettings
from hubgate.errors import HubError, NotFound, RangeNotSatisfiable, ServiceUnavailable
from hubgate.http import zerocopy
from hubgate.http.resources import out_of_resources
from hubgate.repos.base import Content


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def error_response(error: HubError) -> JSONResponse:
    return JSONResponse({"error": error.message}, status_code=error.status, headers=error.response_headers())


# One `bytes=first-last` or `bytes=-suffix` range, ASCII digits only (int() would also take
# `1_0`, `+1` or other digits). Anything else is ignored, as RFC 9110 allows: the whole file.
_RANGE = re.compile(r"bytes=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.ASCII)
# More digits than any file size has: such a bound means "to the end".
_MAX_DIGITS = 18


def _bound(digits: str) -> int:
    return 10**_MAX_DIGITS if len(digits.lstrip("0")) > _MAX_DIGITS else int(digits)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range; None to send the whole file."""
    found = _RANGE.fullmatch(header) if header else None
    if found is None or size == 0 or found.group(1) == found.group(2) == "":
        return None
    first, last = found.groups()
    if first == "":
        length = _bound(last)
        if length <= 0:
            raise RangeNotSatisfiable("Invalid range", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - length), size - 1
    start = _bound(first)
    end = _bound(last) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(
            f"Range {header} not satisfiable for {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, min(end, size - 1)


def effective_range(headers: Mapping[str, str], etag: str, content: Content) -> tuple[int, int] | None:
    """The range to answer, or None for the whole file (200).

    The whole file goes out when `If-Range` does not name the file's current ETag (a date never
    does: there is no Last-Modified), and when a client asks to continue past the first byte of a
    file whose bytes were once served and then found bad (`Content.resumable`): it restarts from
    zero, or fails clearly, instead of appending good bytes to a bad prefix.
    """
    byte_range = parse_range(headers.get("range"), content.size)
    if byte_range is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None
    if byte_range[0] > 0 and not content.can_resume():
        return None
    return byte_range


class ContentResponse(Response):
    """A file's bytes (or a slice of them) from memory, from upstream, or from a local file.

    A local file goes out with zero-copy `sendfile(2)` when the server is uvicorn (see
    `http.zerocopy`), else in `STREAM_CHUNK` pieces read in a worker thread. Either way the
    transfer stops when the client goes away, and the file descriptor is closed. `served_by` says
    how the body went (for /metrics): sendfile, chunked, stream, memory or redirect; None when
    there was no body to send.
    """

    served_by: str | None = None

    def __init__(self, content: Content, headers: dict[str, str], byte_range: tuple[int, int] | None) -> None:
        self.content = content
        if content.redirect is not None:  # to a presigned URL: the client sends its Range there
            self.served_by = "redirect"
            self.start = self.length = 0
            headers = {**headers, "Location": content.redirect, "Content-Length": "0"}
            super().__init__(status_code=302, headers=headers, media_type=None)
            self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            return
        start, end = byte_range if byte_range else (0, content.size - 1)
        self.start, self.length = start, max(0, end - start + 1)
        status = 206 if byte_range else 200
        headers = dict(headers)
        headers["Content-Length"] = str(self.length)
        headers["Accept-Ranges"] = "bytes"
        if byte_range:
            headers["Content-Range"] = f"bytes {start}-{end}/{content.size}"
        super().__init__(status_code=status, headers=headers, media_type=None)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start_message = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if scope["method"] == "HEAD" or self.length == 0:
            await send(start_message)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if self.content.data is not None:
            self.served_by = "memory"
            await send(start_message)
            body = self.content.data[self.start : self.start + self.length]
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if self.content.stream is not None:
            self.served_by = "stream"
            await send(start_message)
            await _until_disconnect(receive, self._send_stream, send)
            return
        assert self.content.opener is not None
        try:
            handle = self.content.opener()  # before the headers, so a failure gets an answer
        except FileNotFoundError:  # removed since it was looked up (evicted, collected, quarantined)
            gone = (ServiceUnavailable("The file is being fetched again, try again shortly") if self.content.refetchable
                    else NotFound("The content of this file is no longer on this server"))
            await error_response(gone)(scope, receive, send)
            return
        except OSError as exc:
            if not out_of_resources(exc):
                raise
            await error_response(ServiceUnavailable())(scope, receive, send)
            return
        try:
            fd = handle.fileno()
            await send(start_message)
            found = zerocopy.cycle(send)
            out = zerocopy.dup_socket(found) if found is not None else None
            if out is not None:
                self.served_by = "sendfile"
                await zerocopy.send_file(found, receive, send, fd, out, self.start, self.length, _send_timeout(scope))
            else:  # not uvicorn, or no file descriptor to spare for the zero-copy path
                self.served_by = "chunked"
                await _until_disconnect(receive, self._send_file_chunks, send, fd)
        finally:
            handle.close()

    async def _send_stream(self, send: Send) -> None:
        # A file still arriving from upstream. If its transfer fails, the exception ends the
        # connection before the promised Content-Length: the client sees a broken download.
        assert self.content.stream is not None
        async with aclosing(self.content.stream(self.start, self.start + self.length - 1)) as chunks:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_file_chunks(self, send: Send, fd: int) -> None:
        offset, remaining = self.start, self.length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(os.pread, fd, min(constants.STREAM_CHUNK, remaining), offset)
            if not chunk:
                break
            offset += len(chunk)
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        if remaining > 0:  # file shrank under us: end the body short rather than hang
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive, body: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run `body(*args)`, cancelled as soon as the client disconnects.

    Servers such as uvicorn silently drop what is sent after a disconnect instead of raising, so
    without this a vanished client would still have the whole file read (or fetched) for it.
    """
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await body(*args)
            group.cancel_scope.cancel()
    except BaseExceptionGroup as errors:  # the body's own error, not wrapped by the task group
        if len(errors.exceptions) == 1:
            raise errors.exceptions[0] from None
        raise


def _send_timeout(scope: Scope) -> float:
    """Seconds a zero-copy body waits for a client that reads nothing (the `[http]` send_timeout)."""
    limits = scope.get("state", {}).get(constants.HTTP_LIMITS_STATE)
    return (limits if isinstance(limits, HttpSettings) else HttpSettings()).send_timeout


async def break_connection(send: Send, receive: Receive) -> bool:
    """End an answer whose headers are out but whose body cannot be completed: the connection is
    closed once what is queued has gone out, so the client sees a body shorter than announced (a
    protocol error every client version retries or resumes on; a reset would make huggingface_hub
    1.x give up), and uvicorn sees a disconnect, not an app error.
    False when `send` is not uvicorn's (the caller must raise instead)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        return False
    transport.close()  # a client that never reads is reset by the protocol's own write timeout
    await zerocopy.await_disconnect(receive)
    return True
