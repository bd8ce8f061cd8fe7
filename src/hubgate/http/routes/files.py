"""File downloads: `HEAD|GET /{prefix}{repo}/resolve/{rev}/{path}` (hub-protocol §3)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from hubgate.auth.gate import Action
from hubgate.errors import EntryNotFound
from hubgate.http.accel import accel_response
from hubgate.http.call import Call
from hubgate.http.responses import ContentResponse, effective_range
from hubgate.http.routing import FILE_PREFIX, PATH, REPO_ID, REV, RouteTable
from hubgate.ids import check_path, check_revision
from hubgate.repos.base import Content

table = RouteTable()


@table.add("GET", rf"/{FILE_PREFIX}{REPO_ID}/resolve/{REV}/{PATH}", action=Action.DOWNLOAD)
def resolve(call: Call) -> Response:
    repo = call.repo
    path = call.params["path"]
    call.audit["file"] = path
    commit = repo.resolve(check_revision(call.params["rev"]))
    try:
        check_path(path)
    except Exception as exc:
        raise EntryNotFound(path, commit=commit) from exc
    entry = repo.describe(commit, path)
    headers = {
        "X-Repo-Commit": commit,
        "ETag": f'"{entry.etag}"',
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    if entry.lfs:
        headers["X-Linked-Etag"] = f'"{entry.lfs.sha256}"'
        headers["X-Linked-Size"] = str(entry.lfs.size)
    # A file uploaded through Xet: Xet clients fetch it from the CAS with a read token from the
    # refresh route (a token bound to a lock downloads by commit and path only: plain HTTP for it).
    locked = call.principal is not None and call.principal.scope.locked
    if entry.lfs and entry.lfs.xet_hash and not locked:
        headers["X-Xet-Hash"] = entry.lfs.xet_hash
        refresh = f"{call.base_url}/api/{repo.meta.ref.plural}/{repo.meta.ref.repo_id}/xet-read-token/{commit}"
        headers["Link"] = f'<{refresh}>; rel="xet-auth"'
    headers.update(repo.response_headers())
    source = repo.meta.source
    # HEAD only describes the file: it must not start an upstream download of a mirrored one.
    # (A hosted LFS file served by redirect answers HEAD with the redirect too, as the Hub does.)
    describe_only = call.request.method == "HEAD" and not (source == "hosted" and entry.lfs and call.hub.redirects)
    content = Content(entry.content_size) if describe_only else repo.open(entry, commit)
    fetching = content.stream is not None and not content.verified
    call.audit["cache"] = "hosted" if source == "hosted" else f"upstream:{source}" if fetching else "hit"
    byte_range = effective_range(call.request.headers, headers["ETag"], content)
    return accel_response(call, content, headers) or ContentResponse(content, headers, byte_range)
