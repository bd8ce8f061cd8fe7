"""What the mirror remembers in the metadata store: revisions, commits, files, 404s, counters."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session

from hubgate.mirror.tally import AccessTally
from hubgate.storage.metadata import (
    Counter,
    MetadataStore,
    MirrorAlias,
    MirrorCommit,
    MirrorFile,
    MirrorHealth,
    MirrorNegative,
    MirrorRevision,
)
from hubgate.storage.upsert import upsert

# A client keeps a partial download for as long as it likes: the mark outlives any of them.
SERVED_BAD_TTL = 10 * 365 * 86400


def _pack(data: Any) -> bytes:
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 3)


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


@dataclass(frozen=True)
class KnownRevision:
    commit: str
    fetched_at: float
    upstream: str


@dataclass(frozen=True)
class KnownRepo:
    """What the cache knows of a repo, read in one transaction: the name it is cached under (the
    canonical one, if an alias was followed), its most recently fetched info and its revisions."""

    repo_id: str
    info: dict[str, Any] | None
    revisions: dict[str, KnownRevision]


class MirrorCache:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self._tally = AccessTally(self._write_tally)

    def close(self) -> None:
        """Write the hits and recency counted in memory (see mirror/tally.py)."""
        self._tally.close()

    # -- revisions -------------------------------------------------------------------------
    def revision(self, repo_type: str, repo_id: str, revision: str) -> KnownRevision | None:
        with self.metadata.session() as session:
            row = session.get(MirrorRevision, (repo_type, repo_id, revision))
            return KnownRevision(row.commit, row.fetched_at, row.upstream) if row else None

    def revisions(self, repo_type: str, repo_id: str) -> dict[str, str]:
        with self.metadata.session() as session:
            rows = session.execute(
                select(MirrorRevision.revision, MirrorRevision.commit).where(
                    MirrorRevision.repo_type == repo_type, MirrorRevision.repo_id == repo_id
                )
            )
            return {rev: commit for rev, commit in rows}

    def remember_revision(self, repo_type: str, repo_id: str, revision: str, commit: str, upstream: str) -> None:
        with self.metadata.session() as session:
            upsert(
                session,
                MirrorRevision,
                {"repo_type": repo_type, "repo_id": repo_id, "revision": revision, "commit": commit,
                 "fetched_at": time.time(), "upstream": upstream},
                ["repo_type", "repo_id", "revision"],
            )

    # -- commits ---------------------------------------------------------------------------
    def commit(self, repo_type: str, repo_id: str, commit: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None] | None:
        with self.metadata.session() as session:
            row = session.get(MirrorCommit, (repo_type, repo_id, commit))
            if row is None:
                return None
            return _unpack(row.info), (_unpack(row.tree) if row.tree is not None else None)

    def has_commit(self, repo_type: str, repo_id: str, commit: str) -> bool:
        with self.metadata.session() as session:
            found = session.scalar(select(MirrorCommit.fetched_at).where(
                MirrorCommit.repo_type == repo_type, MirrorCommit.repo_id == repo_id, MirrorCommit.commit == commit))
            return found is not None

    def remember_commit(self, repo_type: str, repo_id: str, commit: str, info: dict[str, Any]) -> None:
        with self.metadata.session() as session:
            # The tree of a commit never changes; its info (private, gated, ...) may: keep the newest.
            upsert(session, MirrorCommit,
                   {"repo_type": repo_type, "repo_id": repo_id, "commit": commit, "info": _pack(info), "tree": None,
                    "fetched_at": time.time()},
                   ["repo_type", "repo_id", "commit"], ["info", "fetched_at"])

    def remember_tree(self, repo_type: str, repo_id: str, commit: str, entries: list[dict[str, Any]]) -> None:
        with self.metadata.session() as session:
            session.execute(
                update(MirrorCommit)
                .where(MirrorCommit.repo_type == repo_type, MirrorCommit.repo_id == repo_id, MirrorCommit.commit == commit)
                .values(tree=_pack(entries))
            )

    def known_repo(self, repo_type: str, asked: str, follow: Callable[[str, float], bool]) -> KnownRepo:
        """The repo `asked` names, or the canonical one its alias names if `follow(canonical, fetched_at)`."""
        with self.metadata.session() as session:
            # Columns, not ORM objects: this runs on every request for a mirrored repo.
            alias = session.execute(select(MirrorAlias.canonical, MirrorAlias.fetched_at).where(
                MirrorAlias.repo_type == repo_type, MirrorAlias.asked == asked.lower())).first()
            repo_id = alias[0] if alias is not None and follow(alias[0], alias[1]) else asked
            info = session.scalars(  # the newest info alone: a packed tree may be large
                select(MirrorCommit.info)
                .where(MirrorCommit.repo_type == repo_type, MirrorCommit.repo_id == repo_id)
                .order_by(MirrorCommit.fetched_at.desc())
                .limit(1)
            ).first()
            revisions = session.execute(
                select(MirrorRevision.revision, MirrorRevision.commit, MirrorRevision.fetched_at, MirrorRevision.upstream)
                .where(MirrorRevision.repo_type == repo_type, MirrorRevision.repo_id == repo_id)
            )
            known = {revision: KnownRevision(commit, at, upstream) for revision, commit, at, upstream in revisions}
            return KnownRepo(repo_id, _unpack(info) if info is not None else None, known)

    # -- negative cache --------------------------------------------------------------------
    def is_missing(self, key: str) -> bool:
        with self.metadata.session() as session:
            row = session.get(MirrorNegative, key[:600])
            return row is not None and row.expires_at > time.time()

    def remember_missing(self, key: str, ttl: float) -> None:
        if ttl <= 0:
            return
        with self.metadata.session() as session:
            upsert(session, MirrorNegative, {"key": key[:600], "expires_at": time.time() + ttl}, ["key"])

    # -- names an upstream resolves to another repo -----------------------------------------
    def remember_alias(self, repo_type: str, asked: str, canonical: str) -> None:
        with self.metadata.session() as session:
            upsert(session, MirrorAlias, {"repo_type": repo_type, "asked": asked.lower(), "canonical": canonical,
                                                 "fetched_at": time.time()}, ["repo_type", "asked"])

    # -- files whose bytes were once served unverified and then found bad ------------------
    def remember_served_bad(self, oid: str) -> None:
        """Clients may hold a bad prefix of this file: their Range resumes must get the whole file."""
        self.remember_missing(f"served-bad:{oid}", SERVED_BAD_TTL)

    def served_bad(self, oid: str) -> bool:
        return self.is_missing(f"served-bad:{oid}")

    # -- files -----------------------------------------------------------------------------
    def file(self, oid: str) -> tuple[str, int] | None:
        with self.metadata.session() as session:
            row = session.execute(select(MirrorFile.sha256, MirrorFile.size).where(MirrorFile.oid == oid)).first()
            return (row[0], row[1]) if row else None

    def remember_file(self, oid: str, sha256: str, size: int, upstream: str) -> None:
        with self.metadata.session() as session:
            upsert(
                session, MirrorFile,
                {"oid": oid, "sha256": sha256, "size": size, "upstream": upstream, "last_access": time.time()},
                ["oid"],
            )

    def record_access(self, oid: str, hit: bool) -> None:
        """A download of a cached file (`hit`) or of one fetched for it: counted in memory, written soon."""
        self._tally.record(oid, hit)

    def _write_tally(self, counts: dict[str, int], touched: dict[str, float]) -> None:
        files = MirrorFile.__table__
        assert isinstance(files, Table)
        with self.metadata.session() as session:
            for name, n in sorted(counts.items()):
                self._add(session, name, n)
            if touched:  # recency only moves forward, whichever process saw the later hit
                session.execute(
                    update(files).where(files.c.oid == bindparam("at_oid"), files.c.last_access < bindparam("at_time"))
                    .values(last_access=bindparam("at_time")),
                    [{"at_oid": oid, "at_time": at} for oid, at in sorted(touched.items())],
                )

    def cached_bytes(self) -> tuple[int, int]:
        with self.metadata.session() as session:
            count, total = session.execute(select(func.count(), func.coalesce(func.sum(MirrorFile.size), 0))).one()
            return int(count), int(total)

    def eviction_candidates(self, over: int, idle_since: float | None = None) -> list[tuple[str, str, int]]:
        """Least recently used files whose sizes add up to at least `over` bytes (only files last
        used before `idle_since`, when given)."""
        self._tally.flush()  # this process's recent hits count
        picked: list[tuple[str, str, int]] = []
        freed = 0
        query = select(MirrorFile.oid, MirrorFile.sha256, MirrorFile.size).order_by(MirrorFile.last_access)
        if idle_since is not None:
            query = query.where(MirrorFile.last_access < idle_since)
        with self.metadata.session() as session:
            rows = session.execute(query)
            for oid, sha256, size in rows:
                if freed >= over:
                    break
                picked.append((oid, sha256, size))
                freed += size
        return picked

    def forget_files(self, oids: list[str]) -> None:
        with self.metadata.session() as session:
            session.execute(delete(MirrorFile).where(MirrorFile.oid.in_(oids)))

    def sha256_in_use(self, sha256: str) -> bool:
        with self.metadata.session() as session:
            return (session.scalar(select(func.count()).where(MirrorFile.sha256 == sha256)) or 0) > 0

    # -- upstream health -------------------------------------------------------------------
    # Every process records what it saw; a field only moves to a newer observation, so no process
    # erases another's (a CLI pull that failed leaves the server's last success in place).
    def record_success(self, name: str, at: float, latency_ms: float | None) -> None:
        table = MirrorHealth.__table__
        newer = at > func.coalesce(table.c.last_success, 0)
        self._merge(name, {"last_success": at, "latency_ms": latency_ms}, {
            "last_success": case((newer, at), else_=table.c.last_success),
            "latency_ms": case((newer, latency_ms), else_=table.c.latency_ms),
        })

    def record_failure(self, name: str, at: float, error: str) -> None:
        table = MirrorHealth.__table__
        newer = at >= func.coalesce(table.c.last_error_at, 0)
        self._merge(name, {"last_error_at": at, "last_error": error[:500]}, {
            "last_error_at": case((newer, at), else_=table.c.last_error_at),
            "last_error": case((newer, error[:500]), else_=table.c.last_error),
        })

    def _merge(self, name: str, values: dict[str, Any], updates: dict[str, Any]) -> None:
        with self.metadata.session() as session:
            upsert(session, MirrorHealth, {"name": name, **values}, ["name"], updates)

    def health(self) -> dict[str, MirrorHealth]:
        with self.metadata.session() as session:
            return {row.name: row for row in session.scalars(select(MirrorHealth))}

    # -- counters --------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        with self.metadata.session() as session:
            self._add(session, name, n)

    @staticmethod
    def _add(session: Session, name: str, n: int) -> None:
        upsert(session, Counter, {"name": name, "value": n}, ["name"], {"value": Counter.value + n})

    def counters(self) -> dict[str, int]:
        """Every process's counts (this one's up to now, the others' up to their last flush)."""
        self._tally.flush()
        with self.metadata.session() as session:
            return {name: value for name, value in session.execute(select(Counter.name, Counter.value))}
