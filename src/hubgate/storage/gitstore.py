"""Git objects and refs inside the metadata store.

Objects are immutable and content-addressed, so reads are cached per process (caches capped by
bytes); refs move only through compare-and-swap updates inside the caller's transaction. Blobs
larger than `INLINE_BLOB_MAX` keep their bytes in the blob store (`content_sha256`).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from hubgate import constants
from hubgate.errors import PreconditionFailed
from hubgate.git.objects import CommitData, RawObject, TreeItem, parse_commit, parse_lfs_pointer, parse_tree
from hubgate.memcache import ByteCache
from hubgate.storage.blobs import BlobStore
from hubgate.storage.metadata import GitObject, MetadataStore, Ref
from hubgate.storage.upsert import insert_missing


class Memo:
    """A set of keys capped by their estimated size: enough to skip repeated history walks."""

    def __init__(self, max_bytes: int = constants.MEMO_CACHE_BYTES) -> None:
        self._keys: ByteCache[tuple[object, ...], int] = ByteCache(max_bytes, weigh=lambda weight: weight)

    def __contains__(self, key: tuple[object, ...]) -> bool:
        return key in self._keys

    def add(self, key: tuple[object, ...]) -> None:
        self._keys.put(key, 200 + sum(150 * len(part) for part in key if isinstance(part, frozenset)))


class GitStore:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self._objects: ByteCache[str, tuple[str, bytes]] = ByteCache(
            constants.OBJECT_CACHE_BYTES, weigh=lambda found: 100 + len(found[1])
        )
        self.read_object = self._objects.cached(self._read_object)
        # Parsed objects are as immutable as the raw ones: parse each once per process.
        self._trees: ByteCache[str, list[TreeItem]] = ByteCache(
            constants.PARSED_CACHE_BYTES // 2, weigh=lambda items: 100 + 250 * len(items)
        )
        self._names: ByteCache[str, dict[str, TreeItem]] = ByteCache(
            constants.PARSED_CACHE_BYTES // 4, weigh=lambda names: 100 + 100 * len(names)
        )
        self._commits: ByteCache[str, CommitData] = ByteCache(
            constants.PARSED_CACHE_BYTES // 2, weigh=lambda commit: 600 + len(commit.message)
        )
        # (repo pk, repo creation time, commit) known reachable from that repo's refs; the creation
        # time keeps a deleted repo's commits from leaking into a new repo reusing its primary key.
        self.reachable = Memo()
        # The same plus the repo's refs, for commits found unreachable while the refs were so.
        self.unreachable = Memo()

    def _read_object(self, sha1: str) -> tuple[str, bytes] | None:
        with self.metadata.session() as session:
            row = session.get(GitObject, sha1)
            return (row.kind, row.data) if row else None

    def parse_tree(self, sha1: str, data: bytes) -> list[TreeItem]:
        items = self._trees.get(sha1)
        if items is None:
            items = parse_tree(data)
            self._trees.put(sha1, items)
        return items

    def tree_names(self, sha1: str, data: bytes) -> dict[str, TreeItem]:
        """The items of tree `sha1` by name, indexed once per process (a path's lookup does not scan
        a folder of thousands of files)."""
        names = self._names.get(sha1)
        if names is None:
            names = {item.name: item for item in self.parse_tree(sha1, data)}
            self._names.put(sha1, names)
        return names

    def parse_commit(self, sha1: str, data: bytes) -> CommitData:
        commit = self._commits.get(sha1)
        if commit is None:
            commit = parse_commit(sha1, data)
            self._commits.put(sha1, commit)
        return commit

    def blob_location(self, sha1: str) -> tuple[int, str | None] | None:
        """(size, sha256 of the bytes in the blob store, or None if they are in the database)."""
        with self.metadata.session() as session:
            row = session.execute(
                select(GitObject.size, GitObject.content_sha256).where(GitObject.sha1 == sha1, GitObject.kind == "blob")
            ).first()
            return (row.size, row.content_sha256) if row else None

    def externalise(self, sha1: str, blobs: BlobStore) -> str | None:
        """Move a large blob's bytes kept in the database (by an older hubgate) to the blob store."""
        with self.metadata.session() as session:
            data = session.scalar(select(GitObject.data).where(GitObject.sha1 == sha1, GitObject.kind == "blob"))
        if data is None:
            return None
        writer = blobs.writer()
        writer.write(data)
        sha256 = writer.commit()
        with self.metadata.session() as session:
            session.execute(
                update(GitObject)
                .where(GitObject.sha1 == sha1, GitObject.content_sha256.is_(None))
                .values(content_sha256=sha256, data=b"")
            )
        return sha256

    def blob_meta(self, sha1s: list[str]) -> dict[str, tuple[int, str | None, int | None]]:
        """{sha1: (size, lfs sha256, lfs size)} for blobs, without loading their data."""
        found: dict[str, tuple[int, str | None, int | None]] = {}
        with self.metadata.session() as session:
            for start in range(0, len(sha1s), 500):
                chunk = sha1s[start : start + 500]
                rows = session.execute(
                    select(GitObject.sha1, GitObject.size, GitObject.lfs_sha256, GitObject.lfs_size).where(
                        GitObject.sha1.in_(chunk)
                    )
                )
                for sha1, size, lfs_sha256, lfs_size in rows:
                    found[sha1] = (size, lfs_sha256, lfs_size)
        return found

    @staticmethod
    def put_objects(session: Session, objects: list[RawObject], stored: dict[str, tuple[str, int]] | None = None) -> None:
        """Insert `objects`; those named in `stored` ({sha1: (sha256, size)}) have their bytes in the blob store."""
        stored = stored or {}
        rows = []
        for obj in {o.sha1: o for o in objects}.values():
            pointer = parse_lfs_pointer(obj.data) if obj.kind == "blob" else None
            content = stored.get(obj.sha1)
            rows.append(
                {
                    "sha1": obj.sha1,
                    "kind": obj.kind,
                    "size": content[1] if content else len(obj.data),
                    "data": b"" if content else obj.data,
                    "lfs_sha256": pointer[0] if pointer else None,
                    "lfs_size": pointer[1] if pointer else None,
                    "content_sha256": content[0] if content else None,
                }
            )
        # One statement executed for every row (executemany): compiling a multi-row VALUES per
        # chunk cost more than the inserts themselves.
        insert_missing(session, GitObject, rows)

    @staticmethod
    def refs(session: Session, repo_pk: int) -> dict[str, str]:
        rows = session.execute(select(Ref.name, Ref.target).where(Ref.repo_pk == repo_pk))
        return {name: target for name, target in rows}

    @staticmethod
    def set_ref(session: Session, repo_pk: int, name: str, new: str, expected: str | None) -> None:
        """Move `name` to `new` only if it still points at `expected` (None: must not exist)."""
        if expected is None:
            if session.get(Ref, (repo_pk, name)) is not None:
                raise PreconditionFailed(f"Reference {name} already exists")
            session.add(Ref(repo_pk=repo_pk, name=name, target=new))
            session.flush()
            return
        result = cast(
            CursorResult[Any],
            session.execute(
                update(Ref).where(Ref.repo_pk == repo_pk, Ref.name == name, Ref.target == expected).values(target=new)
            ),
        )
        if result.rowcount != 1:
            raise PreconditionFailed(
                "The branch was updated since you opened this page. Please refresh and try again."
            )

    @staticmethod
    def delete_ref(session: Session, repo_pk: int, name: str) -> bool:
        result = cast(CursorResult[Any], session.execute(delete(Ref).where(Ref.repo_pk == repo_pk, Ref.name == name)))
        return result.rowcount == 1
