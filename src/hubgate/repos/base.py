"""The one repository interface the API talks to, whether a repo is hosted here or mirrored."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import anyio

from hubgate.git.objects import CommitData
from hubgate.ids import RepoRef
from hubgate.storage.blobs import BlobStore, blob_key

THREAD_STEP = 1024 * 1024  # bytes a stream reads per step in a worker thread


@dataclass(frozen=True)
class LfsInfo:
    sha256: str
    size: int
    pointer_size: int
    xet_hash: str | None = None  # the Xet file holding the bytes (uploaded with Xet), else in the blob store


@dataclass(frozen=True)
class Entry:
    """A file or folder of a tree at one commit."""

    path: str
    type: str  # "file" | "directory"
    oid: str  # git blob or tree sha1
    size: int
    lfs: LfsInfo | None = None

    @property
    def etag(self) -> str:
        return self.lfs.sha256 if self.lfs else self.oid

    @property
    def content_size(self) -> int:
        return self.lfs.size if self.lfs else self.size


@dataclass(frozen=True)
class Content:
    """The bytes of a file: `opener()` giving a file on this machine's disk (a blob of the local
    store, whose `blob_key` X-Accel-Redirect may name), the bytes themselves, `stream(start, end)` yielding the
    bytes of that inclusive range (a file still arriving from upstream, or a blob in S3: then
    `verified`), or `redirect`, a presigned URL to send the client to.

    `resumable` is False for a file whose bytes were once served and then found bad: a client may
    hold a bad prefix, so a Range request past its first byte must get the whole file. It may be a
    function telling it, asked (through `can_resume`) only when such a Range request comes.
    `refetchable` marks a cached copy of an upstream file: should its file vanish before it is
    opened (evicted), asking again fetches it anew."""

    size: int
    opener: Callable[[], BinaryIO] | None = None
    blob_key: str | None = None
    data: bytes | None = None
    stream: Callable[[int, int], AsyncGenerator[bytes, None]] | None = None
    resumable: bool | Callable[[], bool] = True
    verified: bool = False
    redirect: str | None = None
    refetchable: bool = False

    def can_resume(self) -> bool:
        """Whether a Range request past the first byte may be answered with that range."""
        return self.resumable() if callable(self.resumable) else self.resumable

    def read_small(self, limit: int = 1024 * 1024) -> bytes | None:
        """All the bytes of a small file held here (None if larger than `limit` or not local)."""
        if self.size > limit:
            return None
        if self.data is not None:
            return self.data
        if self.opener is None:
            return None
        with self.opener() as handle:
            return handle.read()


def threaded(read: Callable[[int, int], Iterator[bytes]]) -> Callable[[int, int], AsyncGenerator[bytes, None]]:
    """`read(start, end)`, a blocking iterator, as an async stream whose every step (the call too)
    runs in a thread, one step ahead of the consumer, and gathers at least `THREAD_STEP` bytes: a Xet
    file's pieces are chunks of ~64 KiB."""

    async def stream(start: int, end: int) -> AsyncGenerator[bytes, None]:
        chunks = await anyio.to_thread.run_sync(read, start, end)  # it may look things up (a Xet file's xorbs)
        loop = asyncio.get_running_loop()
        # One step ahead: the next piece is read (a Xet file: rebuilt) while this one is being sent.
        ahead = loop.run_in_executor(None, _gather, chunks)
        try:
            while chunk := await ahead:
                ahead = loop.run_in_executor(None, _gather, chunks)
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):  # the step under way ends before the iterator is closed
                with contextlib.suppress(Exception):
                    await ahead
                close = getattr(chunks, "close", None)  # a generator: its clean-up (open files) runs now
                if close is not None:
                    await anyio.to_thread.run_sync(close)

    return stream


def _gather(chunks: Iterator[bytes]) -> bytes:
    """The next pieces of `chunks`, joined, up to the first that reaches `THREAD_STEP` bytes (b"" at the end)."""
    pieces: list[bytes] = []
    size = 0
    for piece in chunks:
        pieces.append(piece)
        size += len(piece)
        if size >= THREAD_STEP:
            break
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def stored_content(blobs: BlobStore, sha256: str, size: int, redirect: bool = True) -> Content | None:
    """How to serve a stored blob (None if it is not stored): its file, a presigned URL (if the
    store gives one and `redirect`: the Hub redirects LFS files only), or a stream."""
    if not blobs.exists(sha256):
        return None
    if blobs.on_disk:
        return Content(size, opener=lambda: blobs.open(sha256), blob_key=blob_key(sha256))
    url = blobs.presigned_url(sha256) if redirect else None
    if url is not None:
        return Content(size, redirect=url)
    return Content(size, stream=threaded(lambda start, end: blobs.read(sha256, start, end)), verified=True)


@dataclass(frozen=True)
class RepoMeta:
    ref: RepoRef
    private: bool
    gated: str | None
    created_at: dt.datetime
    sdk: str | None = None
    # Where the repo lives: "hosted" here, or the name of the upstream it is mirrored from.
    source: str = "hosted"
    # For mirrored repos: who may read it ("anyone", "authenticated", "admin", or "nobody" when
    # only a client's own upstream token could, and that caller has not just been vouched for).
    readers: str = "anyone"
    pk: int | None = None  # hosted repos: the database id (collaborators and access requests hang off it)


class Repository(Protocol):
    meta: RepoMeta

    def resolve(self, revision: str) -> str:
        """The 40-hex commit a branch, tag, `refs/...` name or commit id points at."""

    def commit(self, sha1: str) -> CommitData: ...

    def history(self, sha1: str) -> Iterator[CommitData]:
        """Commits reachable from `sha1`, newest first (first-parent order)."""

    def list_tree(self, commit: str, path: str = "", recursive: bool = False) -> list[Entry]: ...

    def describe(self, commit: str, path: str) -> Entry:
        """The file at `path`; EntryNotFound if there is none."""

    def open(self, entry: Entry, commit: str | None = None) -> Content:
        """The bytes of `entry` as found at `commit` (mirrored repos need the commit)."""

    def branches(self) -> dict[str, str]: ...

    def tags(self) -> dict[str, str]: ...

    def pull_requests(self) -> dict[str, str]:
        """`refs/pr/N` -> commit."""

    def response_headers(self) -> dict[str, str]:
        """Extra headers for answers about this repo (e.g. that a revision was served stale)."""

    def card_data(self, commit: str) -> dict[str, Any] | None:
        """The metadata block of the repo's README.md at `commit`: repo info's `cardData` (None: none)."""
