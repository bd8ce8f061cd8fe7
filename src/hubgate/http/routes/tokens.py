"""Token management over HTTP: users manage their own tokens, administrators everybody's.

`GET /api/tokens[?user=U]`, `POST /api/tokens` `{"user"?, "name"?, "role"?, "repos"?: ["acme/tts-*=read"],
"orgs"?: ["acme=read"], "expires"?: "30d"}`, `DELETE /api/tokens/{id}`, `POST /api/tokens/{id}/rotate`.
A created or rotated token's secret is in that answer only.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from hubgate.auth.gate import Action, Subject
from hubgate.auth.scopes import parse_namespace_grant, parse_repo_grant
from hubgate.auth.tokens import Issued
from hubgate.errors import BadRequest, HubError
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routing import RouteTable
from hubgate.storage.metadata import utcnow

table = RouteTable()
TOKEN_ID = r"(?P<token_id>[0-9]{1,18})"


def _body(call: Call) -> dict[str, Any]:
    if call.body is None:
        return {}
    if not isinstance(call.body, dict):
        raise BadRequest("Expected a JSON object")
    return call.body


def _caller(call: Call) -> str | None:
    return call.principal.name if call.principal else None


def _listed_user(call: Call) -> Subject:
    return Subject(user=call.query.get("user") or _caller(call))


def _created_for(call: Call) -> Subject:
    user = _body(call).get("user")
    if user is not None and not isinstance(user, str):
        raise BadRequest("'user' must be a string")
    return Subject(user=user or _caller(call))


def _token_owner(call: Call) -> Subject:
    try:
        return Subject(user=call.hub.accounts.tokens.find(int(call.params["token_id"])).user)
    except HubError:
        return Subject()  # unknown: refused like somebody else's to non-administrators


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{key}' must be a list of strings")
    return value


def _issued(call: Call, issued: Issued) -> Response:
    call.audit.update(token=issued.row.id, token_owner=issued.row.user)
    return json_response({**issued.row.to_json(utcnow()), "token": issued.secret})


@table.add("GET", r"/api/tokens", action=Action.MANAGE_TOKENS, subject=_listed_user)
def list_tokens(call: Call) -> Response:
    user = call.query.get("user") or _caller(call)
    now = utcnow()
    return json_response([row.to_json(now) for row in call.hub.accounts.tokens.list(user)])


@table.add("POST", r"/api/tokens", action=Action.MANAGE_TOKENS, subject=_created_for, body="json")
def create_token(call: Call) -> Response:
    body = _body(call)
    user = _created_for(call).user
    assert user is not None
    grants = (
        *(parse_repo_grant(r) for r in _strings(body, "repos")),
        *(parse_namespace_grant(o) for o in _strings(body, "orgs")),
    )
    name, role, expires = body.get("name") or "", body.get("role") or "read", body.get("expires")
    if not isinstance(name, str) or not isinstance(role, str) or not isinstance(expires, str | None):
        raise BadRequest("'name', 'role' and 'expires' must be strings")
    assert call.principal is not None
    return _issued(call, call.hub.accounts.tokens.create(user, role=role, grants=grants, name=name, expires=expires,
                                                         not_after=call.principal.token_expires))


@table.add("DELETE", rf"/api/tokens/{TOKEN_ID}", action=Action.MANAGE_TOKENS, subject=_token_owner)
def revoke_token(call: Call) -> Response:
    call.audit["token"] = int(call.params["token_id"])
    return json_response(call.hub.accounts.tokens.revoke(int(call.params["token_id"])).to_json(utcnow()))


@table.add("POST", rf"/api/tokens/{TOKEN_ID}/rotate", action=Action.MANAGE_TOKENS, subject=_token_owner)
def rotate_token(call: Call) -> Response:
    assert call.principal is not None
    return _issued(call, call.hub.accounts.tokens.rotate(int(call.params["token_id"]), call.principal.token_expires))


UPSTREAM = r"(?P<upstream>[A-Za-z0-9._-]{1,100})"


@table.add("GET", r"/api/upstream-tokens", action=Action.MANAGE_TOKENS, subject=_listed_user)
def list_upstream_tokens(call: Call) -> Response:
    user = call.query.get("user") or _caller(call)
    assert user is not None
    return json_response([{"upstream": name} for name in call.hub.upstream_tokens.names(user)])


@table.add("PUT", rf"/api/upstream-tokens/{UPSTREAM}", action=Action.MANAGE_TOKENS, subject=_created_for, body="json")
def set_upstream_token(call: Call) -> Response:
    """`{"token": "hf_...", "user"?: "name"}`: the caller's (an admin: anybody's) token for that upstream."""
    user, secret = _created_for(call).user, _body(call).get("token")
    if not isinstance(secret, str):
        raise BadRequest("'token' is required")
    assert user is not None
    call.hub.upstream_tokens.set(user, call.params["upstream"], secret)
    call.audit.update(kind="upstream_token", member=user, upstream=call.params["upstream"], change="set")
    return json_response({"upstream": call.params["upstream"], "user": user})


@table.add("DELETE", rf"/api/upstream-tokens/{UPSTREAM}", action=Action.MANAGE_TOKENS, subject=_listed_user)
def remove_upstream_token(call: Call) -> Response:
    user = call.query.get("user") or _caller(call)
    assert user is not None
    call.hub.upstream_tokens.remove(user, call.params["upstream"])
    call.audit.update(kind="upstream_token", member=user, upstream=call.params["upstream"], change="removed")
    return json_response({})
