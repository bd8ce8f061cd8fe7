"""Repo management: create, delete, move, settings, branches and tags (hub-protocol §5)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from hubgate import constants
from hubgate.auth.gate import Action, Subject
from hubgate.errors import BadRequest, Conflict, RepoNotFound
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routing import API_TYPE, REPO_ID, REV, RouteTable
from hubgate.ids import RepoRef, check_repo_type, check_revision
from hubgate.repos.service import Author, RepoNotHosted

table = RouteTable()


def _body(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise BadRequest("Expected a JSON object")
    return call.body


def _named_repo(call: Call, body: dict[str, Any]) -> RepoRef:
    """The repo of a `{name, organization, type}` body (organization null: the caller)."""
    name = body.get("name")
    org = body.get("organization")
    if not isinstance(name, str):
        raise BadRequest("'name' is required")
    if "/" in name and org is None:
        org, name = name.split("/", 1)
    if org is None:
        if call.principal is None:
            raise RepoNotFound(name, anonymous=True)
        org = call.principal.name
    if not isinstance(org, str):
        raise BadRequest("'organization' must be a string")
    return RepoRef.parse(check_repo_type(body.get("type")), f"{org}/{name}")


def _private(body: dict[str, Any]) -> bool | None:
    visibility: object = body.get("visibility")
    if visibility is not None:
        if visibility not in ("private", "public"):
            raise BadRequest("visibility must be 'private' or 'public'")
        return visibility == "private"
    private: object = body.get("private")
    if private is None:
        return None
    if not isinstance(private, bool):
        raise BadRequest("private must be a boolean")
    return private


def author_of(call: Call) -> Author:
    assert call.principal is not None
    return Author(call.principal.name, call.principal.email or f"{call.principal.name}@users.noreply.hubgate")


def _created(call: Call) -> Subject:
    return Subject(namespace=_named_repo(call, _body(call)).namespace)


def _deleted(call: Call) -> Subject:
    return Subject(ref=_named_repo(call, _body(call)))


def _moved(call: Call) -> tuple[RepoRef, RepoRef]:
    body = _body(call)
    repo_type = check_repo_type(body.get("type"))
    return RepoRef.parse(repo_type, str(body.get("fromRepo", ""))), RepoRef.parse(repo_type, str(body.get("toRepo", "")))


def _move_subject(call: Call) -> Subject:
    source, target = _moved(call)
    return Subject(ref=source, namespace=target.namespace)


@table.add("POST", r"/api/repos/create", action=Action.CREATE_REPO, subject=_created, body="json")
def create_repo(call: Call) -> Response:
    body = _body(call)
    ref = _named_repo(call, body)
    url = f"{call.base_url}/{ref.url_path}"
    sdk = body.get("sdk") if ref.type == "space" else None
    if sdk is not None and sdk not in constants.SPACE_SDKS:
        raise BadRequest(f"'sdk' must be one of {', '.join(constants.SPACE_SDKS)}")
    try:
        call.hub.repos.create(ref, private=bool(_private(body)), author=author_of(call), sdk=sdk)
    except Conflict as exc:
        return json_response({"error": exc.message, "url": url}, status=409, headers=exc.response_headers())
    return json_response({"url": url, "name": ref.repo_id, "id": ref.repo_id})


@table.add("DELETE", r"/api/repos/delete", action=Action.MANAGE_REPO, subject=_deleted, body="json")
def delete_repo(call: Call) -> Response:
    call.hub.repos.delete(call.hosted_repo.meta.ref)
    return json_response({})


@table.add("POST", r"/api/repos/move", action=Action.MANAGE_REPO, subject=_move_subject, body="json")
def move_repo(call: Call) -> Response:
    source, target = _moved(call)
    call.hub.repos.move(source, target)
    return json_response({"url": f"{call.base_url}/{target.url_path}"})


@table.add("PUT", rf"/api/{API_TYPE}/{REPO_ID}/settings", action=Action.MANAGE_REPO, body="json")
def settings(call: Call) -> Response:
    body = _body(call)
    gated = body.get("gated")
    try:
        call.hub.repos.update_settings(call.repo_ref, private=_private(body), gated=gated)
    except RepoNotHosted as exc:
        raise RepoNotFound(str(call.repo_ref), anonymous=call.principal is None) from exc
    return json_response({})


@table.add("POST DELETE", rf"/api/{API_TYPE}/{REPO_ID}/branch/(?P<branch>[^/]+)", action=Action.WRITE_REPO, body="json")
def branch(call: Call) -> Response:
    repo = call.hosted_repo
    name = check_revision(call.params["branch"])
    if call.request.method == "DELETE":
        call.hub.repos.delete_ref(repo, "heads", name)
        return json_response({})
    body = call.body if isinstance(call.body, dict) else {}
    start = body.get("startingPoint") or "main"
    call.hub.repos.create_ref(repo, "heads", name, check_revision(str(start)))
    return json_response({})


@table.add("POST", rf"/api/{API_TYPE}/{REPO_ID}/tag/{REV}", action=Action.WRITE_REPO, body="json")
def create_tag(call: Call) -> Response:
    repo = call.hosted_repo
    tag = _body(call).get("tag")
    if not isinstance(tag, str):
        raise BadRequest("'tag' is required")
    call.hub.repos.create_ref(repo, "tags", tag, check_revision(call.params["rev"]))
    return json_response({})


@table.add("DELETE", rf"/api/{API_TYPE}/{REPO_ID}/tag/{REV}", action=Action.WRITE_REPO)
def delete_tag(call: Call) -> Response:
    repo = call.hosted_repo
    call.hub.repos.delete_ref(repo, "tags", check_revision(call.params["rev"]))
    return json_response({})
