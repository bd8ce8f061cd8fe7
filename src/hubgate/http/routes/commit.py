"""Uploads: preupload (which files go as LFS) and the NDJSON commit (hub-protocol §6)."""

from __future__ import annotations

import tempfile
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hubgate.auth.gate import Action
from hubgate.errors import BadRequest, EntryNotFound, PayloadTooLarge
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routes.manage import author_of
from hubgate.http.routing import API_TYPE, REPO_ID, REV, RouteTable
from hubgate.repos import commit_payload
from hubgate.repos.ids import check_path, check_revision

table = RouteTable()

XET_UPLOAD_CLIENTS = (1, 20)  # huggingface_hub from 1.20 sends every "lfs" file to a Xet CAS


def _client_takes_lfs(call: Call) -> bool:
    version = call.client_hub_version
    return version is None or version < XET_UPLOAD_CLIENTS or call.hub.settings.lfs_for_xet_clients


@table.add("POST", rf"/api/{API_TYPE}/{REPO_ID}/preupload/{REV}", action=Action.WRITE_REPO, body="json")
def preupload(call: Call) -> Response:
    repo = call.hosted_repo
    files = call.body.get("files") if isinstance(call.body, dict) else None
    if not isinstance(files, list):
        raise BadRequest("Expected {'files': [...]}")
    commit = repo.resolve(check_revision(call.params["rev"]))
    policy = call.hub.repos.policy_for(repo, commit)
    lfs_ok = _client_takes_lfs(call)
    answers: list[dict[str, Any]] = []
    for item in files:
        if not isinstance(item, dict):
            raise BadRequest("Each file must be an object with a 'path' and a 'size'")
        path, size = item.get("path"), item.get("size")
        if not isinstance(path, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest("Each file needs a 'path' and a non-negative integer 'size'")
        path = check_path(path)
        mode = "lfs" if lfs_ok and policy.wants_lfs(path, size) else "regular"
        answer: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
        try:
            existing = repo.describe(commit, path)
        except EntryNotFound:
            existing = None
        if existing is not None:
            if mode == "lfs" and existing.lfs:
                answer["oid"] = existing.lfs.sha256
            elif mode == "regular" and not existing.lfs:
                answer["oid"] = existing.oid
        answers.append(answer)
    return json_response({"files": answers, "commitOid": commit})


@table.add("POST", rf"/api/{API_TYPE}/{REPO_ID}/commit/{REV}", action=Action.WRITE_REPO, body="stream")
async def commit(call: Call) -> Response:
    if call.flag("create_pr"):
        raise BadRequest("Pull requests are not supported by this server yet; commit to a branch instead.")
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
    ref = call.repo_ref
    payload = call.extras["payload"]
    return json_response(
        {
            "commitOid": sha,
            "commitUrl": f"{call.base_url}/{ref.url_path}/commit/{sha}",
            "commitMessage": payload.summary,
            "commitDescription": payload.description,
            "pullRequestUrl": None,
        }
    )


def _apply(call: Call, spool: Any) -> str:
    hub = call.hub
    payload = commit_payload.parse(spool, hub.blobs, hub.settings.lfs_threshold)
    call.extras["payload"] = payload
    return hub.repos.commit(
        call.repo_ref,
        check_revision(call.params["rev"]),
        payload.operations,
        author=author_of(call),
        summary=payload.summary,
        description=payload.description,
        parent_commit=payload.parent_commit,
    )
