"""Streaming a file another replica is fetching, straight from that replica.

The replica holding a file's fetch lease (leases.py) appends the upstream's bytes to a part file
on its own disk; a client on another replica gets them as they arrive through an internal route
of the holder (`GET /_hubgate/mirror/fetches/<oid>`), which tails that part file exactly as the
holder's own clients do: its last bytes go out only once the whole file verified and was
published. The request carries an HMAC of what it asks for, made with the server key every
replica shares (`secret_key` / `HUBGATE_SECRET_KEY`), and expires after `TAIL_URL_TTL` seconds.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator, Mapping
from urllib.parse import urlsplit

import httpx

from hubgate.errors import BadRequest, Forbidden
from hubgate.signing import Signer

TAIL_URL_TTL = 300
TAIL_PATH = "/_hubgate/mirror/fetches/"
# The holder sends nothing while its upstream pauses; a silence this long means it is gone.
TAIL_READ_TIMEOUT = 60.0


class HolderFailed(Exception):
    """The holder sent nothing more: `unreachable` when no connection could be made at all."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def tail_query(signer: Signer, oid: str, size: int, start: int, end: int) -> dict[str, str]:
    expires, sig = signer.sign("mirror-tail", oid, str(size), str(start), str(end), ttl=TAIL_URL_TTL)
    return {"size": str(size), "start": str(start), "end": str(end), "exp": str(expires), "sig": sig}


def signed_range(signer: Signer, oid: str, query: Mapping[str, str]) -> tuple[int, int, int]:
    """(size, start, end) a tail request asks for; Forbidden unless a replica signed it."""
    fields = [query.get(name, "") for name in ("size", "start", "end", "exp")]
    if not all(field.isascii() and field.isdigit() and len(field) < 20 for field in fields):
        raise BadRequest("Missing or invalid size, start, end or exp")
    size, start, end, expires = (int(field) for field in fields)
    if not signer.verify(query.get("sig", ""), expires, "mirror-tail", oid, str(size), str(start), str(end)):
        raise Forbidden("Invalid or expired signature")
    if not start <= end < size:
        raise BadRequest("Invalid range")
    return size, start, end


async def tail(url: str, signer: Signer, oid: str, size: int, start: int, end: int) -> AsyncGenerator[bytes, None]:
    """Bytes start..end of the file the replica at `url` is fetching; HolderFailed if it cannot
    send them (the caller counts what it got: an answer cut short is a failure too)."""
    timeout = httpx.Timeout(TAIL_READ_TIMEOUT, connect=5.0)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client, client.stream(
            "GET", f"{url.rstrip('/')}{TAIL_PATH}{oid}", params=tail_query(signer, oid, size, start, end),
            headers={"Accept-Encoding": "identity"},
        ) as response:
            if response.status_code != 206:
                raise HolderFailed(f"the holder answered {response.status_code}")
            async for chunk in response.aiter_raw():
                yield chunk
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise HolderFailed(f"the holder at {url} is unreachable: {exc}", unreachable=True) from exc
    except httpx.HTTPError as exc:
        raise HolderFailed(f"the holder at {url} broke off: {exc}") from exc


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether a connection to the replica at `url` opens (a killed one's port refuses at once)."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout).close()
    except OSError:
        return False
    return True
