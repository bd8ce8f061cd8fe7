"""The metadata of Xet storage: xorbs (their bytes are blob-store objects), files, and who uploaded what.

Everything is keyed by Xet hashes in their 64-hex string form. Xorbs and files are content-addressed
and shared by all repos; `xet_repo_files` says which repo registered which file (by a shard), which is
what a repo-scoped read token may reconstruct, and what garbage collection keeps alive.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hubgate.storage.metadata import Base


class XetXorb(Base):
    """A stored xorb: its serialized bytes are the blob `blob_sha256`; `chunk_index` is xetcore's
    packed chunk index (hash, unpacked size, offset and stored size of each chunk)."""

    __tablename__ = "xet_xorbs"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)  # serialized bytes
    unpacked: Mapped[int] = mapped_column(BigInteger)  # the chunks' bytes once decoded
    chunks: Mapped[int] = mapped_column(Integer)
    chunk_index: Mapped[bytes] = mapped_column(LargeBinary)
    # Seconds since the epoch of the last upload of these bytes (a re-upload renews it): garbage
    # collection leaves a xorb no file uses alone until it is older than its grace period.
    touched_at: Mapped[float] = mapped_column(Float)


class XetFileTerms(Base):
    """A file by its Xet hash: its terms (ranges of xorb chunks, packed), checked against the
    stored xorbs when a shard registered it."""

    __tablename__ = "xet_files"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    terms: Mapped[bytes] = mapped_column(LargeBinary)


class XetFileXorb(Base):
    """File `file_hash` uses xorb `xorb_hash` (no xorb a file uses can be deleted)."""

    __tablename__ = "xet_file_xorbs"
    file_hash: Mapped[str] = mapped_column(ForeignKey("xet_files.hash", ondelete="CASCADE"), primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(ForeignKey("xet_xorbs.hash"), primary_key=True, index=True)


class XetRepoFile(Base):
    """A shard uploaded for repo `repo_pk` registered file `file_hash` (deleted with the repo).

    `sha256` is what the shard claimed the file's SHA-256 to be; `verified` once the hub checked the
    reconstructed bytes against it (at a commit). `linked_at` (seconds since the epoch): garbage
    collection drops links no commit uses once they are older than its upload grace period.
    """

    __tablename__ = "xet_repo_files"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    file_hash: Mapped[str] = mapped_column(ForeignKey("xet_files.hash"), primary_key=True, index=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_at: Mapped[float] = mapped_column(Float)


class XetDedupChunk(Base):
    """Xorb `xorb_hash` holds chunk `chunk_hash`, a chunk clients ask the global dedup query about
    (§3.7: a hash `dedup_eligible` picks, or the first chunk of a xorb or of a registered file)."""

    __tablename__ = "xet_dedup_chunks"
    chunk_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(ForeignKey("xet_xorbs.hash", ondelete="CASCADE"), primary_key=True, index=True)


class XetPlainCopy(Base):
    """A plain copy of file `file_hash`: its bytes rebuilt once for a plain-HTTP or git-lfs client and
    kept as the blob `sha256` (published only if they hashed to it), served from then on like an LFS
    object. A cache, capped by `[xet] plain_copy_max_bytes`, least recently used first out.

    `ready` is False while one process writes it (the row is its claim: others rebuild without
    copying); `last_access` (seconds since the epoch) is the claim's time until then."""

    __tablename__ = "xet_plain_copies"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_hash: Mapped[str] = mapped_column(ForeignKey("xet_files.hash", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    last_access: Mapped[float] = mapped_column(Float, index=True)
