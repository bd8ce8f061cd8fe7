"""The NDJSON body of `POST .../commit/{rev}` as commit operations (hub-protocol §6).

The body is spooled to disk and read through mmap; every line goes through the same parser
(`hubgate.repos.ndjson`) whatever its size, and a file's base64 content is decoded in slices,
straight into the blob store once it outgrows `INLINE_BLOB_MAX` (a commit never holds large files
in memory): from the LFS threshold on it is an LFS file, below it a regular one (`AddStored`).
Small files are held until the commit only up to `MAX_HELD` bytes in all; past that, every file
but the tiny ones (possible LFS pointers), README.md and .gitattributes goes to the blob store too.
"""

from __future__ import annotations

import binascii
import mmap
import re
from dataclasses import dataclass, field
from typing import IO, Any

from hubgate import constants
from hubgate.errors import BadRequest
from hubgate.git.blobid import blob_hasher
from hubgate.git.objects import MAX_POINTER_SIZE
from hubgate.ids import check_path_to_write, is_utf8, shown
from hubgate.repos import modelcard
from hubgate.repos.commits import AddBytes, AddLfs, AddStored, DeleteFile, DeleteFolder, Operation
from hubgate.repos.ndjson import Line, Span, lines
from hubgate.storage.blobs import BlobStore, BlobWriter, is_sha256

# Longest commit title and description (git itself has no limit; these bound what is kept).
MAX_SUMMARY = 64 * 1024
MAX_DESCRIPTION = 1024 * 1024
# Bytes of small files one commit holds in memory until it is applied (a commit of many of them).
MAX_HELD = 64 * 1024 * 1024
_BASE64 = re.compile(r"[A-Za-z0-9+/]*(=*)")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


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
    held = 0  # bytes of the AddBytes operations so far
    with mmap.mmap(body.fileno(), 0, access=mmap.ACCESS_READ) as spool:
        for line in lines(spool):
            item = line.item
            if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
                raise BadRequest("Each NDJSON line must be an object with 'key' and 'value'")
            key = line.text(item.get("key"), "The operation key")
            if key == "header":
                seen_header = True
                _read_header(payload, line, item["value"])
            else:
                operation = _operation(line, key, item["value"], lfs_threshold, blobs, MAX_HELD - held)
                held += len(operation.data) if isinstance(operation, AddBytes) else 0
                payload.operations.append(operation)
            line.check_unused()
    if not seen_header:
        raise BadRequest("The commit payload has no header line")
    return payload


def _read_header(payload: CommitPayload, line: Line, value: dict[str, Any]) -> None:
    texts = {}
    for name, limit in (("summary", MAX_SUMMARY), ("description", MAX_DESCRIPTION)):
        text = line.text(value.get(name), f"The commit {name}")
        if text is not None and not isinstance(text, str):
            raise BadRequest(f"The commit {name} must be a string")
        if text and not is_utf8(text):
            raise BadRequest(f"The commit {name} is not valid Unicode")
        if text and len(text) > limit:
            raise BadRequest(f"The commit {name} is too long (at most {limit} characters)")
        texts[name] = text or ""
    parent = line.text(value.get("parentCommit"), "parentCommit")
    if parent is not None and not (isinstance(parent, str) and _COMMIT_ID.fullmatch(parent)):
        raise BadRequest("parentCommit must be a 40-hex commit id")
    payload.summary, payload.description, payload.parent_commit = texts["summary"], texts["description"], parent


def _operation(
    line: Line, key: object, value: dict[str, Any], lfs_threshold: int, blobs: BlobStore, room: int
) -> Operation:
    path = line.text(value.get("path"), "The path")
    if not isinstance(path, str):
        raise BadRequest(f"Operation {shown(key)} needs a 'path'")
    if key == "file":
        return _file(line, check_path_to_write(path), value, lfs_threshold, blobs, room)
    if key == "lfsFile":
        oid = line.text(value.get("oid"), "The oid")
        if line.text(value.get("algo", "sha256"), "algo") != "sha256" or not isinstance(oid, str) or not is_sha256(oid):
            raise BadRequest(f"LFS file {shown(path)}: oid must be a sha256")
        size = value.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise BadRequest(f"LFS file {shown(path)}: invalid size")
        return AddLfs(check_path_to_write(path), oid, size)
    if key == "deletedFile":
        return DeleteFile(check_path_to_write(path))
    if key == "deletedFolder":
        return DeleteFolder(path)
    raise BadRequest(f"Unknown commit operation {shown(key)}")


def _file(line: Line, path: str, value: dict[str, Any], lfs_threshold: int, blobs: BlobStore, room: int) -> Operation:
    """A file operation; at most `room` more bytes of it held in memory (the commit's allowance left)."""
    content = value.get("content")
    source = line.span(content) or content
    if line.text(value.get("encoding", "base64"), "The encoding") != "base64" or not isinstance(source, (str, Span)):
        raise BadRequest(f"File {shown(path)}: content must be a base64 string")
    # .gitattributes decides the commit's LFS policy: read whole, like any small file.
    in_memory = lfs_threshold if path == ".gitattributes" else min(lfs_threshold, constants.INLINE_BLOB_MAX + 1)
    if path not in (".gitattributes", modelcard.CARD):  # read whole by the commit, as are possible LFS pointers
        in_memory = min(in_memory, max(room, MAX_POINTER_SIZE + 1))
    decoder = _Base64(in_memory, lfs_threshold, blobs)
    try:
        for piece in line.pieces(source):
            decoder.feed(piece)
        return decoder.finish(path)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"File {shown(path)}: invalid base64 content") from exc
    finally:
        decoder.abort()


class _Base64:
    """Strict base64 (standard alphabet, padding only at the very end, no whitespace), decoded
    piece by piece: in memory below `in_memory` bytes, into the blob store from there on."""

    def __init__(self, in_memory: int, lfs_threshold: int, blobs: BlobStore) -> None:
        self._threshold = in_memory
        self._lfs_threshold = lfs_threshold
        self._blobs = blobs
        self._pending = ""
        self._padding = 0
        self._data = bytearray()
        self._writer: BlobWriter | None = None
        self._size = 0

    def feed(self, text: str) -> None:
        found = _BASE64.fullmatch(text)
        if found is None or (self._padding and text.strip("=")):
            raise ValueError("not base64")
        self._padding += len(found.group(1))
        text = self._pending + text
        whole = len(text) - len(text) % 4
        self._pending = text[whole:]
        if whole:
            self._write(binascii.a2b_base64(text[:whole], strict_mode=True))

    def _write(self, data: bytes) -> None:
        self._size += len(data)
        if self._writer is None:
            self._data += data
            if len(self._data) < self._threshold:
                return
            self._writer = self._blobs.writer()
            data, self._data = bytes(self._data), bytearray()
        self._writer.write(data)

    def finish(self, path: str) -> Operation:
        if self._pending or self._padding > 2:
            raise ValueError("base64 length or padding")
        if self._writer is None:
            return AddBytes(path, bytes(self._data))
        writer, self._writer = self._writer, None
        sha256 = writer.commit()
        if self._size >= self._lfs_threshold:
            return AddLfs(path, sha256, self._size, inline=True)
        return AddStored(path, self._git_blob_id(sha256), sha256, self._size)

    def _git_blob_id(self, sha256: str) -> str:
        """The git id of a stored regular file (its size was unknown while it was decoded)."""
        hasher = blob_hasher(self._size)
        with self._blobs.open(sha256) as stored:
            while chunk := stored.read(1024 * 1024):
                hasher.update(chunk)
        return hasher.hexdigest()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
