"""The git-lfs batch API with the basic transfer: presigned upload URLs and verify (§6.3, §8)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from hubgate import constants
from hubgate.auth.gate import Action, Subject
from hubgate.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from hubgate.http.accel import accel_response
from hubgate.http.body import batches
from hubgate.http.call import Call
from hubgate.http.responses import ContentResponse, json_response, parse_range
from hubgate.http.routes.discussions import hosted, proposal, proposal_subject
from hubgate.http.routing import FILE_PREFIX, RouteTable
from hubgate.repos.discussions import refuse_mirrored
from hubgate.repos.hosted import HostedRepository
from hubgate.signing import Signer
from hubgate.storage.blobs import BlobWriter, is_sha256

table = RouteTable()

LFS_REPO = rf"/{FILE_PREFIX}(?P<repo_id>[^/]+/[^/]+?)(?:\.git)?/info/lfs"
LFS_JSON = "application/vnd.git-lfs+json"


def _lfs_json(data: Any, status: int = 200) -> Response:
    return json_response(data, status=status, headers={"Content-Type": LFS_JSON})


def _batch_body(call: Call) -> dict[str, Any]:
    body = call.body if isinstance(call.body, dict) else None
    if body is None or body.get("operation") not in ("upload", "download") or not isinstance(body.get("objects"), list):
        raise BadRequest("Expected {'operation': 'upload'|'download', 'objects': [...]}")
    if len(body["objects"]) > constants.LFS_BATCH_MAX_OBJECTS:
        raise PayloadTooLarge(
            f"Too many objects in one batch: {len(body['objects'])} (at most {constants.LFS_BATCH_MAX_OBJECTS})"
        )
    return body


def _batch_ref(call: Call) -> str | None:
    ref = _batch_body(call).get("ref")
    name = ref.get("name") if isinstance(ref, dict) else None
    if name is not None and not isinstance(name, str):
        raise BadRequest("ref.name must be a string")
    return name


def _batch_action(call: Call) -> Action:
    """Downloads as files are; uploads as commits to the batch's ref are (huggingface_hub names none
    for a pull request it is about to open: any reader may, as on the Hub)."""
    if _batch_body(call)["operation"] == "download":
        return Action.DOWNLOAD
    return proposal(_batch_ref(call), create_pr=False)


def _batch_subject(call: Call) -> Subject:
    return proposal_subject(call, _batch_ref(call))


@table.add("POST", rf"{LFS_REPO}/objects/batch", action=_batch_action, subject=_batch_subject, body="json")
def batch(call: Call) -> Response:
    body = _batch_body(call)
    upload = body["operation"] == "upload"
    call.audit["kind"] = "upload" if upload else "download"  # a pull request's upload too (Action.DISCUSS)
    # A mirrored repo's objects are not served here: a download batch about one finds nothing.
    repo = call.repo if isinstance(call.repo, HostedRepository) else None
    base, ttl = call.base_url, constants.LFS_UPLOAD_URL_TTL
    valid = [obj for obj in body["objects"] if _valid_object(obj)]
    # Objects are stored once for all repos, but a repo only reaches those it was sent or holds:
    # anything else must be uploaded (again) to this repo, which proves the sender has the bytes.
    usable = call.hub.repos.usable_lfs(repo, {obj["oid"] for obj in valid}) if repo is not None else set()
    # Contents the repo holds as Xet files (uploaded with hf_xet) are served to git-lfs all the same.
    in_xet = repo.xet_held({obj["oid"] for obj in valid} - usable) if repo is not None and not upload else set()
    answers = []
    if upload and repo is None:
        raise refuse_mirrored()
    for obj in body["objects"]:
        if not _valid_object(obj):
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            answers.append({"oid": str(oid), "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
            continue
        oid, size = obj["oid"], obj["size"]
        stored = call.hub.blobs.size(oid) if oid in usable else size if oid in in_xet else None
        answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if upload:
            assert repo is not None
            if stored != size:
                pk = str(repo.pk)
                expires, sig = call.hub.signer.sign("upload", oid, str(size), pk, ttl=ttl)
                href = f"{base}/_hubgate/lfs/upload/{oid}?size={size}&repo={pk}&exp={expires}&sig={sig}"
                answer["actions"] = {
                    "upload": {"href": href, "expires_in": ttl},
                    "verify": {"href": f"{base}/{repo.meta.ref.url_path}.git/info/lfs/objects/verify", "expires_in": ttl},
                }
        elif stored is None:
            answer["error"] = {"code": 404, "message": "Object does not exist"}
        else:
            assert repo is not None
            pk = str(repo.pk)
            expires, sig = call.hub.signer.sign("download", oid, pk, ttl=constants.LFS_DOWNLOAD_URL_TTL)
            href = f"{base}/_hubgate/lfs/download/{oid}?repo={pk}&exp={expires}&sig={sig}"
            answer["actions"] = {"download": {"href": href, "expires_in": constants.LFS_DOWNLOAD_URL_TTL}}
        answers.append(answer)
    return _lfs_json({"transfer": "basic", "objects": answers, "hash_algo": "sha256"})


def _valid_object(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    oid, size = obj.get("oid"), obj.get("size")
    return isinstance(oid, str) and is_sha256(oid) and isinstance(size, int) and not isinstance(size, bool) and size >= 0


@table.add("POST", rf"{LFS_REPO}/objects/verify", action=Action.DISCUSS, body="json")
def verify(call: Call) -> Response:
    """After an upload (which a pull request's author may make): whether this repo now has the object."""
    repo = hosted(call)
    body = call.body if isinstance(call.body, dict) else {}
    oid, size = body.get("oid"), body.get("size")
    if not isinstance(oid, str) or not is_sha256(oid):
        raise BadRequest("Invalid oid")
    stored = call.hub.blobs.size(oid) if call.hub.repos.usable_lfs(repo, {oid}) else None
    if stored is None or (size is not None and stored != size):
        raise NotFound(f"Object {oid} was not uploaded")
    return _lfs_json({})


def check_signed(request: Request, signer: Signer, *parts: str) -> None:
    """Forbidden unless the URL carries a valid, unexpired `sig` over `exp` and `parts`."""
    try:
        expires = int(request.query_params.get("exp", "0"))
    except ValueError:
        expires = 0
    if not signer.verify(request.query_params.get("sig", ""), expires, *parts):
        raise Forbidden("Invalid or expired signature")


def _write_all(writer: BlobWriter, pieces: list[bytes]) -> None:
    for piece in pieces:
        writer.write(piece)


@table.add("PUT", r"/_hubgate/lfs/upload/(?P<oid>[0-9a-f]{64})", action=Action.SIGNED, body="stream")
async def upload(call: Call) -> Response:
    oid = call.params["oid"]
    size_text, repo_pk = call.query.get("size", ""), call.query.get("repo", "")
    if not size_text.isdigit() or not repo_pk.isdigit():
        raise BadRequest("Missing size or repo")
    check_signed(call.request, call.hub.signer, "upload", oid, size_text, repo_pk)
    size = int(size_text)
    writer = await run_in_threadpool(call.hub.blobs.writer, oid)  # on S3: uploaded straight to its key
    try:
        async for pieces in batches(call.request, size, lambda: BadRequest(f"Received more than the {size} bytes announced")):
            await run_in_threadpool(_write_all, writer, pieces)
        await run_in_threadpool(writer.commit, oid, size)
    finally:
        writer.abort()
    await run_in_threadpool(call.hub.repos.link_lfs, int(repo_pk), oid)
    return Response(status_code=200)


@table.add("GET", r"/_hubgate/lfs/download/(?P<oid>[0-9a-f]{64})", action=Action.SIGNED)
def download(call: Call) -> Response:
    oid, repo_pk = call.params["oid"], call.query.get("repo", "")
    check_signed(call.request, call.hub.signer, "download", oid, repo_pk)
    # Issued for one repo: once that repo is deleted (or no longer has the object), nothing.
    content = call.hub.repos.lfs_download(int(repo_pk), oid) if repo_pk.isdigit() else None
    if content is None:
        raise NotFound(f"Object {oid} does not exist")
    headers = {"ETag": f'"{oid}"'}
    byte_range = parse_range(call.request.headers.get("range"), content.size)
    return accel_response(call, content, headers) or ContentResponse(content, headers, byte_range)
