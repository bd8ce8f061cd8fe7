"""HF-style answers: JSON, errors with `X-Error-Code`, and file bodies with Range support."""

from __future__ import annotations

import os
from contextlib import aclosing
from typing import Any

import anyio
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from hubgate import constants
from hubgate.errors import HubError, RangeNotSatisfiable
from hubgate.repos.base import Content


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def error_response(error: HubError) -> JSONResponse:
    return JSONResponse({"error": error.message}, status_code=error.status, headers=error.response_headers())


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range; None to send the whole file."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[len("bytes=") :].strip()
    if "," in spec:
        return None  # multiple ranges: answering the whole file is allowed
    first, _, last = spec.partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                raise RangeNotSatisfiable("Invalid range", headers={"Content-Range": f"bytes */{size}"})
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise RangeNotSatisfiable(
            f"Range {header} not satisfiable for {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, min(end, size - 1)


class ContentResponse(Response):
    """A file's bytes (or a slice of them) from memory or from a local file, in large chunks."""

    def __init__(self, content: Content, headers: dict[str, str], byte_range: tuple[int, int] | None) -> None:
        self.content = content
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
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope["method"] == "HEAD" or self.length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if self.content.data is not None:
            body = self.content.data[self.start : self.start + self.length]
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if self.content.stream is not None:
            # A file still arriving from upstream. If its transfer fails, the exception ends the
            # connection before the promised Content-Length: the client sees a broken download.
            async with aclosing(self.content.stream(self.start, self.start + self.length - 1)) as chunks:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        assert self.content.path is not None
        fd = os.open(self.content.path, os.O_RDONLY)
        try:
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
        finally:
            os.close(fd)


def empty_head_response(headers: dict[str, str], status: int = 200) -> Response:
    """A header-only answer whose Content-Length is the one given (never Starlette's 0)."""
    response = Response(status_code=status)
    response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return response
