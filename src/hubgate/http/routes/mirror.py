"""`GET /api/mirror/status`: upstream health, cache size and hit ratio; and the route replicas
stream a file another replica is fetching from (mirror/replicas.py)."""

from __future__ import annotations

from starlette.responses import Response

from hubgate.auth.gate import Action
from hubgate.errors import NotFound
from hubgate.http.call import Call
from hubgate.http.responses import ContentResponse, json_response
from hubgate.http.routing import RouteTable
from hubgate.mirror.fetcher import FileSource
from hubgate.mirror.replicas import signed_range
from hubgate.repos.base import Content

table = RouteTable()


@table.add("GET", r"/api/mirror/status", action=Action.ADMIN)  # names upstream repos and errors
def status(call: Call) -> Response:
    if call.hub.mirror is None:
        raise NotFound("This server mirrors no upstream")
    return json_response(call.hub.mirror.status())


@table.add("GET", r"/_hubgate/mirror/fetches/(?P<oid>[0-9a-f]{40}|[0-9a-f]{64})", action=Action.SIGNED)
def fetch_tail(call: Call) -> Response:
    """Bytes of a file this replica's machine is fetching, for a client of another replica."""
    oid = call.params["oid"]
    size, start, end = signed_range(call.hub.signer, oid, call.query)
    fetcher = call.hub.mirror.fetcher if call.hub.mirror is not None else None
    src = FileSource(oid, size, len(oid) == 64, f"replica fetch of {oid}")
    if fetcher is None or not fetcher.downloading(src):
        raise NotFound(f"{oid} is not being fetched here")
    content = Content(size, stream=lambda first, last: fetcher.tail_local(src, first, last))
    return ContentResponse(content, {"ETag": f'"{oid}"'}, (start, end))
