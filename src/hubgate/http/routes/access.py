"""Collaborators and the gated-repo access-request flow, at the Hub's addresses
(`/api/{type}s/{repo}/user-access-request/...`, as huggingface_hub calls them; `/{repo}/ask-access`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from hubgate.auth.gate import Action
from hubgate.errors import BadRequest
from hubgate.http.call import Call
from hubgate.http.formats import iso
from hubgate.http.responses import json_response
from hubgate.http.routing import API_TYPE, FILE_PREFIX, REPO_ID, RouteTable

table = RouteTable()
REQUESTS = rf"/api/{API_TYPE}/{REPO_ID}/user-access-request"
USER = r"(?P<user>[A-Za-z0-9][A-Za-z0-9._-]{0,95})"


def _body(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise BadRequest("Expected a JSON object")
    return call.body


def _gated_pk(call: Call) -> int:
    meta = call.hosted_repo.meta
    if not meta.gated:
        raise BadRequest(f"{meta.ref} is not a gated repo")
    assert meta.pk is not None
    return meta.pk


@table.add("POST", rf"/{FILE_PREFIX}{REPO_ID}/ask-access", action=Action.REQUEST_ACCESS, body="form")
def ask_access(call: Call) -> Response:
    meta = call.repo.meta
    if meta.pk is None or not meta.gated:
        raise BadRequest(f"{meta.ref} is not a gated repo")
    assert call.principal is not None
    status = call.hub.access.request(meta.pk, call.principal.name, automatic=meta.gated == "auto")
    return json_response({"status": status})


@table.add("GET", rf"{REQUESTS}/(?P<status>pending|accepted|rejected)", action=Action.MANAGE_REPO)
def list_requests(call: Call) -> Response:
    rows = call.hub.access.requests(_gated_pk(call), call.params["status"])
    return json_response([
        {"user": {"user": r.user, "fullname": r.fullname, "email": r.email}, "requestId": str(r.id), "status": r.status,
         "timestamp": iso(r.created_at), "fields": {}, **({"rejectionReason": r.reason} if r.reason else {})}
        for r in rows
    ])


@table.add("POST", rf"{REQUESTS}/handle", action=Action.MANAGE_REPO, body="json")
def handle_request(call: Call) -> Response:
    body = _body(call)
    pk = _gated_pk(call)
    user, request_id, status, reason = body.get("user"), body.get("requestId"), body.get("status"), body.get("rejectionReason")
    if (user is None) == (request_id is None):
        raise BadRequest("Give either 'user' or 'requestId'")
    if not isinstance(status, str) or not isinstance(user, str | None) or not isinstance(reason, str | None):
        raise BadRequest("'status', 'user' and 'rejectionReason' must be strings")
    if request_id is not None and not str(request_id).isdigit():
        raise BadRequest("'requestId' is not a request id")
    decided = call.hub.access.decide(pk, user, int(request_id) if request_id is not None else None, status, reason)
    call.audit.update(kind="access_decision", member=decided, decision=status)
    return json_response({})


@table.add("POST", rf"{REQUESTS}/grant", action=Action.MANAGE_REPO, body="json")
def grant(call: Call) -> Response:
    user = _body(call).get("user")
    if not isinstance(user, str):
        raise BadRequest("'user' is required")
    call.hub.access.grant(_gated_pk(call), user)
    call.audit.update(kind="access_decision", member=user, decision="granted")
    return json_response({"status": "accepted", "user": user})


def _pk(call: Call) -> int:
    pk = call.hosted_repo.meta.pk
    assert pk is not None
    return pk


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/collaborators", action=Action.MANAGE_REPO)
def list_collaborators(call: Call) -> Response:
    return json_response([{"user": u, "role": r} for u, r in call.hub.access.collaborators(_pk(call)).items()])


@table.add("PUT", rf"/api/{API_TYPE}/{REPO_ID}/collaborators/{USER}", action=Action.MANAGE_REPO, body="json")
def set_collaborator(call: Call) -> Response:
    role = _body(call).get("role")
    if not isinstance(role, str):
        raise BadRequest("'role' is required: read or write")
    call.hub.access.set_collaborator(_pk(call), call.params["user"], role)
    call.audit.update(kind="permission", member=call.params["user"], role=role)
    return json_response({"user": call.params["user"], "role": role})


@table.add("DELETE", rf"/api/{API_TYPE}/{REPO_ID}/collaborators/{USER}", action=Action.MANAGE_REPO)
def remove_collaborator(call: Call) -> Response:
    call.hub.access.remove_collaborator(_pk(call), call.params["user"])
    call.audit.update(kind="permission", member=call.params["user"], role=None)
    return json_response({})
