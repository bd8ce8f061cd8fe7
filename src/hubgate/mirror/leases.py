"""Leases in the metadata database: one process among every replica does a job at a time.

Replicas sharing one database and one bucket fetch each upstream file once: the process that
takes the lease `fetch:<oid>` downloads it, the others stream its bytes from it (see
replicas.py). A lease names its holder (one process) and where other replicas reach it, and
lasts `LEASE_TTL` seconds unless a heartbeat thread renews it: a holder that dies (kill -9, a
lost machine) loses it by expiry, or sooner when another replica finds it unreachable and takes
the lease over (`steal_from`). A lease is only about efficiency: two replicas that both fetch a
file publish the same verified bytes once (content addressed, conditional create).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hubgate.storage.metadata import MetadataStore, MirrorLease
from hubgate.storage.upsert import upsert

log = logging.getLogger("hubgate.mirror")

LEASE_TTL = 15.0  # seconds a lease lasts unless renewed
RENEW_EVERY = 3.0  # seconds between the heartbeat's renewals


def file_lease(oid: str) -> str:
    """The lease on fetching the mirrored file `oid`."""
    return f"fetch:{oid}"


@dataclass(frozen=True)
class Holder:
    """Another process's lease."""

    holder: str
    url: str  # where replicas reach it; "" for a process that serves nobody (a CLI pull)
    expires_at: float
    streaming: bool  # its upstream answered: bytes are coming


@dataclass(frozen=True)
class Taken:
    """A lease this process took; `took_over` when another holder had it and never released it
    (died mid-job, or stalled past expiry): what that holder started cannot be vouched for."""

    took_over: bool


class Leases:
    def __init__(self, metadata: MetadataStore, url: str = "", ttl: float = LEASE_TTL) -> None:
        self.metadata = metadata
        self.me = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.url = url  # filled in from the first request's address when not configured
        self.ttl = ttl
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, name: str, steal_from: str | None = None) -> Taken | Holder:
        """Take the lease `name` if it is free, expired, this process's, or `steal_from`'s;
        otherwise return who holds it."""
        now = time.time()
        free = (MirrorLease.expires_at < now) | (MirrorLease.holder == self.me)
        if steal_from is not None:
            free = free | (MirrorLease.holder == steal_from)
        with self.metadata.session() as session:
            before = _row(session, name)
            upsert(session, MirrorLease,
                   {"name": name, "holder": self.me, "url": self.url, "expires_at": now + self.ttl, "streaming": False},
                   ["name"], where=free)
            after = _row(session, name)
        if after is None or after.holder != self.me:
            return after or Holder("", "", 0.0, False)  # released just now: the caller looks again
        with self._lock:
            self._held.add(name)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._renew_loop, daemon=True, name="lease-heartbeat")
                self._heartbeat.start()
        return Taken(took_over=before is not None and before.holder != self.me)

    def holder(self, name: str) -> Holder | None:
        """Who holds `name` now (None: nobody, or an expired lease)."""
        with self.metadata.session() as session:
            row = _row(session, name)
        return row if row is not None and row.expires_at >= time.time() else None

    def mark_streaming(self, name: str) -> None:
        with self.metadata.session() as session:
            session.execute(update(MirrorLease).where(MirrorLease.name == name, MirrorLease.holder == self.me,
                                                      MirrorLease.streaming.is_(False)).values(streaming=True))

    def release(self, name: str) -> None:
        """Give the lease up (if this process holds it); a database error is logged: it expires anyway."""
        with self._lock:
            self._held.discard(name)
        try:
            with self.metadata.session() as session:
                session.execute(delete(MirrorLease).where(MirrorLease.name == name, MirrorLease.holder == self.me))
        except Exception:  # noqa: BLE001 - callers are cleaning up after their job
            log.exception("could not release the lease %s", name)

    def close(self) -> None:
        self._stop.set()

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            with self._lock:
                names = sorted(self._held)
            if not names:
                continue
            try:
                with self.metadata.session() as session:
                    renewed = session.connection().execute(
                        update(MirrorLease).where(MirrorLease.name.in_(names), MirrorLease.holder == self.me)
                        .values(expires_at=time.time() + self.ttl)
                    ).rowcount
            except Exception:  # noqa: BLE001 - the heartbeat must outlive a database hiccup
                log.exception("could not renew leases")
                continue
            if renewed < len(names):
                log.warning("%d of %d leases were taken over by other replicas", len(names) - renewed, len(names))


def _row(session: Session, name: str) -> Holder | None:
    found = session.execute(
        select(MirrorLease.holder, MirrorLease.url, MirrorLease.expires_at, MirrorLease.streaming)
        .where(MirrorLease.name == name)
    ).first()
    return Holder(*found) if found is not None else None
