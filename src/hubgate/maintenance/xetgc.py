"""What garbage collection removes of Xet storage, and which blobs Xet storage names.

A repo's link to a file (registered by a shard uploaded for it) lives while a commit names the
file's SHA-256 and the hub verified the file's bytes against it (`XetStore.confirm`) or, for an
upload waiting for its commit, for `upload_grace`; a repo's deletion drops its links at once. A file
lives while a link names it; a xorb while a file uses it or, waiting for the shard that names it,
until it is older than `grace` (a re-upload renews it). A xorb's bytes are a blob like any other,
kept while the xorb is; so is a file's plain copy (a cache for plain-HTTP clients), whose record
goes with its file. Each step runs in a transaction that excludes the
writers (`storage.gcguard`), so an upload or shard registration sees either all of it or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, delete, exists, or_, select
from sqlalchemy.orm import Session

from hubgate.storage.metadata import GitObject
from hubgate.storage.xettables import XetFileTerms, XetFileXorb, XetPlainCopy, XetRepoFile, XetXorb


@dataclass
class XetSweep:
    links: int = 0
    files: int = 0
    xorbs: int = 0


def sweep_xet(session: Session, upload_cutoff: float, cutoff: float) -> XetSweep:
    """Drop stale links, then files no link names, then xorbs no file uses last touched before `cutoff`."""
    committed = select(GitObject.lfs_sha256).where(GitObject.lfs_sha256.is_not(None))
    links = _changed(session, delete(XetRepoFile).where(
        XetRepoFile.linked_at < upload_cutoff,
        or_(XetRepoFile.verified.is_(False), XetRepoFile.sha256.is_(None), XetRepoFile.sha256.not_in(committed)),
    ))
    _changed(session, delete(XetFileXorb).where(~exists().where(XetRepoFile.file_hash == XetFileXorb.file_hash)))
    _changed(session, delete(XetPlainCopy).where(~exists().where(XetRepoFile.file_hash == XetPlainCopy.file_hash)))
    files = _changed(session, delete(XetFileTerms).where(~exists().where(XetRepoFile.file_hash == XetFileTerms.hash)))
    xorbs = _changed(session, delete(XetXorb).where(
        XetXorb.touched_at < cutoff, ~exists().where(XetFileXorb.xorb_hash == XetXorb.hash)
    ))
    return XetSweep(links, files, xorbs)


def xorb_blobs(session: Session, candidates: list[str]) -> set[str]:
    """Those of the blob `candidates` that hold a stored xorb's bytes, or a plain copy of a Xet file
    (repos.plain_copies: evicted by its cap, or collected once its file goes)."""
    found = set(session.scalars(select(XetXorb.blob_sha256).where(XetXorb.blob_sha256.in_(candidates))))
    return found | set(session.scalars(select(XetPlainCopy.sha256).where(XetPlainCopy.sha256.in_(candidates))))


def _changed(session: Session, statement: Executable) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount
