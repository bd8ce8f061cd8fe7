"""Garbage collection: git objects no ref reaches, LFS links no commit uses, blobs nothing names.

What is live: every git object reachable from a ref of a hosted repo; every blob-store object that
such an object names (an LFS pointer's oid, a large regular file's content), that a repo was sent
within `upload_grace` (an LFS upload waiting for its commit), or that the mirror caches. The rest
goes, in this order, each step safe to interrupt and to repeat:

1. Blob-store objects are listed first; only those last written before `now - grace` are candidates.
   Every writer that publishes a blob (uploads, inline commits, large regular files, mirror fetches)
   writes it again even if it exists, so a blob about to be referenced is never a candidate as long
   as `grace` exceeds the time between writing a blob and committing what names it (default 1 h).
2. Mark: walk every ref. Sweep unmarked git objects in batches, each in a transaction that excludes
   writers (`storage.gcguard`) and first re-walks the refs as they are now, so a commit made since
   the mark (which may reuse an old object it found unused) keeps what it reaches.
3. Drop links (repo_lfs_objects) older than `upload_grace` that no remaining git object uses; then
   Xet links, files and xorbs nothing keeps (`maintenance.xetgc`).
4. Check the candidates, in a writer-excluding transaction, against what still names them; delete the
   unnamed ones with `delete_if_older`, which leaves alone a blob written again meanwhile.

One collector runs at a time across processes (the `maintenance` row of `gc`); a crashed run's
claim is taken over once its process is gone, or after `LEASE` seconds from another machine.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, delete, or_, select, update
from sqlalchemy.orm import Session

from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.maintenance.reach import Reach, roots, walk
from hubgate.maintenance.xetgc import sweep_xet, xorb_blobs
from hubgate.processes import alive
from hubgate.storage.blobs import BlobStore
from hubgate.storage.gcguard import GC, exclude_writers
from hubgate.storage.metadata import GitObject, Maintenance, MetadataStore, MirrorFile, RepoLfsObject

log = logging.getLogger("hubgate.gc")

LEASE = 6 * 3600  # seconds after which another machine takes over a collector that never finished
OBJECT_BATCH = 2000
BLOB_BATCH = 500


@dataclass
class GcReport:
    objects_deleted: int = 0
    links_dropped: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    blobs_kept_young: int = 0
    xet_links_dropped: int = 0
    xet_files_deleted: int = 0
    xorbs_deleted: int = 0
    skipped: str | None = None

    def summary(self) -> str:
        if self.skipped:
            return f"gc skipped: {self.skipped}"
        return (
            f"gc: {self.objects_deleted} git objects, {self.links_dropped} upload links, "
            f"{self.xet_links_dropped} Xet file links, {self.xet_files_deleted} Xet files, {self.xorbs_deleted} xorbs, "
            f"{self.blobs_deleted} blobs ({self.bytes_freed} bytes) collected; "
            f"{self.blobs_kept_young} blobs younger than the grace period left for later"
        )


class Collector:
    def __init__(
        self, metadata: MetadataStore, blobs: BlobStore, grace: float, upload_grace: float, crash: CrashPoints = NO_CRASH
    ) -> None:
        self.metadata = metadata
        self.crash = crash
        self.blobs = blobs
        self.grace = grace
        self.upload_grace = upload_grace
        self.me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def run(self) -> GcReport:
        started = time.time()
        holder = self._claim(started)
        if holder is not None:
            return GcReport(skipped=f"another collector is running ({holder})")
        report = GcReport()
        try:
            self._collect(started, report)
        finally:
            self._release(report)
        log.info("%s in %.1f s", report.summary(), time.time() - started)
        return report

    # -- one collector at a time ----------------------------------------------------------------
    def _claim(self, now: float) -> str | None:
        """None once this collector holds the claim, else who does."""
        with self.metadata.session() as session:
            row = session.get(Maintenance, GC)
            seen = row.owner if row else None
            if seen is not None and row is not None and _holds(seen, row.started_at or 0.0, now):
                return seen
            claimed = _changed(session,
                update(Maintenance)
                .where(Maintenance.name == GC, Maintenance.owner.is_(None) if seen is None else Maintenance.owner == seen)
                .values(owner=self.me, started_at=now)
            )
        return None if claimed == 1 else "another process, just now"

    def _release(self, report: GcReport) -> None:
        with self.metadata.session() as session:
            session.execute(
                update(Maintenance)
                .where(Maintenance.name == GC, Maintenance.owner == self.me)
                .values(owner=None, finished_at=time.time(), report=json.dumps(asdict(report)))
            )

    # -- the collection -------------------------------------------------------------------------
    def _collect(self, started: float, report: GcReport) -> None:
        cutoff = started - self.grace
        self.blobs.recover_deletes()
        candidates: dict[str, int] = {}
        for blob in self.blobs.scan():
            if blob.written_at < cutoff:
                candidates[blob.sha256] = blob.size
            else:
                report.blobs_kept_young += 1
        reach = Reach()
        with self.metadata.session() as session:
            walk(session, roots(session), reach)
            garbage = sorted(set(session.scalars(select(GitObject.sha1))) - reach.objects)
        for batch in _chunks(garbage, OBJECT_BATCH):
            with self.metadata.session() as session:
                exclude_writers(session)
                walk(session, roots(session), reach)  # what commits made since the mark reach
                doomed = [sha1 for sha1 in batch if sha1 not in reach.objects]
                report.objects_deleted += _changed(session, delete(GitObject).where(GitObject.sha1.in_(doomed)))
            self.crash.hit("gc-swept")
        with self.metadata.session() as session:
            exclude_writers(session)
            used = select(GitObject.lfs_sha256).where(GitObject.lfs_sha256.is_not(None))
            report.links_dropped = _changed(session,
                delete(RepoLfsObject).where(
                    or_(RepoLfsObject.linked_at.is_(None), RepoLfsObject.linked_at < started - self.upload_grace),
                    RepoLfsObject.oid.not_in(used),
                )
            )
        with self.metadata.session() as session:
            exclude_writers(session)
            swept = sweep_xet(session, started - self.upload_grace, cutoff)
            report.xet_links_dropped, report.xet_files_deleted, report.xorbs_deleted = swept.links, swept.files, swept.xorbs
        for batch in _chunks(sorted(candidates), BLOB_BATCH):
            with self.metadata.session() as session:
                exclude_writers(session)
                named = set(session.scalars(select(GitObject.lfs_sha256).where(GitObject.lfs_sha256.in_(batch))))
                named |= set(session.scalars(select(GitObject.content_sha256).where(GitObject.content_sha256.in_(batch))))
                named |= set(session.scalars(select(RepoLfsObject.oid).where(RepoLfsObject.oid.in_(batch))))
                named |= set(session.scalars(select(MirrorFile.sha256).where(MirrorFile.sha256.in_(batch))))
                named |= xorb_blobs(session, batch)
            for sha256 in batch:
                if sha256 not in named and self.blobs.delete_if_older(sha256, cutoff):
                    report.blobs_deleted += 1
                    report.bytes_freed += candidates[sha256]


def _holds(owner: str, started_at: float, now: float) -> bool:
    """Whether the collector `owner` ("host:pid:thread") may still be running."""
    host, _, rest = owner.partition(":")
    if host == socket.gethostname():
        return alive(int(rest.partition(":")[0] or 0))
    return now - started_at < LEASE


def _changed(session: Session, statement: Executable) -> int:
    """Rows an UPDATE or DELETE changed."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class PeriodicCollector:
    """Runs a collection every `interval` seconds in a background thread of the server."""

    def __init__(self, collector: Collector, interval: float) -> None:
        self.collector = collector
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="hubgate-gc")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.collector.run()
            except Exception:
                log.exception("garbage collection failed; retrying in %s s", self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)  # a collection under way is safe to abandon
