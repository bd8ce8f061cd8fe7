"""Repos hosted here: git objects and refs in the metadata store, LFS content in the blob store."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from hubgate import constants
from hubgate.errors import EntryNotFound, HubError, RevisionNotFound
from hubgate.git.objects import CommitData, TreeItem
from hubgate.ids import is_commit_id
from hubgate.repos import xet_files
from hubgate.repos.base import Content, Entry, LfsInfo, RepoMeta, stored_content, threaded
from hubgate.repos.modelcard import CARD, CARD_DATA_LIMIT, card_data
from hubgate.repos.plain_copies import PlainCopies
from hubgate.storage.blobs import BlobStore
from hubgate.storage.gitstore import GitStore
from hubgate.xet.hashing import str_to_hash
from hubgate.xet.store import XetStore


class HostedRepository:
    def __init__(self, meta: RepoMeta, pk: int, refs: dict[str, str], git: GitStore, blobs: BlobStore,
                 xet: XetStore | None = None, copies: PlainCopies | None = None) -> None:
        self.meta = meta
        self.pk = pk
        self._refs = refs
        self._git = git
        self._blobs = blobs
        self._xet = xet
        self._copies = copies

    def response_headers(self) -> dict[str, str]:
        return {}

    # -- revisions -------------------------------------------------------------------------
    def branches(self) -> dict[str, str]:
        return {k.removeprefix("refs/heads/"): v for k, v in self._refs.items() if k.startswith("refs/heads/")}

    def tags(self) -> dict[str, str]:
        return {k.removeprefix("refs/tags/"): v for k, v in self._refs.items() if k.startswith("refs/tags/")}

    def pull_requests(self) -> dict[str, str]:
        return {k: v for k, v in self._refs.items() if k.startswith("refs/pr/")}

    def ref_target(self, name: str) -> str | None:
        """The commit a full ref name (`refs/heads/main`, `refs/pr/1`) points at."""
        return self._refs.get(name)

    def resolve(self, revision: str) -> str:
        for name in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
            if name.startswith("refs/") and name in self._refs:
                return self._refs[name]
        if is_commit_id(revision) and self._reachable(revision):
            return revision
        raise RevisionNotFound(revision)

    def _reachable(self, sha1: str) -> bool:
        """Whether commit `sha1` belongs to this repo: reachable from one of its refs.

        Git objects are stored once for all repos, so existing is not enough: a commit id of a
        private repo must not open that repo's files through another repo's URLs.
        """
        if self._object(sha1, "commit") is None:
            return False
        key = (self.pk, self.meta.created_at, sha1)
        if key in self._git.reachable:
            return True
        # "not reachable" holds only while the refs stay where they are
        unreachable_key = (self.pk, self.meta.created_at, sha1, frozenset(self._refs.items()))
        if unreachable_key in self._git.unreachable:
            return False
        seen: set[str] = set()
        pending = deque(self._refs.values())
        while pending:
            current = pending.popleft()
            if current in seen:
                continue
            seen.add(current)
            if current == sha1:
                self._git.reachable.add(key)
                return True
            data = self._object(current, "commit")
            if data is not None:
                pending.extend(self._git.parse_commit(current, data).parents)
        self._git.unreachable.add(unreachable_key)
        return False

    def commit(self, sha1: str) -> CommitData:
        data = self._object(sha1, "commit")
        if data is None:
            raise RevisionNotFound(sha1)
        return self._git.parse_commit(sha1, data)

    def history(self, sha1: str) -> Iterator[CommitData]:
        current: str | None = sha1
        while current:
            commit = self.commit(current)
            yield commit
            current = commit.parents[0] if commit.parents else None

    # -- trees -----------------------------------------------------------------------------
    def _object(self, sha1: str, kind: str) -> bytes | None:
        found = self._git.read_object(sha1)
        if found is None or found[0] != kind:
            return None
        return found[1]

    def _tree_data(self, sha1: str) -> bytes:
        data = self._object(sha1, "tree")
        if data is None:
            raise HubError(f"Missing tree object {sha1}", status=500)
        return data

    def _tree(self, sha1: str) -> list[TreeItem]:
        return self._git.parse_tree(sha1, self._tree_data(sha1))

    def _walk_to(self, commit: str, path: str) -> TreeItem | None:
        item = TreeItem("", 0o040000, self.commit(commit).tree)
        for part in path.split("/") if path else []:
            if not item.is_dir:
                return None
            found = self._git.tree_names(item.sha1, self._tree_data(item.sha1)).get(part)
            if found is None:
                return None
            item = found
        return item

    def _entries(self, items: list[tuple[str, TreeItem]]) -> list[Entry]:
        metas = self._git.blob_meta([i.sha1 for _, i in items if not i.is_dir])
        xet = self._xet_held({m[1] for m in metas.values() if m[1]})
        entries = []
        for path, item in items:
            if item.is_dir:
                entries.append(Entry(path, "directory", item.sha1, 0))
                continue
            size, lfs_sha256, lfs_size = metas[item.sha1]
            lfs = (LfsInfo(lfs_sha256, lfs_size, size, xet[lfs_sha256][0] if lfs_sha256 in xet else None)
                   if lfs_sha256 and lfs_size is not None else None)
            entries.append(Entry(path, "file", item.sha1, lfs.size if lfs else size, lfs))
        return entries

    def _xet_held(self, sha256s: set[str]) -> dict[str, xet_files.Held]:
        """{sha256: (Xet file hash, size)} for the LFS contents this repo holds as Xet files."""
        if not sha256s or self._xet is None:
            return {}
        with self._git.metadata.session() as session:
            return xet_files.held(session, self.pk, sha256s)

    def list_tree(self, commit: str, path: str = "", recursive: bool = False) -> list[Entry]:
        root = self._walk_to(commit, path)
        if root is None or not root.is_dir:
            raise EntryNotFound(path or "/", commit=commit)
        items: list[tuple[str, TreeItem]] = []

        def visit(tree_sha: str, prefix: str) -> None:
            for item in self._tree(tree_sha):
                full = f"{prefix}{item.name}"
                items.append((full, item))
                if recursive and item.is_dir:
                    visit(item.sha1, full + "/")

        visit(root.sha1, f"{path}/" if path else "")
        return self._entries(items)

    def card_data(self, commit: str) -> dict[str, Any] | None:
        try:
            entry = self.describe(commit, CARD)
        except EntryNotFound:
            return None
        return None if entry.lfs else card_data(self.open(entry, commit).read_small(CARD_DATA_LIMIT))

    def describe(self, commit: str, path: str) -> Entry:
        item = self._walk_to(commit, path)
        if item is None or item.is_dir:
            raise EntryNotFound(path, commit=commit)
        return self._entries([(path, item)])[0]

    def open(self, entry: Entry, commit: str | None = None) -> Content:
        if entry.lfs and entry.lfs.xet_hash and self._xet:
            return self._xet_content(entry.path, self._xet, entry.lfs.xet_hash, entry.lfs.sha256)
        if entry.lfs:
            return self._stored(entry.path, entry.lfs.sha256, entry.lfs.size, redirect=True)
        location = self._git.blob_location(entry.oid)
        if location is None:
            raise HubError(f"Missing blob object {entry.oid}", status=500)
        size, sha256 = location
        if sha256 is None and size > constants.INLINE_BLOB_MAX:  # written by an older hubgate
            sha256 = self._git.externalise(entry.oid, self._blobs)
        if sha256 is not None:
            return self._stored(entry.path, sha256, size)
        data = self._object(entry.oid, "blob")
        if data is None:
            raise HubError(f"Missing blob object {entry.oid}", status=500)
        return Content(len(data), data=data)

    def _xet_content(self, path: str, xet: XetStore, file_hash: str, sha256: str) -> Content:
        """A file uploaded through Xet, as plain bytes: its plain copy if there is one, else
        reconstructed from its xorbs range by range (a whole download keeping a copy, see plain_copies)."""
        file = xet.readable(str_to_hash(file_hash), self.pk)
        if file is None:
            raise HubError(f"The Xet file of {path} is missing on this server; upload the file again", status=500)
        copy = self._copies.served(sha256, file.size) if self._copies is not None else None
        if copy is not None:
            return copy

        def rebuild(start: int, end: int) -> Iterator[bytes]:
            return xet.read(file, start, end)

        read = self._copies.reading(file.name, sha256, file.size, rebuild) if self._copies is not None else rebuild
        return Content(file.size, stream=threaded(read), verified=True)

    def xet_held(self, sha256s: set[str]) -> set[str]:
        """Those of `sha256s` this repo holds as (verified) Xet files."""
        return set(self._xet_held(sha256s))

    def xet_content(self, sha256: str) -> Content | None:
        """The content `sha256` if this repo holds it as a Xet file (for git-lfs downloads), else None."""
        held = self._xet_held({sha256})
        if sha256 not in held or self._xet is None:
            return None
        return self._xet_content(sha256, self._xet, held[sha256][0], sha256)

    def _stored(self, path: str, sha256: str, size: int, redirect: bool = False) -> Content:
        content = stored_content(self._blobs, sha256, size, redirect)
        if content is None:
            raise HubError(
                f"The content of {path} is missing or damaged on this server (quarantined by fsck);"
                " upload the file again", status=500,
            )
        return content
