"""Which LFS objects each hosted repo may use.

The blob store keeps every LFS object once, for all repos. Knowing an object's sha256 must not be
enough to reach it through another repo: a repo may serve, or commit a pointer to, only objects it
was sent (uploaded to its presigned URL, or inline in one of its commits) or already holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from hubgate.storage.metadata import RepoLfsObject
from hubgate.storage.upsert import upsert


def link(session: Session, repo_pk: int, oids: Iterable[str]) -> None:
    """Record (or renew: garbage collection keeps young links) that the repo was sent `oids`."""
    now = time.time()
    rows = [{"repo_pk": repo_pk, "oid": oid, "linked_at": now} for oid in sorted(set(oids))]
    upsert(session, RepoLfsObject, rows, ["repo_pk", "oid"])


def linked(session: Session, repo_pk: int, oids: Iterable[str]) -> set[str]:
    """The subset of `oids` linked to the repo."""
    wanted = sorted(set(oids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            session.scalars(select(RepoLfsObject.oid).where(RepoLfsObject.repo_pk == repo_pk, RepoLfsObject.oid.in_(chunk)))
        )
    return found
