"""Zero-copy file bodies under uvicorn.

uvicorn offers no ASGI `http.response.zerocopy` (nor `pathsend`) extension, and copying a file
through Python (pread into bytes, then send) costs about twice the CPU of nginx's sendfile and
leaves hubgate at ~half its throughput. So when `send` is uvicorn's own (its h11 or httptools
implementation, plain TCP), the headers go through uvicorn as usual, the body is written with
`sendfile(2)` straight to the connection's socket, and uvicorn's byte count is then advanced by
what was sent, so it ends the response (keep-alive or close) as if it had written the body itself.

This module is the only one that reaches into uvicorn's cycle objects. It recognises them by
module and attribute (`cycle`); anything else - another server, TLS, uvicorn's trace-logging
wrapper, a uvicorn whose cycles changed shape - gets None, and the caller sends the body in
chunks through `send` like any ASGI app. tests/test_zerocopy.py runs both implementations.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from typing import Any

import anyio
from starlette.types import Receive, Send

from hubgate.http.protocol import reset

SENDFILE_CHUNK = 4 * 1024 * 1024  # most bytes handed to one sendfile() call before yielding
_SENDFILE = sys.platform.startswith("linux") and hasattr(os, "sendfile") and hasattr(os, "RWF_NOWAIT")
_HTTPTOOLS, _H11 = "uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.http.h11_impl"
# uvicorn's cycle class, by module, and the attribute holding its count of body bytes to come.
_UVICORN_CYCLES = {_HTTPTOOLS: "expected_content_length", _H11: "conn"}


def cycle(send: Send) -> Any | None:
    """uvicorn's request-response cycle behind `send` if its body may be sendfile()d, else None.

    To be called after `http.response.start` was sent with a Content-Length.
    """
    if not _SENDFILE:
        return None
    found: Any = getattr(inspect.unwrap(send), "__self__", None)  # under wrappers that set __wrapped__
    counter = _UVICORN_CYCLES.get(type(found).__module__)
    if counter is None or not hasattr(found, counter) or not hasattr(found, "disconnected"):
        return None
    transport = getattr(found, "transport", None)
    if transport is None or transport.is_closing() or found.disconnected:
        return None
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return None
    if counter == "conn":
        import h11

        if found.conn.our_state is not h11.SEND_BODY:
            return None
    elif getattr(found, "chunked_encoding", None) is not False:
        return None
    return found


class _SentElsewhere:
    """Stands for `n` body bytes that h11 must count but never sees (they went by sendfile)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def dup_socket(found: Any) -> int | None:
    """A descriptor of the connection's socket that is ours to poll (the transport owns its own),
    or None when the process is out of descriptors."""
    try:
        return os.dup(found.transport.get_extra_info("socket").fileno())
    except OSError:
        return None


async def send_file(found: Any, receive: Receive, send: Send, fd: int, out: int, offset: int, count: int,
                    stall: float) -> None:
    """Send the body with sendfile() on `out` (a duplicate of the connection's socket, closed here)."""
    loop = asyncio.get_running_loop()
    transport = found.transport
    sent, stalled = 0, False
    try:
        # Whatever uvicorn still buffers (the headers, an earlier response's tail) goes first.
        while transport.get_write_buffer_size() and not found.disconnected and not stalled:
            stalled = not await _writable(loop, out, stall)
            await asyncio.sleep(0)  # let the transport's own writer run
        while sent < count and not found.disconnected and not stalled:
            position, size = offset + sent, min(SENDFILE_CHUNK, count - sent)
            try:
                if _in_page_cache(fd, position, size):
                    n = os.sendfile(out, fd, position, size)
                else:  # a read from disk would stall every connection: block a worker thread instead
                    n = await anyio.to_thread.run_sync(os.sendfile, out, fd, position, size)
            except BlockingIOError:
                stalled = not await _writable(loop, out, stall)  # a client that reads nothing is dropped
                continue
            except OSError:  # the client went away (EPIPE, ECONNRESET)
                break
            if n == 0:  # the file shrank under us
                break
            sent += n
            if n < size:  # the socket is full: wait until it drains
                stalled = not await _writable(loop, out, stall)
            else:
                await asyncio.sleep(0)  # be fair to the other connections
    finally:
        os.close(out)
    if sent == count:
        if type(found).__module__ == _HTTPTOOLS:
            found.expected_content_length -= sent
        else:
            import h11

            found.conn.send_with_data_passthrough(h11.Data(data=_SentElsewhere(sent)))  # type: ignore[arg-type]
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    # Disconnected, or the body cannot be completed: drop the connection and let uvicorn see it.
    reset(transport)
    await await_disconnect(receive)


async def await_disconnect(receive: Receive) -> None:
    """Wait (at most 5 s) for the server to report the client gone."""
    with anyio.move_on_after(5):
        while (await receive())["type"] != "http.disconnect":
            pass


def _in_page_cache(fd: int, position: int, size: int) -> bool:
    """Whether the first and last byte of a range can be read without waiting for the disk."""
    probe = bytearray(1)
    try:
        os.preadv(fd, [probe], position, os.RWF_NOWAIT)
        os.preadv(fd, [probe], position + size - 1, os.RWF_NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: this filesystem cannot tell
        return False
    return True


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float) -> bool:
    """Whether `fd` became writable within `timeout` seconds."""
    waiter = loop.create_future()
    loop.add_writer(fd, _wake, waiter)
    try:
        await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_writer(fd)
    return True


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
