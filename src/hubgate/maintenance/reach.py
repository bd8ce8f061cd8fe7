"""What the hosted repos reach: git objects from every ref, and the blob-store content they name.

Both the garbage collector (everything else is garbage) and fsck (everything here must exist) walk
from the same roots. Only commits and trees are read whole; blobs are known by their columns.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hubgate.git.objects import parse_commit, parse_tree
from hubgate.storage.metadata import GitObject, Ref, Repo

BATCH = 500
GITLINK = 0o160000


@dataclass(frozen=True)
class Pending:
    sha1: str
    repo: str  # "model alice/x"
    path: str  # where in the repo's tree ("" for commits and root trees)

    @property
    def where(self) -> str:
        return f"{self.repo}: {self.path}" if self.path else self.repo


@dataclass
class Reach:
    objects: set[str] = field(default_factory=set)  # git objects found
    content: dict[str, str] = field(default_factory=dict)  # blob-store sha256 -> where it is used (first seen)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (git sha1, where) referenced but absent


def roots(session: Session) -> list[Pending]:
    """The targets of every ref of every hosted repo."""
    rows = session.execute(
        select(Ref.target, Ref.name, Repo.type, Repo.namespace, Repo.name).join(Repo, Repo.id == Ref.repo_pk)
    )
    return [Pending(target, f"{kind} {namespace}/{name} {ref}", "") for target, ref, kind, namespace, name in rows]


def walk(session: Session, start: list[Pending], reach: Reach) -> None:
    """Add to `reach` what `start` reaches that it does not hold yet."""
    pending = [p for p in start if p.sha1 not in reach.objects]
    while pending:
        batch: dict[str, Pending] = {}
        while pending and len(batch) < BATCH:
            item = pending.pop()
            if item.sha1 not in reach.objects and item.sha1 not in batch:
                batch[item.sha1] = item
        if not batch:
            continue
        rows = session.execute(
            select(GitObject.sha1, GitObject.kind, GitObject.lfs_sha256, GitObject.content_sha256).where(
                GitObject.sha1.in_(list(batch))
            )
        ).all()
        containers = []
        for sha1, kind, lfs_sha256, content_sha256 in rows:
            reach.objects.add(sha1)
            for sha256 in (lfs_sha256, content_sha256):
                if sha256:
                    reach.content.setdefault(sha256, batch[sha1].where)
            if kind in ("commit", "tree"):
                containers.append(sha1)
        found = {row[0] for row in rows}
        reach.missing.extend((sha1, item.where) for sha1, item in batch.items() if sha1 not in found)
        if containers:
            data_rows = session.execute(
                select(GitObject.sha1, GitObject.kind, GitObject.data).where(GitObject.sha1.in_(containers))
            )
            for sha1, kind, data in data_rows:
                pending.extend(_children(batch[sha1], kind, data))


def _children(item: Pending, kind: str, data: bytes) -> list[Pending]:
    if kind == "commit":
        commit = parse_commit(item.sha1, data)
        return [Pending(commit.tree, item.repo, ""), *(Pending(p, item.repo, "") for p in commit.parents)]
    prefix = f"{item.path}/" if item.path else ""
    return [
        Pending(entry.sha1, item.repo, prefix + entry.name)
        for entry in parse_tree(data)
        if stat.S_IFMT(entry.mode) != GITLINK
    ]
