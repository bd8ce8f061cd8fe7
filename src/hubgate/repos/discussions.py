"""Discussions and pull requests of hosted repos, as the Hub keeps them.

A pull request is a discussion with a git ref of its own, `refs/pr/{num}`, started at the head of
its target branch; commits go to that ref, and merging makes a merge commit on the target branch.
Numbers count discussions and pull requests together, per repo, from 1.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hubgate.errors import BadRequest, Forbidden, HubError, NotFound
from hubgate.repos.base import Entry
from hubgate.repos.hosted import HostedRepository
from hubgate.repos.service import Author, RepoService
from hubgate.storage.gcguard import hold_off_gc
from hubgate.storage.metadata import Discussion, DiscussionEvent, MetadataStore

PAGE_SIZE = 50
MAX_TITLE = 200
MAX_COMMENT = 65536
DIFF_MAX_FILE = 1024 * 1024  # larger files are shown as changed, without their lines
STATUSES = ("open", "closed")


class DiscussionNotFound(NotFound):
    def __init__(self, num: int) -> None:
        super().__init__(f"Discussion #{num} not found")


@dataclass(frozen=True)
class Found:
    """A discussion and its repo, loaded for a handler."""

    num: int
    author: str
    is_pr: bool
    status: str


class Discussions:
    def __init__(self, metadata: MetadataStore, repos: RepoService) -> None:
        self.metadata = metadata
        self.repos = repos

    # -- reading ---------------------------------------------------------------------------
    def find(self, repo: HostedRepository, num: int) -> Found:
        with self.metadata.session() as session:
            row = self._row(session, repo, num)
            return Found(row.num, row.author, row.is_pr, row.status)

    def listing(self, repo: HostedRepository, *, kind: str | None, status: str | None, author: str | None,
             page: int) -> dict[str, Any]:
        query = select(Discussion).where(Discussion.repo_pk == repo.pk)
        if kind in ("discussion", "pull_request"):
            query = query.where(Discussion.is_pr.is_(kind == "pull_request"))
        if status in ("open", "closed", "merged", "draft"):
            query = query.where(Discussion.status == status)
        if author:
            query = query.where(Discussion.author == author)
        with self.metadata.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Discussion.num.desc()).offset(page * PAGE_SIZE).limit(PAGE_SIZE))
            items = [self._summary(repo, row) for row in rows]
        return {"discussions": items, "count": total, "start": page * PAGE_SIZE, "numItems": len(items)}

    def details(self, repo: HostedRepository, num: int, with_diff: bool) -> dict[str, Any]:
        with self.metadata.session() as session:
            row = self._row(session, repo, num)
            data = self._summary(repo, row)
            events = session.scalars(
                select(DiscussionEvent).where(DiscussionEvent.discussion_id == row.id).order_by(DiscussionEvent.id)
            )
            data["events"] = [_event_json(e) for e in events]
            base, target, merged = row.base_commit, row.target_branch, row.merge_commit
        if row.is_pr:
            data["changes"] = {"base": target, **({"mergeCommitId": merged} if merged else {})}
            data["filesWithConflicts"] = []
            head = repo.ref_target(f"refs/pr/{num}")
            if with_diff and base and head:
                data["diff"] = self._diff(repo, base, head)
        return data

    # -- writing ---------------------------------------------------------------------------
    def create(self, repo: HostedRepository, author: str, title: str, description: str, is_pr: bool,
               target: str = "main") -> int:
        title = _checked_text(title, MAX_TITLE, "title")
        base = repo.ref_target(f"refs/heads/{target}") if is_pr else None
        if is_pr and base is None:
            raise BadRequest(f"Cannot open a pull request on {target!r}: no such branch")
        for _attempt in range(5):  # two discussions opened at once may pick the same number
            try:
                with self.metadata.session() as session:
                    num = (session.scalar(select(func.max(Discussion.num)).where(Discussion.repo_pk == repo.pk)) or 0) + 1
                    row = Discussion(repo_pk=repo.pk, num=num, title=title, is_pr=is_pr, status="open", author=author,
                                     target_branch=f"refs/heads/{target}" if is_pr else None, base_commit=base)
                    session.add(row)
                    session.flush()
                    if description.strip():
                        session.add(DiscussionEvent(discussion_id=row.id, type="comment", author=author,
                                                    content=_checked_text(description, MAX_COMMENT, "comment")))
                    if is_pr and base is not None:
                        hold_off_gc(session)
                        self.repos.git.set_ref(session, repo.pk, f"refs/pr/{num}", base, None)
                return num
            except IntegrityError:  # another discussion took this number meanwhile: take the next one
                continue
        raise HubError("Too many discussions opened at once, please retry", status=409)

    def discard(self, repo: HostedRepository, num: int) -> None:
        """Undo `create` of a pull request whose first commit failed."""
        with self.metadata.session() as session:
            session.delete(self._row(session, repo, num))
            self.repos.git.delete_ref(session, repo.pk, f"refs/pr/{num}")

    def comment(self, repo: HostedRepository, num: int, author: str, text: str) -> dict[str, Any]:
        return self._event(repo, num, "comment", author, _checked_text(text, MAX_COMMENT, "comment"))

    def rename(self, repo: HostedRepository, num: int, author: str, title: str) -> dict[str, Any]:
        title = _checked_text(title, MAX_TITLE, "title")
        with self.metadata.session() as session:
            row = self._row(session, repo, num)
            old, row.title = row.title, title
        return self._event(repo, num, "title-change", author, title, extra=old)

    def set_status(self, repo: HostedRepository, num: int, author: str, status: str, comment: str | None) -> dict[str, Any]:
        if status not in STATUSES:
            raise BadRequest(f"Invalid status {status!r}: must be 'open' or 'closed'")
        with self.metadata.session() as session:
            row = self._row(session, repo, num)
            if row.status == "merged":
                raise BadRequest("This pull request is merged: its status cannot change")
            row.status = status
        if comment and comment.strip():
            self.comment(repo, num, author, comment)
        return self._event(repo, num, "status-change", author, status)

    def record_commit(self, repo: HostedRepository, num: int, author: str, sha: str, subject: str) -> None:
        self._event(repo, num, "commit", author, subject[:1000], extra=sha)

    def merge(self, repo: HostedRepository, num: int, author: Author, comment: str | None) -> str:
        """Merge pull request `num`: the merge commit, the branch moving and the pull request marked
        merged (with its events) are one transaction, and only one merge of it ever succeeds."""
        with self.metadata.session() as session:
            row = self._row(session, repo, num)
            if not row.is_pr:
                raise BadRequest(f"#{num} is a discussion, not a pull request")
            if row.status != "open":
                raise BadRequest(f"Pull request #{num} is {row.status}")
            target, base, title, pk = row.target_branch or "refs/heads/main", row.base_commit or "", row.title, row.id
        head = repo.ref_target(f"refs/pr/{num}")
        if head is None:
            raise HubError(f"refs/pr/{num} is missing", status=500)
        note = _checked_text(comment, MAX_COMMENT, "comment") if comment and comment.strip() else None

        def mark_merged(session: Session, sha: str) -> None:
            still_open = Discussion.id == pk, Discussion.status == "open"
            done = session.execute(update(Discussion).where(*still_open).values(status="merged", merge_commit=sha))
            if cast(CursorResult[Any], done).rowcount != 1:  # merged or closed by someone else meanwhile
                raise BadRequest(f"Pull request #{num} is no longer open")
            if note is not None:
                session.add(DiscussionEvent(discussion_id=pk, type="comment", author=author.name, content=note))
            session.add(DiscussionEvent(discussion_id=pk, type="status-change", author=author.name, content="merged"))

        return self.repos.merge(repo, target, head, base, author, f"Merge pull request #{num}: {title}", mark_merged)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _row(session: Session, repo: HostedRepository, num: int) -> Discussion:
        row = session.scalar(select(Discussion).where(Discussion.repo_pk == repo.pk, Discussion.num == num))
        if row is None:
            raise DiscussionNotFound(num)
        return row

    def _event(self, repo: HostedRepository, num: int, kind: str, author: str, content: str,
               extra: str | None = None) -> dict[str, Any]:
        with self.metadata.session() as session:
            row = self._row(session, repo, num)
            event = DiscussionEvent(discussion_id=row.id, type=kind, author=author, content=content, extra=extra)
            session.add(event)
            session.flush()
            return _event_json(event)

    @staticmethod
    def _summary(repo: HostedRepository, row: Discussion) -> dict[str, Any]:
        ref = repo.meta.ref
        return {
            "num": row.num, "title": row.title, "status": row.status, "isPullRequest": row.is_pr,
            "createdAt": _iso(row.created_at), "author": {"name": row.author, "type": "user"},
            "repo": {"name": ref.repo_id, "type": ref.type}, "pinned": False, "numComments": 0,
            "topReactions": [],
        }

    def _diff(self, repo: HostedRepository, base: str, head: str) -> str:
        old = {e.path: e for e in repo.list_tree(base, recursive=True) if e.type == "file"}
        new = {e.path: e for e in repo.list_tree(head, recursive=True) if e.type == "file"}
        parts = []
        for path in sorted(set(old) | set(new)):
            a, b = old.get(path), new.get(path)
            if a is not None and b is not None and a.oid == b.oid:
                continue
            parts.append(f"diff --git a/{path} b/{path}\n")
            before, after = self._lines(repo, a, base), self._lines(repo, b, head)
            if before is None or after is None:
                parts.append(f"Binary files a/{path} and b/{path} differ\n")
                continue
            parts.extend(difflib.unified_diff(before, after, f"a/{path}" if a else "/dev/null",
                                              f"b/{path}" if b else "/dev/null"))
        return "".join(parts)

    @staticmethod
    def _lines(repo: HostedRepository, entry: Entry | None, commit: str) -> list[str] | None:
        if entry is None:
            return []
        if entry.lfs is not None or entry.size > DIFF_MAX_FILE:
            return None
        data = repo.open(entry, commit).read_small(DIFF_MAX_FILE)
        try:
            return data.decode("utf-8").splitlines(keepends=True) if data is not None else None
        except UnicodeDecodeError:
            return None


def refuse_mirrored() -> HubError:
    return Forbidden("This repo is mirrored from an upstream: its discussions and pull requests are read-only here")


def _checked_text(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"A {what} is required")
    if len(value) > limit:
        raise BadRequest(f"The {what} is longer than {limit} characters")
    return value.strip() if what == "title" else value


def _iso(stamp: dt.datetime) -> str:
    return stamp.replace(microsecond=0).isoformat() + ".000Z"


def _event_json(event: DiscussionEvent) -> dict[str, Any]:
    data: dict[str, Any]
    if event.type == "comment":
        data = {"edited": False, "hidden": False, "latest": {"raw": event.content, "html": event.content}}
    elif event.type == "status-change":
        data = {"status": event.content}
    elif event.type == "title-change":
        data = {"from": event.extra or "", "to": event.content}
    else:
        data = {"subject": event.content, "oid": event.extra or ""}
    return {"id": f"{event.id:024x}", "type": event.type, "createdAt": _iso(event.created_at),
            "author": {"name": event.author, "type": "user"}, "data": data}
