"""The metadata store: SQLAlchemy 2 tables and the engine (SQLite by default, or PostgreSQL).

Git objects and refs live here too, so that a commit (its new objects and the ref move) is one
database transaction: either all of it is visible or none of it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from hubgate.storage.dialects import create


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(96), unique=True)
    fullname: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(96), unique=True)
    fullname: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(back_populates="org", cascade="all, delete-orphan")


class Membership(Base):
    __tablename__ = "memberships"
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # read | write | admin
    org: Mapped[Org] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # read | write | fineGrained
    grants: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list, fine-grained tokens only
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise a token in lists
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user: Mapped[User] = relationship()


class Repo(Base):
    __tablename__ = "repos"
    __table_args__ = (UniqueConstraint("type", "namespace", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    namespace: Mapped[str] = mapped_column(String(96))
    name: Mapped[str] = mapped_column(String(96))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    gated: Mapped[str | None] = mapped_column(String(16), nullable=True)  # None | auto | manual
    sdk: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"



# Repo names are looked up in any letter case (as on the Hub): one indexed lookup, found or not.
Index("ix_repos_folded_name", Repo.type, func.lower(Repo.namespace), func.lower(Repo.name))

class Collaborator(Base):
    """A user given a role on one repo without joining its organisation."""

    __tablename__ = "repo_collaborators"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # read | write
    user: Mapped[User] = relationship()


class AccessRequest(Base):
    """A user's request for the files of a gated repo, and its decision."""

    __tablename__ = "access_requests"
    __table_args__ = (UniqueConstraint("repo_pk", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # pending | accepted | rejected
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    user: Mapped[User] = relationship()


class AuthFailures(Base):
    """Failed authentications of one client address in the current window (shared by all workers)."""

    __tablename__ = "auth_failures"
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)


class UpstreamToken(Base):
    """A user's own token for one upstream hub, encrypted with a key derived from the server key."""

    __tablename__ = "upstream_tokens"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(100), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Ref(Base):
    __tablename__ = "refs"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # refs/heads/main, refs/tags/v1
    target: Mapped[str] = mapped_column(String(40))


class GitObject(Base):
    """A git object, content-addressed by its sha1. LFS pointer blobs record what they point at.

    A blob larger than `constants.INLINE_BLOB_MAX` keeps its bytes in the blob store under
    `content_sha256` (then `data` is empty), so it is served like an LFS file, never held in memory.
    """

    __tablename__ = "git_objects"
    sha1: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # blob | tree | commit | tag
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    lfs_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    lfs_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class RepoLfsObject(Base):
    """The LFS object `oid` was sent to the repo `repo_pk` (deleted with the repo).

    `linked_at` (seconds since the epoch; None for links older than the column): garbage
    collection drops links no commit uses once they are older than its upload grace period.
    """

    __tablename__ = "repo_lfs_objects"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    oid: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    linked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Maintenance(Base):
    """One row per maintenance task (`gc`): who runs it, since when, and how the last run went.

    Its row also serialises garbage collection with writers (see `storage.gcguard`).
    """

    __tablename__ = "maintenance"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    report: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class MirrorRevision(Base):
    """What a branch or tag of an upstream repo pointed at, and when that was learnt."""

    __tablename__ = "mirror_revisions"
    repo_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    repo_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    revision: Mapped[str] = mapped_column(String(255), primary_key=True)
    commit: Mapped[str] = mapped_column(String(40))
    fetched_at: Mapped[float] = mapped_column(Float)
    upstream: Mapped[str] = mapped_column(String(100))


class MirrorCommit(Base):
    """An upstream commit: immutable once seen, so cached forever (repo info and full tree)."""

    __tablename__ = "mirror_commits"
    repo_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    repo_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    commit: Mapped[str] = mapped_column(String(40), primary_key=True)
    info: Mapped[bytes] = mapped_column(LargeBinary)  # zlib-compressed JSON of the repo info
    tree: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # zlib-compressed JSON entries
    fetched_at: Mapped[float] = mapped_column(Float)


class MirrorFile(Base):
    """A file cached from upstream: its id (sha256, or git sha1 for regular files) and use."""

    __tablename__ = "mirror_files"
    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    upstream: Mapped[str] = mapped_column(String(100))
    last_access: Mapped[float] = mapped_column(Float, index=True)


class RepoRedirect(Base):
    """A hosted repo's former name (lower case), answered with a redirect to its current one."""

    __tablename__ = "repo_redirects"
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    old_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)


class Discussion(Base):
    """A discussion or pull request (`refs/pr/{num}`) of a hosted repo; `num` counts per repo."""

    __tablename__ = "discussions"
    __table_args__ = (UniqueConstraint("repo_pk", "num"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    num: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    is_pr: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # open | closed | merged
    author: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    target_branch: Mapped[str | None] = mapped_column(String(255), nullable=True)  # refs/heads/main
    base_commit: Mapped[str | None] = mapped_column(String(40), nullable=True)  # where the PR started
    merge_commit: Mapped[str | None] = mapped_column(String(40), nullable=True)


class DiscussionEvent(Base):
    """What happened in a discussion: a comment, a status or title change, a commit on the PR."""

    __tablename__ = "discussion_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    discussion_id: Mapped[int] = mapped_column(ForeignKey("discussions.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # comment | status-change | title-change | commit
    author: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    content: Mapped[str] = mapped_column(Text)  # comment text, new status, new title, or commit subject
    extra: Mapped[str | None] = mapped_column(String(255), nullable=True)  # commit id, or the old title


class MirrorAlias(Base):
    """A name an upstream resolves to another repo (legacy `gpt2`, renamed, other letter case)."""

    __tablename__ = "mirror_aliases"
    repo_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    asked: Mapped[str] = mapped_column(String(200), primary_key=True)  # lower case
    canonical: Mapped[str] = mapped_column(String(200))
    fetched_at: Mapped[float] = mapped_column(Float)


class MirrorNegative(Base):
    """An upstream 404 remembered for a short while, or another fact about upstream until `expires_at`."""

    __tablename__ = "mirror_negative"
    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


class MirrorHealth(Base):
    """Each upstream's health as last seen by any worker process."""

    __tablename__ = "mirror_health"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_success: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_error_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class MirrorLease(Base):
    """Who does a job that only one replica may do at a time (fetching file `fetch:<oid>`,
    evicting the cache `evict`), until `expires_at` unless its holder renews it."""

    __tablename__ = "mirror_leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))  # one process: host, pid and a random part
    url: Mapped[str] = mapped_column(String(300))  # where other replicas reach the holder ("" when they cannot)
    expires_at: Mapped[float] = mapped_column(Float)
    streaming: Mapped[bool] = mapped_column(Boolean, default=False)  # the upstream answered: bytes are coming


class Counter(Base):
    """Monotonic counters shared by every worker process (cache hits, misses, ...)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class MetadataStore:
    """Owns the engine and hands out sessions; one per process."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        """`pool_size`: connections kept open per process (as many more may open under load)."""
        self.engine: Engine = create(url, pool_size)
        from hubgate.storage.schema import upgrade

        # Whether this start brought the schema to the newest revision (False: it was there already).
        self.migrated = upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def check(self) -> None:
        """Raise (an SQLAlchemyError) unless the database answers now (a readiness probe)."""
        with self.engine.connect() as connection:
            connection.execute(select(1))

    def dispose(self) -> None:
        self.engine.dispose()

