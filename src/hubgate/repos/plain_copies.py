"""Plain copies of files uploaded through Xet, for clients without hf_xet (plain HTTP, git-lfs).

Such a file's bytes live in xorbs; rebuilding them costs CPU on every download. The first whole
download of a file therefore also writes the rebuilt bytes into the blob store, with the file's
SHA-256 as the expected digest: the copy is published only if the bytes hash to it (the last piece
of the answer is held back until then, so a client never gets the whole of bytes that failed), and
from then on the file is served like an LFS object (sendfile, S3 proxy or redirect, Range).

The copies are a cache (`xet_plain_copies`), capped by `[xet] plain_copy_max_bytes`, least recently
used first out. One process writes a given copy (its row is the claim; other downloads meanwhile
rebuild without copying); a claim whose writer died is taken over after `CLAIM_TTL`. Eviction leaves
alone copies used in the last `plain_copy_idle` seconds, checks in a transaction that excludes
writers (`storage.gcguard`) that no LFS upload, regular file, mirror or xorb names the same blob,
and deletes the blob only if nobody wrote it again meanwhile (`delete_if_older`). Garbage collection
keeps a copy's blob while its row lives; the row goes with its Xet file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update

from hubgate.config import XetSettings
from hubgate.repos.base import Content, stored_content
from hubgate.storage.blobs import BlobStore
from hubgate.storage.dialects import insert_for
from hubgate.storage.gcguard import exclude_writers
from hubgate.storage.metadata import GitObject, MetadataStore, MirrorFile, RepoLfsObject
from hubgate.storage.xettables import XetPlainCopy, XetXorb

log = logging.getLogger("hubgate.xet")

CLAIM_TTL = 3600.0  # seconds after which a copy still being written is taken over (its writer died)
TOUCH_EVERY = 60.0  # seconds between two writes of one copy's last use by one process

Read = Callable[[int, int], Iterator[bytes]]


class PlainCopies:
    def __init__(self, metadata: MetadataStore, blobs: BlobStore, settings: XetSettings) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.max_bytes = settings.plain_copy_max_bytes
        self.idle = settings.plain_copy_idle
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def served(self, sha256: str, size: int) -> Content | None:
        """The stored copy of content `sha256`, as an LFS file is served; None if there is none."""
        content = stored_content(self.blobs, sha256, size, redirect=True)  # as LFS files are
        if content is not None:
            self._touch(sha256)
        return content

    def reading(self, file_hash: str, sha256: str, size: int, read: Read) -> Read:
        """`read(start, end)`, which also keeps a copy when it reads the whole file and may copy it."""

        def reader(start: int, end: int) -> Iterator[bytes]:
            pieces = read(start, end)  # a range past the end is refused now, before any byte
            return self._copying(pieces, file_hash, sha256, size) if start == 0 and end == size - 1 else pieces

        return reader

    # -- writing a copy ----------------------------------------------------------------------------
    def _claim(self, file_hash: str, sha256: str, size: int) -> bool:
        if size == 0 or size > self.max_bytes:
            return False
        now = time.time()
        table = XetPlainCopy.__table__
        with self.metadata.session() as session:
            statement = insert_for(session)(XetPlainCopy).on_conflict_do_update(
                index_elements=["sha256"],
                set_={"last_access": now, "file_hash": file_hash, "size": size},
                where=table.c.ready.is_(False) & (table.c.last_access < now - CLAIM_TTL),
            )
            row = {"sha256": sha256, "file_hash": file_hash, "size": size, "ready": False, "last_access": now}
            # Whether a row was written, by RETURNING: an upsert's rowcount is -1 on PostgreSQL (psycopg).
            return session.connection().execute(statement.returning(table.c.sha256), row).first() is not None

    def _release(self, sha256: str) -> None:
        with self.metadata.session() as session:
            session.execute(delete(XetPlainCopy).where(XetPlainCopy.sha256 == sha256, XetPlainCopy.ready.is_(False)))

    def _copying(self, pieces: Iterator[bytes], file_hash: str, sha256: str, size: int) -> Iterator[bytes]:
        """`pieces`, written to the blob store on the way if this process may write the copy (else
        just `pieces`); the last piece goes out once the copy is published (its bytes verified), so
        a mismatch ends the answer short of its length. Runs as the stream is read (in a worker thread)."""
        if not self._claim(file_hash, sha256, size):
            yield from pieces
            return
        writer = self.blobs.writer(sha256)
        published = False
        try:
            held: bytes | None = None
            for piece in pieces:
                writer.write(piece)
                if held is not None:
                    yield held
                held = piece
            try:
                writer.commit(sha256, size)
            except Exception:
                log.error("the Xet file rebuilt for %s does not hash to it: no plain copy kept, the answer ends short", sha256)
                raise
            published = True
            self._ready(sha256)
            if held is not None:
                yield held
        finally:
            writer.abort()
            if not published:
                self._release(sha256)
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        self.evict()

    def _ready(self, sha256: str) -> None:
        with self.metadata.session() as session:
            session.execute(update(XetPlainCopy).where(XetPlainCopy.sha256 == sha256).values(ready=True,
                                                                                           last_access=time.time()))

    def _touch(self, sha256: str) -> None:
        now = time.time()
        with self._lock:
            if now - self._touched.get(sha256, 0.0) < TOUCH_EVERY:
                return
            self._touched[sha256] = now
            if len(self._touched) > 10_000:
                self._touched.clear()
        with self.metadata.session() as session:
            session.execute(update(XetPlainCopy).where(XetPlainCopy.sha256 == sha256, XetPlainCopy.ready.is_(True))
                            .values(last_access=now))

    # -- the cap -----------------------------------------------------------------------------------
    def stored_bytes(self) -> int:
        with self.metadata.session() as session:
            return int(session.scalar(select(func.coalesce(func.sum(XetPlainCopy.size), 0))
                                      .where(XetPlainCopy.ready.is_(True))) or 0)

    def evict(self) -> list[str]:
        """Drop least recently used copies (idle for `plain_copy_idle`) until the copies fit the cap."""
        started = time.time()
        over = self.stored_bytes() - self.max_bytes
        if over <= 0:
            return []
        with self.metadata.session() as session:
            rows = session.execute(
                select(XetPlainCopy.sha256, XetPlainCopy.size, XetPlainCopy.last_access)
                .where(XetPlainCopy.ready.is_(True), XetPlainCopy.last_access < started - self.idle)
                .order_by(XetPlainCopy.last_access)
            ).all()
        victims: list[tuple[str, float]] = []
        for sha256, size, used in rows:
            if over <= 0:
                break
            victims.append((sha256, used))
            over -= size
        evicted = [sha256 for sha256, used in victims if self._evict(sha256, used, started)]
        if evicted:
            log.info("evicted %d plain copies of Xet files", len(evicted))
        with self._lock:
            for sha256 in evicted:
                self._touched.pop(sha256, None)
        return evicted

    def _evict(self, sha256: str, used: float, started: float) -> bool:
        with self.metadata.session() as session:
            exclude_writers(session)  # no upload links or commits the same bytes meanwhile
            gone = cast(CursorResult[Any], session.execute(delete(XetPlainCopy).where(
                XetPlainCopy.sha256 == sha256, XetPlainCopy.last_access == used))).rowcount
            if gone != 1:  # used again since it was picked
                return False
            named = (
                session.scalar(select(RepoLfsObject.oid).where(RepoLfsObject.oid == sha256).limit(1))
                or session.scalar(select(GitObject.content_sha256).where(GitObject.content_sha256 == sha256).limit(1))
                or session.scalar(select(MirrorFile.sha256).where(MirrorFile.sha256 == sha256).limit(1))
                or session.scalar(select(XetXorb.blob_sha256).where(XetXorb.blob_sha256 == sha256).limit(1))
            )
        if named is None:
            self.blobs.delete_if_older(sha256, started)
        return True
