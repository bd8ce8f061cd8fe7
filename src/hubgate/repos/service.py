"""Repo lifecycle and writes: create, delete, move, settings, branches, tags and commits."""

from __future__ import annotations

import builtins
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hubgate import constants
from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.errors import BadRequest, Conflict, Forbidden, HubError, PreconditionFailed, RepoMoved, RevisionNotFound
from hubgate.git import objects as git
from hubgate.ids import RepoRef, check_branch_name, check_new_namespace, is_commit_id
from hubgate.memcache import ByteCache
from hubgate.repos import lfs_links, modelcard, xet_files
from hubgate.repos.base import Content, RepoMeta, stored_content
from hubgate.repos.commits import AddBytes, AddLfs, LfsPolicy, Operation, TreeEdit, lfs_patterns, new_commit_objects
from hubgate.repos.hosted import HostedRepository
from hubgate.repos.plain_copies import PlainCopies
from hubgate.repos.preupload import ContentOids
from hubgate.storage.blobs import BlobStore
from hubgate.storage.gcguard import hold_off_gc
from hubgate.storage.gitstore import GitStore
from hubgate.storage.metadata import GitObject, MetadataStore, Repo, RepoRedirect, utcnow
from hubgate.xet.store import XetStore


@dataclass(frozen=True)
class Author:
    name: str
    email: str


PR_REF = re.compile(r"refs/pr/[1-9][0-9]{0,8}")
# Attempts at moving a branch that other processes keep moving before giving up.
COMMIT_ATTEMPTS = 50


class RepoNotHosted(HubError):
    """Internal: the repo does not exist here (the caller turns it into RepoNotFound)."""

    status = 404


class MovedRepo(RepoMoved):
    """A repo asked for by a former name, with the repo it now is (whose readers alone may learn that)."""

    def __init__(self, old_id: str, meta: RepoMeta) -> None:
        super().__init__(old_id, meta.ref.repo_id)
        self.meta = meta


def _meta(row: Repo) -> RepoMeta:
    canonical = RepoRef(row.type, row.namespace, row.name)  # the spelling it was created with
    return RepoMeta(canonical, row.private, row.gated, row.created_at, row.sdk, pk=row.id)


class RepoService:
    def __init__(self, metadata: MetadataStore, blobs: BlobStore, lfs_threshold: int,
                 crash: CrashPoints = NO_CRASH, xet: XetStore | None = None, copies: PlainCopies | None = None) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.xet = xet
        self.copies = copies
        self.crash = crash
        self.git = GitStore(metadata)
        self.lfs_threshold = lfs_threshold
        self.content_oids = ContentOids(blobs)  # for preupload (see repos/preupload.py)
        # One lock per (repo, branch): commits to a branch from this process queue up instead of
        # racing (and retrying) on the ref; the compare-and-swap still guards other processes.
        self._branch_locks: weakref.WeakValueDictionary[tuple[str, ...], threading.Lock] = weakref.WeakValueDictionary()
        self._branch_locks_guard = threading.Lock()
        self._held_lfs: ByteCache[tuple[object, ...], frozenset[str]] = ByteCache(
            constants.HELD_LFS_CACHE_BYTES, weigh=lambda oids: 200 + 150 * len(oids)
        )

    def _branch_lock(self, ref: RepoRef, branch: str) -> threading.Lock:
        key = (ref.type, ref.namespace.lower(), ref.name.lower(), branch)
        with self._branch_locks_guard:
            lock = self._branch_locks.get(key)
            if lock is None:
                lock = threading.Lock()
                self._branch_locks[key] = lock
            return lock

    # -- lookup ----------------------------------------------------------------------------
    def _row(self, session: Session, ref: RepoRef) -> Repo | None:
        """The repo of that name in any letter case (as on the Hub), the exact spelling first: one
        indexed lookup (ix_repos_folded_name), whether the repo exists or not."""
        exact = and_(Repo.namespace == ref.namespace, Repo.name == ref.name)
        query = (
            select(Repo)
            .where(
                Repo.type == ref.type,
                func.lower(Repo.namespace) == ref.namespace.lower(),
                func.lower(Repo.name) == ref.name.lower(),
            )
            .order_by(case((exact, 0), else_=1))
            .limit(1)
        )
        return session.scalars(query).first()

    def find(self, ref: RepoRef) -> tuple[HostedRepository | None, RepoMeta | None]:
        """The repo called `ref`, and where a repo that used to be called so lives now (after `move`).

        Every lookup is made whether the repo exists or not, so that a private repo costs what a
        missing one does: nobody may learn that a repo exists from the time of a 404.
        """
        with self.metadata.session() as session:
            row = self._row(session, ref)
            refs = self.git.refs(session, row.id if row is not None else -1)
            redirect = session.get(RepoRedirect, (ref.type, ref.repo_id.lower()))
            target = session.get(Repo, redirect.repo_pk if redirect is not None else -1)
            if row is None:
                return None, _meta(target) if target is not None else None
            return HostedRepository(_meta(row), row.id, refs, self.git, self.blobs, self.xet, self.copies), None

    def open(self, ref: RepoRef) -> HostedRepository | None:
        return self.find(ref)[0]

    def list(self, repo_type: str) -> list[RepoMeta]:
        with self.metadata.session() as session:
            rows = session.scalars(select(Repo).where(Repo.type == repo_type).order_by(Repo.namespace, Repo.name))
            return [
                RepoMeta(RepoRef(r.type, r.namespace, r.name), r.private, r.gated, r.created_at, r.sdk, pk=r.id)
                for r in rows
            ]

    def policy_for(self, repo: HostedRepository, commit: str | None) -> LfsPolicy:
        patterns: list[str] = []
        if commit:
            try:
                entry = repo.describe(commit, ".gitattributes")
                patterns = lfs_patterns(repo.open(entry).read_small())
            except HubError:
                patterns = []
        return LfsPolicy(self.lfs_threshold, patterns)

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, ref: RepoRef, *, private: bool, author: Author, sdk: str | None = None) -> None:
        check_new_namespace(ref.namespace)
        edit = TreeEdit({}, [])
        gitattributes = constants.DEFAULT_GITATTRIBUTES.encode()
        edit.apply([AddBytes(".gitattributes", gitattributes)], self.blobs, LfsPolicy(self.lfs_threshold, []))
        sha, objects = new_commit_objects(edit, None, author.name, author.email, "initial commit", "")
        try:
            with self.metadata.session() as session:
                if self._row(session, ref) is not None:
                    raise Conflict(f"You already created this {ref.type} repo")
                row = Repo(type=ref.type, namespace=ref.namespace, name=ref.name, private=private, sdk=sdk)
                session.add(row)
                session.flush()
                self.git.put_objects(session, objects, edit.stored)
                self.git.set_ref(session, row.id, f"refs/heads/{constants.DEFAULT_BRANCH}", sha, None)
        except IntegrityError as exc:
            raise Conflict(f"You already created this {ref.type} repo") from exc

    def delete(self, ref: RepoRef) -> None:
        with self.metadata.session() as session:
            row = self._row(session, ref)
            if row is None:
                raise RepoNotHosted(str(ref))
            session.delete(row)

    def move(self, ref: RepoRef, to: RepoRef) -> None:
        if to.type != ref.type:
            raise BadRequest("Cannot change the type of a repo")
        check_new_namespace(to.namespace)
        try:
            with self.metadata.session() as session:
                row = self._row(session, ref)
                if row is None:
                    raise RepoNotHosted(str(ref))
                if self._row(session, to) is not None:
                    raise Conflict(f"A repo named {to.repo_id} already exists")
                row.namespace, row.name, row.updated_at = to.namespace, to.name, utcnow()
                # The old name redirects here, as on the Hub; the new one is no longer a redirect.
                session.execute(delete(RepoRedirect).where(
                    RepoRedirect.type == ref.type, RepoRedirect.old_id.in_([ref.repo_id.lower(), to.repo_id.lower()])
                ))
                session.add(RepoRedirect(type=ref.type, old_id=ref.repo_id.lower(), repo_pk=row.id))
        except IntegrityError as exc:
            raise Conflict(f"A repo named {to.repo_id} already exists") from exc

    def update_settings(self, ref: RepoRef, *, private: bool | None, gated: str | None | bool) -> None:
        with self.metadata.session() as session:
            row = self._row(session, ref)
            if row is None:
                raise RepoNotHosted(str(ref))
            if private is not None:
                row.private = private
            if gated is not None:
                if gated not in (False, "auto", "manual"):
                    raise BadRequest("gated must be false, 'auto' or 'manual'")
                row.gated = gated if isinstance(gated, str) else None
            row.updated_at = utcnow()

    # -- refs ------------------------------------------------------------------------------
    def create_ref(self, repo: HostedRepository, kind: str, name: str, target_rev: str) -> None:
        check_branch_name(name)
        target = repo.resolve(target_rev)
        full = f"refs/{kind}/{name}"
        label = "Branch" if kind == "heads" else "Tag"
        try:
            with self.metadata.session() as session:
                hold_off_gc(session)
                if session.get(GitObject, target) is None:  # collected since it was resolved
                    raise RevisionNotFound(target_rev)
                self.git.set_ref(session, repo.pk, full, target, None)
        except (PreconditionFailed, IntegrityError) as exc:
            raise Conflict(f"{label} {name} already exists") from exc

    def delete_ref(self, repo: HostedRepository, kind: str, name: str) -> None:
        if kind == "heads" and name == constants.DEFAULT_BRANCH:
            raise Forbidden(f"Cannot delete refs/heads/{constants.DEFAULT_BRANCH}")
        with self.metadata.session() as session:
            if not self.git.delete_ref(session, repo.pk, f"refs/{kind}/{name}"):
                raise RevisionNotFound(name)

    # -- commits ---------------------------------------------------------------------------
    def commit(
        self,
        ref: RepoRef,
        branch: str,
        ops: builtins.list[Operation],
        *,
        author: Author,
        summary: str,
        description: str = "",
        parent_commit: str | None = None,
    ) -> str:
        """Apply `ops` on top of `branch` (or a pull request's `refs/pr/N`); returns the new commit id.
        All or nothing."""
        for op in ops:
            if isinstance(op, AddBytes) and op.path == modelcard.CARD:
                modelcard.check_card(op.data)
        if branch.startswith("refs/heads/"):
            branch = branch.removeprefix("refs/heads/")
        if is_commit_id(branch) or (branch.startswith("refs/") and not PR_REF.fullmatch(branch)):
            raise BadRequest(f"Can only commit to a branch, not {branch!r}")
        xet = self._xet_files(ref, ops)  # before the branch is locked: it may hash large files
        lock = self._branch_lock(ref, branch)
        with lock:
            for _attempt in range(COMMIT_ATTEMPTS):
                sha = self._try_commit(ref, branch, ops, author, summary, description, parent_commit, xet)
                if sha is not None:
                    return sha
        raise Conflict("Too many concurrent commits on this branch, please retry")

    def _try_commit(
        self,
        ref: RepoRef,
        branch: str,
        ops: builtins.list[Operation],
        author: Author,
        summary: str,
        description: str,
        parent_commit: str | None,
        xet: dict[str, xet_files.Held],
    ) -> str | None:
        """One attempt; None when another process moved the branch meanwhile."""
        repo = self.open(ref)
        if repo is None:
            raise RepoNotHosted(str(ref))
        ref_name = branch if PR_REF.fullmatch(branch) else f"refs/heads/{branch}"
        head = repo.ref_target(ref_name)
        if head is None:
            raise RevisionNotFound(branch)
        if parent_commit is not None and parent_commit != head:
            raise PreconditionFailed(
                "The branch was updated since you opened this page. Please refresh and try again."
            )
        entries = repo.list_tree(head, recursive=True)
        files = {e.path: (git.FILE_MODE, e.oid) for e in entries if e.type == "file"}
        policy = self._policy_for_ops(repo, head, ops)
        named = {op.sha256 for op in ops if isinstance(op, AddLfs) and not op.inline}
        usable = self.usable_lfs(repo, named)
        edit = TreeEdit(files, [], usable_lfs=usable, xet_files={k: v for k, v in xet.items() if k not in usable})
        edit.apply(ops, self.blobs, policy)
        sha, objects = new_commit_objects(edit, head, author.name, author.email, summary, description)
        pointed = edit.lfs_oids()
        xet_pointed = {k: v for k, v in edit.xet_files.items() if k in pointed}
        # LFS objects named by oid only: the repo must have been sent them, or hold them already.
        to_check = pointed - edit.inline_lfs - {e.lfs.sha256 for e in entries if e.lfs} - set(xet_pointed)
        try:
            with self.metadata.session() as session:
                hold_off_gc(session)  # what the checks below find stays until this commit is in
                foreign = to_check - lfs_links.linked(session, repo.pk, to_check)
                if foreign:  # the same answer as for an object that does not exist (TreeEdit._blob_for)
                    raise BadRequest(f"LFS object {min(foreign)} was not uploaded")
                lfs_links.link(session, repo.pk, pointed - set(xet_pointed))  # Xet links: confirmed already
                self.git.put_objects(session, objects, edit.stored)
                self.crash.hit("objects-written")
                self.git.set_ref(session, repo.pk, ref_name, sha, head)
                row = session.get(Repo, repo.pk)
                if row is not None:
                    row.updated_at = utcnow()
            return sha
        except PreconditionFailed:
            if parent_commit is not None:
                raise
            return None  # someone else committed meanwhile: rebuild on the new head

    def merge(
        self, repo: HostedRepository, target: str, head: str, base: str, author: Author, message: str,
        record: Callable[[Session, str], None],
    ) -> str:
        """Merge commit `head` (started from `base`) into the branch ref `target`; returns the merge commit.

        Files changed on both sides since `base` differently are conflicts (409, listed). `record`
        runs in the transaction that moves the branch (marking the pull request merged): both or
        neither happen. A branch moved meanwhile by another process is merged into again."""
        with self._branch_lock(repo.meta.ref, target.removeprefix("refs/heads/")):
            for _attempt in range(COMMIT_ATTEMPTS):
                sha = self._try_merge(repo.meta.ref, target, head, base, author, message, record)
                if sha is not None:
                    return sha
        raise Conflict("Too many concurrent commits on this branch, please retry")

    def _try_merge(
        self, ref: RepoRef, target: str, head: str, base: str, author: Author, message: str,
        record: Callable[[Session, str], None],
    ) -> str | None:
        """One attempt; None when another process moved the branch meanwhile."""
        repo = self.open(ref)
        if repo is None:
            raise RepoNotHosted(str(ref))
        current = repo.ref_target(target)
        if current is None:
            raise RevisionNotFound(target)
        theirs, ours, origin = (self._files(repo, c) for c in (head, current, base))
        merged = dict(ours)
        conflicts = []
        for path in sorted(set(theirs) | set(origin)):
            if theirs.get(path) == origin.get(path):
                continue  # unchanged by the pull request
            if ours.get(path) not in (origin.get(path), theirs.get(path)):
                conflicts.append(path)
            elif path in theirs:
                merged[path] = theirs[path]
            else:
                merged.pop(path, None)
        if conflicts:
            raise Conflict("This pull request has conflicts: " + ", ".join(conflicts), headers={"X-Conflicts": "1"})
        root, trees = git.build_trees(merged)
        commit = git.build_commit(root, [current, head], author.name, author.email, int(time.time()), message + "\n")
        try:
            with self.metadata.session() as session:
                hold_off_gc(session)
                self.git.put_objects(session, [*trees, commit], {})
                self.crash.hit("objects-written")
                self.git.set_ref(session, repo.pk, target, commit.sha1, current)
                record(session, commit.sha1)
        except PreconditionFailed:
            return None  # someone else committed meanwhile: merge into the new head
        return commit.sha1

    @staticmethod
    def _files(repo: HostedRepository, commit: str) -> dict[str, tuple[int, str]]:
        return {e.path: (git.FILE_MODE, e.oid) for e in repo.list_tree(commit, recursive=True) if e.type == "file"}

    def _xet_files(self, ref: RepoRef, ops: builtins.list[Operation]) -> dict[str, xet_files.Held]:
        """The Xet files for the LFS oids of `ops` that are no LFS object the repo may use (see xet_files)."""
        named = {op.sha256 for op in ops if isinstance(op, AddLfs) and not op.inline}
        repo = self.open(ref) if named and self.xet is not None else None
        if repo is None or self.xet is None:
            return {}
        return xet_files.resolve(self.metadata, self.xet, repo.pk, named - self.usable_lfs(repo, named))

    # -- LFS objects a repo may use (see lfs_links) -------------------------------------------
    def usable_lfs(self, repo: HostedRepository, oids: set[str]) -> set[str]:
        """The subset of `oids` this repo may serve and commit: sent to it or held by one of its refs, and stored.

        The blob store is looked at only for objects the repo may use, after the same lookups
        whether an object exists or not: neither the answer nor its cost tells what other repos store.
        """
        if not oids:
            return set()
        with self.metadata.session() as session:
            allowed = lfs_links.linked(session, repo.pk, oids)
        if allowed != oids:
            allowed |= oids & self._lfs_held_by_refs(repo)
        return {oid for oid in allowed if self.blobs.exists(oid)}

    def lfs_download(self, repo_pk: int, oid: str) -> Content | None:
        """What repo `repo_pk` (if it still exists) serves git-lfs for `oid`: the LFS object it may
        use, or the Xet file it holds with that SHA-256 (its plain copy, or rebuilt); else None."""
        with self.metadata.session() as session:
            row = session.get(Repo, repo_pk)
            ref = RepoRef(row.type, row.namespace, row.name) if row is not None else None
        repo = self.open(ref) if ref is not None else None
        if repo is None or repo.pk != repo_pk:
            return None
        size = self.blobs.size(oid) if oid in self.usable_lfs(repo, {oid}) else None
        content = stored_content(self.blobs, oid, size) if size is not None else None
        return content if content is not None else repo.xet_content(oid)

    def link_lfs(self, repo_pk: int, oid: str) -> None:
        """Record that `oid` was uploaded for the repo `repo_pk`."""
        self.crash.hit("lfs-stored")
        try:
            with self.metadata.session() as session:
                lfs_links.link(session, repo_pk, [oid])
        except IntegrityError:  # the repo was deleted meanwhile
            pass

    def _lfs_held_by_refs(self, repo: HostedRepository) -> frozenset[str]:
        """LFS objects in the trees the repo's branches and tags point at (repos older than the links)."""
        targets = frozenset([*repo.branches().values(), *repo.tags().values()])
        key = (repo.pk, repo.meta.created_at, targets)
        held = self._held_lfs.get(key)
        if held is None:
            found: set[str] = set()
            for target in targets:
                try:
                    found.update(e.lfs.sha256 for e in repo.list_tree(target, recursive=True) if e.lfs)
                except HubError:
                    continue
            held = frozenset(found)
            self._held_lfs.put(key, held)
        return held

    def _policy_for_ops(self, repo: HostedRepository, head: str, ops: builtins.list[Operation]) -> LfsPolicy:
        for op in ops:
            if isinstance(op, AddBytes) and op.path == ".gitattributes":
                return LfsPolicy(self.lfs_threshold, lfs_patterns(op.data))
        return self.policy_for(repo, head)
