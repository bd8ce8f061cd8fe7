"""Discussions and pull requests: `/api/{type}s/{repo}/discussions[/{num}[/comment|status|title|merge]]`.

Who may do what follows the Hub: anyone who can read a repo (with a token that may write) opens
discussions and pull requests and comments; their author or the repo's writers close, reopen and
rename them; merging needs write access. Mirrored repos show their upstream's, read-only.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from hubgate.auth.gate import Action, Subject
from hubgate.errors import BadRequest
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routes.manage import author_of
from hubgate.http.routing import API_TYPE, REPO_ID, RouteTable
from hubgate.mirror.discussions import upstream_discussion, upstream_discussions
from hubgate.mirror.repository import MirroredRepository
from hubgate.repos.discussions import refuse_mirrored
from hubgate.repos.hosted import HostedRepository
from hubgate.repos.service import PR_REF

table = RouteTable()

NUM = r"(?P<num>[1-9][0-9]{0,8})"
BASE = rf"/api/{API_TYPE}/{REPO_ID}/discussions"


def hosted(call: Call) -> HostedRepository:
    """The repo of a discussion route: hosted ones only have discussions here."""
    if not isinstance(call.authorized, HostedRepository):
        raise refuse_mirrored()
    return call.authorized


def proposal(revision: str | None, create_pr: bool) -> Action:
    """What changing `revision` asks for: opening a pull request (`create_pr`, or an LFS upload naming
    no ref, as huggingface_hub sends for one) any reader may; committing to `refs/pr/N` its author
    may (else writers, the gate decides); any other revision needs write access."""
    if create_pr or revision is None:
        return Action.DISCUSS
    return Action.AUTHOR if PR_REF.fullmatch(revision) else Action.WRITE_REPO


def proposal_subject(call: Call, revision: str | None) -> Subject:
    """The repo of the path, and the pull request `revision` names (`refs/pr/N`), if it does."""
    num = int(revision.rsplit("/", 1)[1]) if revision is not None and PR_REF.fullmatch(revision) else None
    return Subject(ref=call.repo_ref, revision=revision, discussion=num)


def _unless_mirrored(action: Action) -> Callable[[Call], Action]:
    """`action` on a hosted repo. A mirrored one has no such action (only hosted repos can be
    written): the gate checks what opening a discussion needs, and the handler refuses the change
    as read-only (403) instead of the gate answering that no such repo exists."""

    def decide(call: Call) -> Action:
        if call.hub.mirror is not None and call.hub.repos.find(call.repo_ref) == (None, None):
            return Action.DISCUSS
        return action

    return decide


def _numbered(call: Call) -> Subject:
    return Subject(ref=call.repo_ref, discussion=int(call.params["num"]))


def _text(call: Call, key: str) -> str:
    body = call.body if isinstance(call.body, dict) else {}
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"Expected a JSON body with {key!r}")
    return value


@table.add("GET", BASE, action=Action.READ_REPO)
def list_discussions(call: Call) -> Response:
    if isinstance(call.authorized, MirroredRepository):
        return json_response(upstream_discussions(call.authorized, dict(call.query)))
    if not isinstance(call.authorized, HostedRepository):
        raise refuse_mirrored()
    try:
        page = max(0, int(call.query.get("p", "0") or 0))
    except ValueError as exc:
        raise BadRequest("p must be a page number") from exc
    return json_response(call.hub.discussions.listing(
        call.authorized, kind=call.query.get("type"), status=call.query.get("status"),
        author=call.query.get("author"), page=page,
    ))


@table.add("POST", BASE, action=Action.DISCUSS, body="json")
def create_discussion(call: Call) -> Response:
    repo = hosted(call)
    body = call.body if isinstance(call.body, dict) else {}
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise BadRequest("description must be a string")
    assert call.principal is not None
    num = call.hub.discussions.create(repo, call.principal.name, _text(call, "title"), description,
                                      bool(body.get("pullRequest")))
    call.audit.update(kind="discussion", num=num)
    return json_response({"num": num, "url": f"{call.base_url}/{repo.meta.ref.url_path}/discussions/{num}",
                          "pullRequest": bool(body.get("pullRequest"))})


def _reading(call: Call) -> Action:
    """Details are metadata; with `diff=1` they show the files' contents: downloading them (a gated
    repo's gate applies, and a lock-bound token, which downloads files by commit and path, is refused)."""
    return Action.DOWNLOAD if call.flag("diff") else Action.READ_REPO


@table.add("GET", rf"{BASE}/{NUM}", action=_reading)
def discussion_details(call: Call) -> Response:
    if isinstance(call.authorized, MirroredRepository):
        return json_response(upstream_discussion(call.authorized, int(call.params["num"]), call.flag("diff")))
    repo = hosted(call)
    if call.flag("diff"):
        call.audit.update(kind="diff", num=int(call.params["num"]))
    return json_response(call.hub.discussions.details(repo, int(call.params["num"]), call.flag("diff")))


@table.add("POST", rf"{BASE}/{NUM}/comment", action=Action.DISCUSS, body="json")
def comment(call: Call) -> Response:
    repo = hosted(call)
    assert call.principal is not None
    event = call.hub.discussions.comment(repo, int(call.params["num"]), call.principal.name, _text(call, "comment"))
    return json_response({"newMessage": event})


@table.add("POST", rf"{BASE}/{NUM}/status", action=_unless_mirrored(Action.AUTHOR), subject=_numbered, body="json")
def change_status(call: Call) -> Response:
    repo = hosted(call)
    assert call.principal is not None
    body = call.body if isinstance(call.body, dict) else {}
    note = body.get("comment")
    event = call.hub.discussions.set_status(repo, int(call.params["num"]), call.principal.name, _text(call, "status"),
                                            note if isinstance(note, str) else None)
    return json_response({"newStatus": event})


@table.add("POST", rf"{BASE}/{NUM}/title", action=_unless_mirrored(Action.AUTHOR), subject=_numbered, body="json")
def rename(call: Call) -> Response:
    repo = hosted(call)
    assert call.principal is not None
    event = call.hub.discussions.rename(repo, int(call.params["num"]), call.principal.name, _text(call, "title"))
    return json_response({"newTitle": event})


@table.add("POST", rf"{BASE}/{NUM}/merge", action=_unless_mirrored(Action.WRITE_REPO), body="json")
def merge(call: Call) -> Response:
    repo = hosted(call)
    body = call.body if isinstance(call.body, dict) else {}
    note = body.get("comment")
    sha = call.hub.discussions.merge(repo, int(call.params["num"]), author_of(call), note if isinstance(note, str) else None)
    call.audit.update(kind="merge", commit=sha)
    return json_response({"mergeCommitId": sha})
