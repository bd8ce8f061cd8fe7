"""The git-lfs batch API with the basic transfer: presigned upload URLs and verify (§6.3, §8)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from hubgate import constants
from hubgate.errors import BadRequest, Forbidden, NotFound
from hubgate.http.call import Call
from hubgate.http.responses import ContentResponse, json_response, parse_range
from hubgate.http.routing import FILE_PREFIX, RouteTable
from hubgate.repos.base import Content
from hubgate.storage.blobs import is_sha256

table = RouteTable()

LFS_REPO = rf"/{FILE_PREFIX}(?P<repo_id>[^/]+/[^/]+?)(?:\.git)?/info/lfs"
LFS_JSON = "application/vnd.git-lfs+json"
BUFFER = 1024 * 1024


def _lfs_json(data: Any, status: int = 200) -> Response:
    return json_response(data, status=status, headers={"Content-Type": LFS_JSON})


@table.add("POST", rf"{LFS_REPO}/objects/batch", body="json")
def batch(call: Call) -> Response:
    body = call.body if isinstance(call.body, dict) else None
    if body is None or body.get("operation") not in ("upload", "download") or not isinstance(body.get("objects"), list):
        raise BadRequest("Expected {'operation': 'upload'|'download', 'objects': [...]}")
    upload = body["operation"] == "upload"
    repo = call.writable_repo() if upload else call.readable_repo()
    base, ttl = call.base_url, constants.LFS_UPLOAD_URL_TTL
    answers = []
    for obj in body["objects"]:
        oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
        if not isinstance(oid, str) or not is_sha256(oid) or not isinstance(size, int) or size < 0:
            answers.append({"oid": str(oid), "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
            continue
        stored = call.hub.blobs.size(oid)
        answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if upload:
            if stored != size:
                expires, sig = call.hub.signer.sign("upload", oid, str(size), ttl=ttl)
                answer["actions"] = {
                    "upload": {"href": f"{base}/_hubgate/lfs/upload/{oid}?size={size}&exp={expires}&sig={sig}", "expires_in": ttl},
                    "verify": {"href": f"{base}/{repo.meta.ref.url_path}.git/info/lfs/objects/verify", "expires_in": ttl},
                }
        elif stored is None:
            answer["error"] = {"code": 404, "message": "Object does not exist"}
        else:
            expires, sig = call.hub.signer.sign("download", oid, ttl=ttl)
            answer["actions"] = {
                "download": {"href": f"{base}/_hubgate/lfs/download/{oid}?exp={expires}&sig={sig}", "expires_in": ttl}
            }
        answers.append(answer)
    return _lfs_json({"transfer": "basic", "objects": answers, "hash_algo": "sha256"})


@table.add("POST", rf"{LFS_REPO}/objects/verify", body="json")
def verify(call: Call) -> Response:
    call.writable_repo()
    body = call.body if isinstance(call.body, dict) else {}
    oid, size = body.get("oid"), body.get("size")
    if not isinstance(oid, str) or not is_sha256(oid):
        raise BadRequest("Invalid oid")
    if call.hub.blobs.size(oid) is None or (size is not None and call.hub.blobs.size(oid) != size):
        raise NotFound(f"Object {oid} was not uploaded")
    return _lfs_json({})


def _signed(request: Request, signer: Any, *parts: str) -> None:
    try:
        expires = int(request.query_params.get("exp", "0"))
    except ValueError:
        expires = 0
    if not signer.verify(request.query_params.get("sig", ""), expires, *parts):
        raise Forbidden("Invalid or expired signature")


@table.add("PUT", r"/_hubgate/lfs/upload/(?P<oid>[0-9a-f]{64})", body="stream")
async def upload(call: Call) -> Response:
    oid = call.params["oid"]
    size_text = call.query.get("size", "")
    if not size_text.isdigit():
        raise BadRequest("Missing size")
    _signed(call.request, call.hub.signer, "upload", oid, size_text)
    size = int(size_text)
    writer = await run_in_threadpool(call.hub.blobs.writer)
    try:
        buffered: list[bytes] = []
        pending = 0
        async for chunk in call.request.stream():
            buffered.append(chunk)
            pending += len(chunk)
            if writer.size + pending > size:
                raise BadRequest(f"Received more than the {size} bytes announced")
            if pending >= BUFFER:
                await run_in_threadpool(writer.write, b"".join(buffered))
                buffered, pending = [], 0
        if buffered:
            await run_in_threadpool(writer.write, b"".join(buffered))
        await run_in_threadpool(writer.commit, oid, size)
    finally:
        writer.abort()
    return Response(status_code=200)


@table.add("GET", r"/_hubgate/lfs/download/(?P<oid>[0-9a-f]{64})")
def download(call: Call) -> Response:
    oid = call.params["oid"]
    _signed(call.request, call.hub.signer, "download", oid)
    path = call.hub.blobs.local_path(oid)
    if path is None:
        raise NotFound(f"Object {oid} does not exist")
    content = Content(path.stat().st_size, path=path)
    return ContentResponse(content, {"ETag": f'"{oid}"'}, parse_range(call.request.headers.get("range"), content.size))
