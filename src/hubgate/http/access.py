"""The access log: one line per request with its time (UTC), request id, user, client, request line
(credentials in the query redacted by `scrub_url`), status, bytes and duration, and, for a refusal
(401, 403, 429), the reason the client was given. The one place access lines are formatted."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field

from starlette.requests import Request

from hubgate.logs import REQUEST_ID, scrub_url

log = logging.getLogger("hubgate.access")
REFUSALS = frozenset({401, 403, 429})
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:=/+-]{1,128}")


def request_id(request: Request) -> str:
    """The client's own request id (X-Request-Id, X-Amzn-Trace-Id) if it is sane, else a new one."""
    given = request.headers.get("x-request-id") or request.headers.get("x-amzn-trace-id") or ""
    return given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex[:16]


@dataclass
class AccessLine:
    request: Request
    request_id: str
    started: float = field(default_factory=time.monotonic)
    user: str | None = None
    refusal: str | None = None

    def __post_init__(self) -> None:
        REQUEST_ID.set(self.request_id)  # for every line logged while this request is answered

    def emit(self, status: int, sent: int) -> None:
        scope = self.request.scope
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = scrub_url(raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else ""))
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        ms = (time.monotonic() - self.started) * 1000
        reason = f' refused="{self.refusal}"' if self.refusal and status in REFUSALS else ""
        log.info(
            '%s req=%s user=%s "%s %s HTTP/%s" %d %dB %.1fms%s',
            peer, self.request_id, self.user or "-", self.request.method, target, scope.get("http_version", "1.1"),
            status, sent, ms, reason,
            extra={"request_id": self.request_id, "user": self.user, "client": peer, "method": self.request.method,
                   "target": target, "status": status, "bytes": sent, "ms": round(ms, 1),
                   **({"refused": self.refusal} if reason else {})},
        )
