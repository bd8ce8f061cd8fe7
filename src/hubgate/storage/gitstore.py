"""Git objects and refs inside the metadata store.

Objects are immutable and content-addressed, so reads are cached per process; refs move only
through compare-and-swap updates inside the caller's transaction.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hubgate.errors import PreconditionFailed
from hubgate.git.objects import RawObject, parse_commit, parse_lfs_pointer, parse_tree
from hubgate.storage.metadata import GitObject, MetadataStore, Ref


class Memo:
    """A bounded set of keys (emptied when full): enough to skip repeated history walks."""

    def __init__(self, size: int = 65536) -> None:
        self._keys: set[tuple[object, ...]] = set()
        self._size = size

    def __contains__(self, key: tuple[object, ...]) -> bool:
        return key in self._keys

    def add(self, key: tuple[object, ...]) -> None:
        if len(self._keys) >= self._size:
            self._keys.clear()
        self._keys.add(key)


class GitStore:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self.read_object = lru_cache(maxsize=4096)(self._read_object)
        # Parsed objects are as immutable as the raw ones: parse each once per process.
        self.parse_tree = lru_cache(maxsize=4096)(lambda sha1, data: parse_tree(data))
        self.parse_commit = lru_cache(maxsize=4096)(parse_commit)
        # (repo pk, repo creation time, commit) known reachable from that repo's refs; the creation
        # time keeps a deleted repo's commits from leaking into a new repo reusing its primary key.
        self.reachable = Memo()
        # The same plus the repo's refs, for commits found unreachable while the refs were so.
        self.unreachable = Memo()

    def _read_object(self, sha1: str) -> tuple[str, bytes] | None:
        with self.metadata.session() as session:
            row = session.get(GitObject, sha1)
            return (row.kind, row.data) if row else None

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
    def put_objects(session: Session, objects: list[RawObject]) -> None:
        rows = []
        for obj in {o.sha1: o for o in objects}.values():
            pointer = parse_lfs_pointer(obj.data) if obj.kind == "blob" else None
            rows.append(
                {
                    "sha1": obj.sha1,
                    "kind": obj.kind,
                    "size": len(obj.data),
                    "data": obj.data,
                    "lfs_sha256": pointer[0] if pointer else None,
                    "lfs_size": pointer[1] if pointer else None,
                }
            )
        if not rows:
            return
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        for start in range(0, len(rows), 200):
            session.execute(insert(GitObject).values(rows[start : start + 200]).on_conflict_do_nothing())

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
        result = session.execute(
            update(Ref).where(Ref.repo_pk == repo_pk, Ref.name == name, Ref.target == expected).values(target=new)
        )
        if result.rowcount != 1:
            raise PreconditionFailed(
                "The branch was updated since you opened this page. Please refresh and try again."
            )

    @staticmethod
    def delete_ref(session: Session, repo_pk: int, name: str) -> bool:
        return session.execute(delete(Ref).where(Ref.repo_pk == repo_pk, Ref.name == name)).rowcount == 1
