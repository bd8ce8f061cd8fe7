"""`GET /api/mirror/status`: upstream health, cache size and hit ratio."""

from __future__ import annotations

from starlette.responses import Response

from hubgate.auth.gate import Action
from hubgate.errors import NotFound
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routing import RouteTable

table = RouteTable()


@table.add("GET", r"/api/mirror/status", action=Action.ADMIN)  # names upstream repos and errors
def status(call: Call) -> Response:
    if call.hub.mirror is None:
        raise NotFound("This server mirrors no upstream")
    return json_response(call.hub.mirror.status())
