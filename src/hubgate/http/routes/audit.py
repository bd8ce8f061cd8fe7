"""`GET /api/audit`: the audit log for administrators, filtered (`repo`, `user`, `kind`, `since`)
and paged (`limit`, `cursor`; the next page's address in the `Link` header)."""

from __future__ import annotations

import datetime as dt
from itertools import islice
from urllib.parse import urlencode

from starlette.responses import Response

from hubgate.audit import AuditQuery, parse_since
from hubgate.auth.gate import Action
from hubgate.errors import BadRequest
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routing import RouteTable

table = RouteTable()
PAGE = 1000


@table.add("GET", r"/api/audit", action=Action.ADMIN)
def audit_events(call: Call) -> Response:
    query = call.query
    try:
        since = parse_since(query["since"], dt.datetime.now(dt.UTC)) if query.get("since") else None
        limit = max(1, min(int(query.get("limit") or PAGE), PAGE))
        cursor = int(query.get("cursor") or 0)
    except ValueError as exc:
        raise BadRequest("since must be a date or a duration (24h, 7d); limit and cursor integers") from exc
    if cursor < 0:
        raise BadRequest("cursor must not be negative")
    wanted = AuditQuery(repo=query.get("repo"), user=query.get("user"), since=since, kind=query.get("kind"))
    page = list(islice(call.hub.audit.events(wanted), cursor, cursor + limit + 1))
    headers = {}
    if len(page) > limit:
        page = page[:limit]
        following = {**dict(query), "cursor": str(cursor + limit)}
        headers["Link"] = f'<{call.base_url}/api/audit?{urlencode(following)}>; rel="next"'
    return json_response(page, headers=headers)
