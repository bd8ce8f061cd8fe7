"""Uploads: preupload (which files go as LFS) and the NDJSON commit (hub-protocol §6)."""

from __future__ import annotations

import tempfile
from typing import IO

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hubgate.auth.gate import Action, Subject
from hubgate.errors import BadRequest, PayloadTooLarge
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routes.discussions import hosted, proposal, proposal_subject
from hubgate.http.routes.manage import author_of
from hubgate.http.routing import API_TYPE, REPO_ID, REV, RouteTable
from hubgate.ids import check_path_to_write, check_revision
from hubgate.repos import commit_payload
from hubgate.repos.preupload import Wanted, plan
from hubgate.repos.service import PR_REF

table = RouteTable()

def _proposing(call: Call) -> Action:
    """Writers commit anywhere; any reader may open a pull request (`create_pr`), and its author
    may go on committing to its `refs/pr/N` (decided by the gate)."""
    return proposal(call.params["rev"], call.flag("create_pr"))


def _proposed(call: Call) -> Subject:
    return proposal_subject(call, call.params["rev"])


@table.add("POST", rf"/api/{API_TYPE}/{REPO_ID}/preupload/{REV}", action=_proposing, subject=_proposed, body="json")
def preupload(call: Call) -> Response:
    repo = hosted(call)
    body = call.body if isinstance(call.body, dict) else {}
    files = body.get("files")
    if not isinstance(files, list):
        raise BadRequest("Expected {'files': [...]}")
    gitignore = body.get("gitIgnore")
    if gitignore is not None and not isinstance(gitignore, str):
        raise BadRequest("gitIgnore must be the text of a .gitignore file")
    commit = repo.resolve(check_revision(call.params["rev"]))
    wanted = []
    for item in files:
        if not isinstance(item, dict):
            raise BadRequest("Each file must be an object with a 'path' and a 'size'")
        path, size = item.get("path"), item.get("size")
        if not isinstance(path, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest("Each file needs a 'path' and a non-negative integer 'size'")
        wanted.append(Wanted(check_path_to_write(path), size))
    hub = call.hub
    answers = plan(repo, commit, wanted, hub.repos.policy_for(repo, commit), gitignore,
                   hub.repos.content_oids)
    return json_response({"files": answers, "commitOid": commit})


@table.add("POST", rf"/api/{API_TYPE}/{REPO_ID}/commit/{REV}", action=_proposing, subject=_proposed, body="stream")
async def commit(call: Call) -> Response:
    hosted(call)
    limit = call.hub.settings.max_commit_bytes
    declared = call.request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Commit payload exceeds {limit} bytes")
    with tempfile.TemporaryFile(dir=call.hub.settings.tmp_dir) as spool:
        received = 0
        async for chunk in call.request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(f"Commit payload exceeds {limit} bytes")
            await run_in_threadpool(spool.write, chunk)
        await run_in_threadpool(spool.flush)
        sha = await run_in_threadpool(_apply, call, spool)
    call.audit.update(kind="commit", commit=sha)
    ref = hosted(call).meta.ref
    payload = call.extras["payload"]
    num = call.extras.get("pr")
    return json_response(
        {
            "commitOid": sha,
            "commitUrl": f"{call.base_url}/{ref.url_path}/commit/{sha}",
            "commitMessage": payload.summary,
            "commitDescription": payload.description,
            "pullRequestUrl": f"{call.base_url}/{ref.url_path}/discussions/{num}" if num else None,
        }
    )


def _apply(call: Call, spool: IO[bytes]) -> str:
    hub = call.hub
    payload = commit_payload.parse(spool, hub.blobs, hub.settings.lfs_threshold)
    call.extras["payload"] = payload
    repo = hosted(call)
    revision = check_revision(call.params["rev"])
    assert call.principal is not None
    if call.flag("create_pr"):  # a new pull request on that branch, then the commit on its ref
        num = hub.discussions.create(repo, call.principal.name, payload.summary or "Upload files", payload.description,
                                     True, target=revision.removeprefix("refs/heads/"))
        call.extras["pr"], revision = num, f"refs/pr/{num}"
        repo = hub.repos.open(repo.meta.ref) or repo
    try:
        sha = hub.repos.commit(
            repo.meta.ref,
            revision,
            payload.operations,
            author=author_of(call),
            summary=payload.summary,
            description=payload.description,
            parent_commit=None if call.flag("create_pr") else payload.parent_commit,
        )
    except BaseException:  # whatever broke the commit (a refusal, a full disk, a bug)
        if "pr" in call.extras:  # no pull request without its commit
            hub.discussions.discard(repo, call.extras.pop("pr"))
        raise
    if PR_REF.fullmatch(revision):
        hub.discussions.record_commit(repo, int(revision.rsplit("/", 1)[1]), call.principal.name, sha,
                                      payload.summary or "Upload files")
    return sha
