"""Parse the NDJSON body of `POST .../commit/{rev}` into operations.

The body is spooled to disk first and read through mmap, so a line carrying a 100 MB base64
file is decoded in slices straight into the blob store instead of being held in memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import mmap
import re
from dataclasses import dataclass, field
from typing import IO, Any

from hubgate.errors import BadRequest
from hubgate.repos.commits import AddBytes, AddLfs, DeleteFile, DeleteFolder, Operation
from hubgate.repos.ids import check_path, is_utf8
from hubgate.storage.blobs import BlobStore, is_sha256

SMALL_LINE = 4 * 1024 * 1024
_CONTENT_KEY = re.compile(rb'"content"\s*:\s*"')
_DECODE_SLICE = 4 * 1024 * 1024  # multiple of 4


@dataclass
class CommitPayload:
    summary: str = ""
    description: str = ""
    parent_commit: str | None = None
    operations: list[Operation] = field(default_factory=list)


def parse(body: IO[bytes], blobs: BlobStore, lfs_threshold: int) -> CommitPayload:
    body.seek(0, 2)
    if body.tell() == 0:
        raise BadRequest("Empty commit payload")
    payload = CommitPayload()
    seen_header = False
    # Lines up to this size are parsed in memory; a longer one must carry a file that is stored
    # as LFS anyway (its decoded content is at least the threshold).
    small_limit = max(SMALL_LINE, lfs_threshold * 4 // 3 + 65536)
    with mmap.mmap(body.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos, end = 0, len(mm)
        while pos < end:
            nl = mm.find(b"\n", pos)
            line_end = end if nl == -1 else nl
            if mm[pos:line_end].strip():
                if line_end - pos <= small_limit:
                    item = _loads(mm[pos:line_end])
                    op = _small_operation(item, lfs_threshold, blobs)
                else:
                    op = _large_file(mm, pos, line_end, blobs, lfs_threshold)
                    item = {"key": "file"}
                if op is None:
                    seen_header = True
                    _read_header(payload, item)
                else:
                    payload.operations.append(op)
            pos = line_end + 1
    if not seen_header:
        raise BadRequest("The commit payload has no header line")
    return payload


def _loads(raw: bytes) -> Any:
    try:
        item = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed NDJSON line: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("Malformed NDJSON line: nested too deeply") from exc
    if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
        raise BadRequest("Each NDJSON line must be an object with 'key' and 'value'")
    return item


def _read_header(payload: CommitPayload, item: dict[str, Any]) -> None:
    value = item["value"]
    for field_name in ("summary", "description"):
        text = value.get(field_name)
        if text is not None and not isinstance(text, str):
            raise BadRequest(f"The commit {field_name} must be a string")
        if text and not is_utf8(text):
            raise BadRequest(f"The commit {field_name} is not valid Unicode")
    payload.summary = value.get("summary") or ""
    payload.description = value.get("description") or ""
    parent = value.get("parentCommit")
    if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{40}", parent)):
        raise BadRequest("parentCommit must be a 40-hex commit id")
    payload.parent_commit = parent


def _small_operation(item: dict[str, Any], lfs_threshold: int, blobs: BlobStore) -> Operation | None:
    key, value = item.get("key"), item["value"]
    if key == "header":
        return None
    path = value.get("path")
    if not isinstance(path, str):
        raise BadRequest(f"Operation {key!r} needs a 'path'")
    if key == "file":
        if value.get("encoding", "base64") != "base64" or not isinstance(value.get("content"), str):
            raise BadRequest(f"File {path}: content must be a base64 string")
        try:
            data = base64.b64decode(value["content"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"File {path}: invalid base64 content") from exc
        if len(data) >= lfs_threshold:
            writer = blobs.writer()
            writer.write(data)
            return AddLfs(check_path(path), writer.commit(), len(data), inline=True)
        return AddBytes(check_path(path), data)
    if key == "lfsFile":
        oid = value.get("oid")
        if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not is_sha256(oid):
            raise BadRequest(f"LFS file {path}: oid must be a sha256")
        size = value.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise BadRequest(f"LFS file {path}: invalid size")
        return AddLfs(check_path(path), oid, size)
    if key == "deletedFile":
        return DeleteFile(check_path(path))
    if key == "deletedFolder":
        return DeleteFolder(path)
    raise BadRequest(f"Unknown commit operation {key!r}")


def _large_file(mm: mmap.mmap, start: int, end: int, blobs: BlobStore, lfs_threshold: int) -> Operation:
    """A `file` line too large to parse whole: stream its base64 content into the blob store."""
    found = _CONTENT_KEY.search(mm, start, end)
    if found is None:
        raise BadRequest("Malformed NDJSON line: oversized line without file content")
    value_start = found.end()
    value_end = mm.find(b'"', value_start, end)
    if value_end == -1:
        raise BadRequest("Malformed NDJSON line: unterminated content")
    rest = _loads(mm[start:value_start] + mm[value_end:end])
    value = rest["value"]
    if rest.get("key") != "file" or value.get("encoding", "base64") != "base64" or not isinstance(value.get("path"), str):
        raise BadRequest("Malformed NDJSON line: oversized line is not a base64 file")
    path = check_path(value["path"])
    writer = blobs.writer()
    try:
        for offset in range(value_start, value_end, _DECODE_SLICE):
            piece = mm[offset : min(offset + _DECODE_SLICE, value_end)]
            writer.write(base64.b64decode(piece, validate=True))
    except (binascii.Error, ValueError) as exc:
        writer.abort()
        raise BadRequest(f"File {path}: invalid base64 content") from exc
    return AddLfs(path, writer.commit(), writer.size, inline=True)
