"""uvicorn's h11 protocol, guarded against what RFC 9112 forbids and against hostile connections.

- A request head with a bare LF or bare CR line ending, or with both `Content-Length` and
  `Transfer-Encoding` (the ingredients of request smuggling), is refused with 400 and the
  connection closed (RFC 9112 §2.2, §6.1).
- A client must send a request's headers within `header_timeout` of connecting or of the previous
  answer (slowloris); a connection that sent nothing is closed silently, one with half a head gets 408.
- A request body that stalls for `body_timeout`, and an answer that a client leaves unread for
  `send_timeout`, drop the connection.
- At most `max_connections_per_client` connections from one address (trusted proxies exempt); more
  are answered 503 with `Retry-After`.

The limits are the `[http]` settings, handed over by the app at startup in the lifespan state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import time
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from hubgate import constants
from hubgate.config import HttpSettings

RETRY_AFTER = 1  # seconds a client turned away for too many connections is told to wait
LINGER = 2.0  # seconds a refused connection still reads (and drops) what the client sends

_BLANK_LINE = re.compile(rb"\n\r?\n")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:", re.IGNORECASE)
_TRANSFER_ENCODING = re.compile(rb"\ntransfer-encoding[ \t]*:", re.IGNORECASE)


def head_error(buffered: bytes) -> str | None:
    """Why the request head at the start of `buffered` (complete or not) must be refused, if it must."""
    end = _BLANK_LINE.search(buffered)
    head = buffered[: end.end()] if end else buffered
    if _BARE_LF.search(head):
        return "Request line or header ends in a bare LF; HTTP/1.1 lines end in CRLF"
    bare_cr = _BARE_CR.search(head)
    if bare_cr and bare_cr.start() < len(head) - 1:  # a CR as the very last byte may be followed by LF
        return "Request line or header holds a bare CR"
    if end and _CONTENT_LENGTH.search(head) and _TRANSFER_ENCODING.search(head):
        return "A request may not have both Content-Length and Transfer-Encoding"
    return None


def raw_answer(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete JSON error answer that closes the connection, for use below the app."""
    body = json.dumps({"error": message}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}",
             "Connection: close", f"X-Error-Message: {message}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def reset(transport: asyncio.Transport) -> None:
    """Drop a connection at once with a TCP reset, discarding what is queued for the client.

    A plain close would leave the kernel holding the unsent bytes (and the client waiting for
    them) for as long as a client that reads nothing keeps its window shut.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class GuardedH11Protocol(H11Protocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(constants.HTTP_LIMITS_STATE)
        self.limits: HttpSettings = limits if isinstance(limits, HttpSettings) else HttpSettings()
        self._waiting_since = time.monotonic()  # start of the current wait for a head or for body data
        self._write_paused_at: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._over_cap = False
        self._refused = False

    # -- connection --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.limits.max_connections_per_client
        host = self.client[0] if self.client else None
        if cap and host is not None and not self._trusted(host):
            same = sum(1 for other in self.connections if isinstance(other, H11Protocol) and other.client
                       and other.client[0] == host)
            self._over_cap = same > cap  # answered 503 once its request head is in (unread data would reset)
        self._schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # answered and half-closed: what still comes is dropped
            return
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY:  # a body's stall clock restarts with each piece
            self._waiting_since = time.monotonic()  # (a head's does not: slowloris trickles)

    def handle_events(self) -> None:
        if self.conn.their_state is h11.IDLE:  # what is buffered starts with the next request's head
            buffered = self.conn.trailing_data[0]
            problem = head_error(buffered)
            if problem is not None:
                self._refuse(400, "Bad Request", problem)
                return
            if self._over_cap and _BLANK_LINE.search(buffered):
                cap = self.limits.max_connections_per_client
                self._refuse(503, "Service Unavailable", f"More than {cap} connections from one address",
                             {"Retry-After": str(RETRY_AFTER)})
                return
        super().handle_events()

    def on_response_complete(self) -> None:
        self._waiting_since = time.monotonic()  # the next head's clock starts now
        super().on_response_complete()

    def pause_writing(self) -> None:
        self._write_paused_at = time.monotonic()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._write_paused_at = None
        super().resume_writing()

    # -- timeouts ----------------------------------------------------------------------------------

    def _schedule(self) -> None:
        shortest = min(self.limits.header_timeout, self.limits.body_timeout, self.limits.send_timeout)
        self._watchdog = self.loop.call_later(min(max(shortest / 4, 0.1), 5.0), self._check)

    def _check(self) -> None:
        self._watchdog = None
        now = time.monotonic()
        limits = self.limits
        if self._write_paused_at is not None and now - self._write_paused_at > limits.send_timeout:
            reset(self.transport)  # a client that reads nothing: what is buffered for it is dropped
            return
        if self.transport.is_closing():
            if self._write_paused_at is not None:  # closed after its answer, which it still owes
                self._schedule()
            return
        if self.conn.their_state is h11.IDLE and now - self._waiting_since > limits.header_timeout:
            if self.conn.trailing_data[0]:
                self._refuse(408, "Request Timeout", f"Request headers not received within {limits.header_timeout:g} s")
            else:
                self.transport.close()  # idle: nothing to answer
            return
        if self.conn.their_state is h11.SEND_BODY:
            if self.flow.read_paused:  # we stopped reading, not the client: its clock does not run
                self._waiting_since = now
            elif now - self._waiting_since > limits.body_timeout:
                reset(self.transport)  # the app sees a disconnect and gives up the request
                return
        self._schedule()

    # -- helpers -----------------------------------------------------------------------------------

    def _trusted(self, host: str) -> bool:
        proxies = self.limits.trusted_proxies
        return "*" in proxies or host in proxies

    def _refuse(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.logger.info("%s %s: %s", self.client[0] if self.client else "?", status, message)
        self._refused = True
        self.transport.write(raw_answer(status, reason, message, headers))
        if self.transport.can_write_eof():
            # The answer, then our end closed; the client's bytes still arriving are read and dropped
            # for a moment (a lingering close, as nginx does): closing at once would make the kernel
            # answer them with a reset, which throws the answer away unread on the client's side.
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()
