"""The Xet CAS (xet-protocol.md §2.2) under `/xet-cas` on the hub's own port.

Every call but the xorb-range URL carries a CAS token (`auth.castokens`), checked by the gate; a
read token reconstructs only files registered for its repo. Endpoints hubgate does not implement
(global dedup, upload grants, v2 shards and reconstructions) answer 404 at once, which clients take
as "use the fallback".
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hubgate import constants
from hubgate.auth.gate import Action
from hubgate.errors import BadRequest, HubError, NotFound, PayloadTooLarge
from hubgate.http.accel import accel_response
from hubgate.http.body import batches
from hubgate.http.call import Call
from hubgate.http.responses import ContentResponse, json_response, parse_range
from hubgate.http.routes.lfs import check_signed
from hubgate.http.routing import RouteTable
from hubgate.repos.base import stored_content
from hubgate.xet.hashing import str_to_hash
from hubgate.xet.store import MAX_SHARD_BYTES
from hubgate.xet.xorb import MAX_XORB_BYTES

table = RouteTable()

CAS = "/xet-cas"
HASH = r"(?P<hash>[^/]+)"


def cas_url(call: Call) -> str:
    """The `casUrl` the hub's token endpoints hand out (no trailing slash)."""
    return f"{call.base_url}{CAS}"


def _hash(call: Call) -> bytes:
    try:
        return str_to_hash(call.params["hash"])
    except ValueError:
        raise BadRequest(f"Invalid Xet hash {call.params['hash'][:80]!r}: expected 64 lowercase hex digits") from None


def _too_large(limit: int) -> Callable[[], HubError]:
    return lambda: PayloadTooLarge(f"The body exceeds {limit} bytes")


@table.add("GET", rf"{CAS}/v1/chunks/(?:default|default-merkledb)/{HASH}", action=Action.CAS_READ)
def dedup_query(call: Call) -> Response:
    """Global deduplication: the xorbs (among those the token's repo may read) that hold a chunk."""
    answer = call.hub.xet.dedup(_hash(call), call.cas.repo_pk)
    if answer is None:
        raise NotFound(f"Chunk {call.params['hash']} is not known here")
    return Response(answer, media_type="application/octet-stream")


@table.add("POST", rf"{CAS}/v1/xorb-grants/default/{HASH}", action=Action.CAS_WRITE)
def xorb_grant(call: Call) -> Response:
    raise NotFound("Upload grants are not offered by this server: POST /v1/xorbs")


@table.add("POST", rf"{CAS}/v2/shards", action=Action.CAS_WRITE)
def shard_v2(call: Call) -> Response:
    raise NotFound("Streaming shard uploads are not offered by this server: POST /v1/shards")


@table.add("GET", rf"{CAS}/v2/reconstructions/{HASH}", action=Action.CAS_READ)
def reconstruction_v2(call: Call) -> Response:
    raise NotFound("v2 reconstructions are not offered by this server: GET /v1/reconstructions")


@table.add("POST", rf"{CAS}/v1/xorbs/default/{HASH}", action=Action.CAS_WRITE, body="stream")
async def upload_xorb(call: Call) -> Response:
    """A xorb, checked and written as it arrives (XorbUpload): memory per upload stays about a megabyte."""
    xorb = _hash(call)
    call.audit["kind"] = "xet-xorb"
    upload = await run_in_threadpool(call.hub.xet.xorb_upload, xorb)
    try:
        async for pieces in batches(call.request, MAX_XORB_BYTES, _too_large(MAX_XORB_BYTES)):
            await run_in_threadpool(upload.feed, pieces)
        inserted = await run_in_threadpool(upload.finish)
    finally:
        upload.abort()  # no-op once finished
    return json_response({"was_inserted": inserted})


@table.add("POST", rf"{CAS}/v1/shards", action=Action.CAS_WRITE, body="stream")
async def upload_shard(call: Call) -> Response:
    call.audit["kind"] = "xet-shard"
    with tempfile.TemporaryFile(dir=call.hub.settings.tmp_dir) as spool:
        async for pieces in batches(call.request, MAX_SHARD_BYTES, _too_large(MAX_SHARD_BYTES)):
            await run_in_threadpool(spool.writelines, pieces)
        spool.seek(0)
        result = await run_in_threadpool(call.hub.xet.register_shard, spool, call.cas.repo_pk)
    return json_response({"result": result})


@table.add("GET", rf"{CAS}/v1/reconstructions/{HASH}", action=Action.CAS_READ)
def reconstruction(call: Call) -> Response:
    xet = call.hub.xet
    file = xet.readable(_hash(call), call.cas.repo_pk)
    if file is None:  # unknown, or not this repo's: the same answer
        raise NotFound(f"File {call.params['hash']} not found")
    byte_range = parse_range(call.request.headers.get("range"), file.size)
    start, end = byte_range if byte_range is not None else (0, file.size - 1)
    # The audit log's download of this file: the bytes then come from signed xorb URLs, unrecorded.
    call.audit.update(kind="download", via="xet", xet_hash=call.params["hash"], sha256=file.sha256,
                      range=f"{start}-{end}" if file.size else None, file_size=file.size)
    base, signer = call.base_url, call.hub.signer

    def url_for(xorb: str) -> str:
        expires, sig = signer.sign("xet-data", xorb, ttl=constants.XET_FETCH_URL_TTL)
        return f"{base}{CAS}/data/{xorb}?exp={expires}&sig={sig}"

    return json_response(xet.reconstruction(file, start, end, url_for))


@table.add("GET", rf"{CAS}/data/(?P<xorb>[0-9a-f]{{64}})", action=Action.SIGNED)
def xorb_data(call: Call) -> Response:
    """Ranges of a stored xorb's bytes, for the URLs of a reconstruction answer (no Authorization)."""
    xorb = call.params["xorb"]
    check_signed(call.request, call.hub.signer, "xet-data", xorb)
    found = call.hub.xet.xorb_blob(xorb)
    content = stored_content(call.hub.blobs, found[0], found[1], redirect=False) if found is not None else None
    if content is None:
        raise NotFound(f"Xorb {xorb} not found")
    byte_range = parse_range(call.request.headers.get("range"), content.size)
    return accel_response(call, content, {}) or ContentResponse(content, {}, byte_range)
