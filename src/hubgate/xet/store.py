"""Xet storage: xorbs (their bytes in the blob store, their chunk index in the database), files
registered by shards, reconstruction plans and the plain bytes of a file.

Xorbs and files are content-addressed and shared by every repo: uploading a xorb that is stored
already stores nothing. A file is readable through a repo once a shard uploaded for that repo
registered it (proving, by its verification hashes, that the uploader holds the chunks it reuses).
Writers that make new references to stored xorbs hold garbage collection off (`storage.gcguard`).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from sqlalchemy import CursorResult, case, select, update
from sqlalchemy.orm import Session

from hubgate.errors import BadRequest, Forbidden
from hubgate.errors import RangeNotSatisfiable as HubRangeNotSatisfiable
from hubgate.storage.blobs import BlobStore, BlobWriter
from hubgate.storage.gcguard import hold_off_gc
from hubgate.storage.metadata import MetadataStore, Repo
from hubgate.storage.upsert import insert_missing, upsert
from hubgate.storage.xettables import XetDedupChunk, XetFileTerms, XetFileXorb, XetRepoFile, XetXorb
from hubgate.xet.hashing import dedup_eligible, hash_to_str, str_to_hash
from hubgate.xet.plan import RangeNotSatisfiable, plan
from hubgate.xet.reconstruct import digest_file, file_bytes
from hubgate.xet.shard import Term, XorbEntry, build_dedup_shard, check_file, check_xorb, parse_shard
from hubgate.xet.xorb import (
    ChunkEntry,
    IndexView,
    XetFormatError,
    XorbReader,
    pack_index,
)

MAX_SHARD_BYTES = 64 * 1024 * 1024
# Shard bodies checked at once by one process. Each is held in memory whole (up to 64 MiB). The
# checks are CPU-bound, so more slots than cores would only add memory; the other uploads wait,
# their bodies spooled to disk. (Xorbs are checked as they arrive, never held whole.)
BODY_SLOTS = max(1, min(4, os.cpu_count() or 1))
LOOKUP_BATCH = 500
# Xorb bytes are read in pieces below glibc's mmap threshold (server.steady_memory): they are decoded and
# dropped at once, so heap memory is reused instead of each megabyte piece faulting in fresh pages.
READ_PIECE = 256 * 1024
DEDUP_XORBS = 8  # xorbs listed in one global dedup answer at most
# Seconds a client may reuse a dedup answer (it names xorbs in later shards without asking again): a
# day, well inside gc's upload grace, so a xorb that goes with its last file is rarely still named.
DEDUP_EXPIRY = 86400
_TERM = struct.Struct("<32sIII")  # xorb hash, unpacked size, first chunk, end chunk (exclusive)


@dataclass(frozen=True)
class XetFile:
    """A file as one repo knows it: its Xet hash, size, terms and the SHA-256 its shard claimed."""

    file_hash: bytes
    size: int
    sha256: str | None
    verified: bool  # whether the hub checked the reconstructed bytes against `sha256`
    terms: tuple[Term, ...]

    @property
    def name(self) -> str:
        return hash_to_str(self.file_hash)


def pack_terms(terms: Iterable[Term]) -> bytes:
    return b"".join(_TERM.pack(t.xorb, t.unpacked_size, t.start, t.end) for t in terms)


def unpack_terms(data: bytes) -> tuple[Term, ...]:
    return tuple(Term(*fields) for fields in _TERM.iter_unpack(data))


class XorbUpload:
    """A xorb upload in progress: its body fed in pieces as it arrives (checked and written at once,
    never held whole), then `finish` (True if stored, False if it was stored already) or `abort`.

    What is stored is this server's own encoding of the chunks (`XorbReader`), never the uploader's
    bytes: the xorb hash covers the chunks' contents, not their encoding, so bytes that decode one
    way here and another way in a client must not be kept for everybody's downloads. BadRequest if
    the bytes are not that xorb; then nothing is stored."""

    def __init__(self, store: XetStore, xorb: bytes, writer: BlobWriter | None) -> None:
        self._store, self._xorb, self._writer = store, xorb, writer
        self._reader = XorbReader(writer.write if writer is not None else None)

    def feed(self, pieces: Iterable[bytes]) -> None:
        try:
            for piece in pieces:
                self._reader.feed(piece)
        except XetFormatError as error:
            raise BadRequest(f"Invalid xorb: {error}") from None

    def finish(self) -> bool:
        try:
            entries = self._reader.finish(self._xorb)
        except XetFormatError as error:
            raise BadRequest(f"Invalid xorb: {error}") from None
        if self._writer is None:
            return False
        size = self._writer.size  # the sha256 naming the blob was computed as it was written
        blob = self._writer.commit()
        self._store.record_xorb(hash_to_str(self._xorb), blob, size, entries)
        return True

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


class XetStore:
    def __init__(self, metadata: MetadataStore, blobs: BlobStore) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self._slots = threading.BoundedSemaphore(BODY_SLOTS)

    # -- uploads ---------------------------------------------------------------------------------
    def xorb_upload(self, xorb: bytes) -> XorbUpload:
        """Start receiving a serialized xorb named `xorb` (XorbUpload). One already stored is made
        young again (an upload waiting for its shard) and its bytes are only checked, not kept."""
        name = hash_to_str(xorb)
        if self._stored(name) and self._renew(name):
            return XorbUpload(self, xorb, None)
        return XorbUpload(self, xorb, self.blobs.writer())

    def record_xorb(self, name: str, blob: str, size: int, entries: Sequence[ChunkEntry]) -> None:
        """Register a xorb whose bytes are stored as `blob` (`size` bytes) with its chunk index."""
        row = {"hash": name, "blob_sha256": blob, "size": size, "unpacked": sum(e.unpacked_size for e in entries),
               "chunks": len(entries), "chunk_index": pack_index(entries), "touched_at": time.time()}
        asked = [e.hash for index, e in enumerate(entries) if index == 0 or dedup_eligible(e.hash)]
        with self.metadata.session() as session:
            hold_off_gc(session)
            upsert(session, XetXorb, row, ["hash"], ["touched_at"])
            insert_missing(session, XetDedupChunk, [{"chunk_hash": hash_to_str(h), "xorb_hash": name} for h in asked])

    def _stored(self, name: str) -> bool:
        with self.metadata.session() as session:
            return session.get(XetXorb, name) is not None

    def _renew(self, name: str) -> bool:
        """Make a stored xorb young again (an upload waiting for its shard); False if gc took it meanwhile."""
        with self.metadata.session() as session:
            hold_off_gc(session)
            renewed = session.execute(update(XetXorb).where(XetXorb.hash == name).values(touched_at=time.time()))
            return cast(CursorResult[Any], renewed).rowcount == 1

    def register_shard(self, body: bytes | IO[bytes], repo_pk: int) -> int:
        """Check a shard's files and xorbs against the stored xorbs and register its files for the
        repo; 1 if anything was new, 0 if it was all known. Durable once this returns."""
        with self._slots:
            data = _whole(body, MAX_SHARD_BYTES, "shard")
            try:
                shard = parse_shard(data)
            except XetFormatError as error:
                raise BadRequest(f"Invalid shard: {error}") from None
            del data
        needed = {t.xorb for f in shard.files for t in f.terms} | {x.xorb for x in shard.xorbs}
        now = time.time()
        with self.metadata.session() as session:
            hold_off_gc(session)  # the xorbs checked here stay until this transaction commits
            if session.get(Repo, repo_pk) is None:
                raise Forbidden("The repository this Xet access token was issued for no longer exists")
            indexes = {str_to_hash(h): IndexView(packed) for h, packed in _lookup(session, needed)}
            files: dict[str, dict[str, Any]] = {}
            uses: list[dict[str, str]] = []
            links: dict[str, dict[str, Any]] = {}
            firsts: list[dict[str, str]] = []
            try:
                for xorb in shard.xorbs:
                    check_xorb(xorb, indexes.get(xorb.xorb))
                for entry in shard.files:
                    size = check_file(entry, indexes.get)
                    name = hash_to_str(entry.file_hash)
                    files[name] = {"hash": name, "size": size, "terms": pack_terms(entry.terms)}
                    uses += [{"file_hash": name, "xorb_hash": hash_to_str(x)} for x in {t.xorb for t in entry.terms}]
                    links[name] = {"repo_pk": repo_pk, "file_hash": name, "sha256": entry.sha256, "verified": False,
                                   "linked_at": now}
                    if entry.terms:  # clients ask about every file's first chunk
                        first = entry.terms[0]
                        firsts.append({"chunk_hash": hash_to_str(indexes[first.xorb][first.start].hash),
                                       "xorb_hash": hash_to_str(first.xorb)})
            except XetFormatError as error:
                raise BadRequest(f"Invalid shard: {error}") from None
            known = _known_links(session, repo_pk, list(links))
            insert_missing(session, XetFileTerms, list(files.values()))
            insert_missing(session, XetFileXorb, uses)
            insert_missing(session, XetDedupChunk, firsts)
            insert_missing(session, XetRepoFile, [link for name, link in links.items() if name not in known])
            for name in known:  # registered again: renewed; a claim the hub verified stays
                session.execute(
                    update(XetRepoFile)
                    .where(XetRepoFile.repo_pk == repo_pk, XetRepoFile.file_hash == name)
                    .values(linked_at=now, sha256=case((XetRepoFile.verified, XetRepoFile.sha256),
                                                       else_=links[name]["sha256"]))
                )
        return 1 if set(links) - known else 0

    def confirm(self, repo_pk: int, file_hash: bytes, sha256: str) -> None:
        """The hub checked that the file's bytes hash to `sha256` (at a commit): remember it, and keep
        the repo's link to the file as long as a commit names that SHA-256."""
        with self.metadata.session() as session:
            hold_off_gc(session)
            session.execute(
                update(XetRepoFile)
                .where(XetRepoFile.repo_pk == repo_pk, XetRepoFile.file_hash == hash_to_str(file_hash))
                .values(sha256=sha256, verified=True, linked_at=time.time())
            )

    # -- lookups ---------------------------------------------------------------------------------
    def file_for_sha256(self, sha256: str, repo_pk: int) -> XetFile | None:
        """The file a shard uploaded for the repo claimed has this SHA-256 (a verified claim first)."""
        with self.metadata.session() as session:
            row = session.execute(
                _file_query(repo_pk).where(XetRepoFile.sha256 == sha256).order_by(XetRepoFile.verified.desc()).limit(1)
            ).first()
        return _file(row) if row is not None else None

    def readable(self, file_hash: bytes, repo_pk: int) -> XetFile | None:
        """The file if the repo may reconstruct it (a shard uploaded for the repo registered it), else None."""
        with self.metadata.session() as session:
            row = session.execute(_file_query(repo_pk).where(XetRepoFile.file_hash == hash_to_str(file_hash))).first()
        return _file(row) if row is not None else None

    def dedup(self, chunk: bytes, repo_pk: int) -> bytes | None:
        """The global dedup answer for a chunk (a shard listing the xorbs that hold it, chunk hashes
        keyed), among the xorbs of files the repo may read; None if there are none."""
        readable = (
            select(XetFileXorb.xorb_hash)
            .join(XetRepoFile, XetRepoFile.file_hash == XetFileXorb.file_hash)
            .where(XetRepoFile.repo_pk == repo_pk)
        )
        with self.metadata.session() as session:
            rows = session.execute(
                select(XetXorb.hash, XetXorb.chunk_index)
                .join(XetDedupChunk, XetDedupChunk.xorb_hash == XetXorb.hash)
                .where(XetDedupChunk.chunk_hash == hash_to_str(chunk), XetXorb.hash.in_(readable))
                .order_by(XetXorb.hash)
                .limit(DEDUP_XORBS)
            ).all()
        if not rows:
            return None
        xorbs = [XorbEntry(str_to_hash(h), tuple((e.hash, e.unpacked_size) for e in IndexView(packed))) for h, packed in rows]
        now = int(time.time())
        return build_dedup_shard(xorbs, os.urandom(32), now, now + DEDUP_EXPIRY)

    def xorb_blob(self, xorb: str) -> tuple[str, int] | None:
        """(blob sha256, serialized size) of a stored xorb, by its hash string."""
        with self.metadata.session() as session:
            row = session.execute(select(XetXorb.blob_sha256, XetXorb.size).where(XetXorb.hash == xorb)).first()
        return (row[0], row[1]) if row is not None else None

    # -- downloads -------------------------------------------------------------------------------
    def reconstruction(self, file: XetFile, start: int, end: int | None, url_for: Callable[[str], str]) -> dict[str, Any]:
        """The v1 reconstruction answer for bytes `start..end` (inclusive; None: to the end) of the
        file; `url_for(xorb hash string)` is where the client fetches that xorb's ranges.
        A 416 HubError when `start` is not inside the file."""
        indexes = self._indexes(file)
        try:
            found = plan(file.terms, indexes.get, start, end)
        except RangeNotSatisfiable as refused:
            raise _unsatisfiable(start, refused.size) from None
        return {
            "offset_into_first_range": found.offset_into_first_range,
            "terms": [
                {"hash": hash_to_str(t.xorb), "unpacked_length": t.unpacked_size, "range": {"start": t.start, "end": t.end}}
                for t in found.terms
            ],
            "fetch_info": {
                hash_to_str(xorb): [
                    {"range": {"start": r.chunk_start, "end": r.chunk_end}, "url": url_for(hash_to_str(xorb)),
                     "url_range": {"start": r.byte_start, "end": r.byte_end}}
                    for r in ranges
                ]
                for xorb, ranges in found.fetch.items()
            },
        }

    def read(self, file: XetFile, start: int, end: int | None) -> Iterator[bytes]:
        """The file's bytes `start..end` (inclusive; None: to the end), decoded from the stored xorbs one
        range at a time and checked against their chunk hashes. A 416 HubError (before any byte) when
        `start` is not inside the file; xetcore's StoredDataError while iterating if stored data is damaged."""
        indexes = self._indexes(file)
        blobs = self._blobs({t.xorb for t in file.terms})

        def read_xorb(xorb: bytes, byte_start: int, byte_end: int) -> Iterator[bytes]:
            return self.blobs.read(blobs[xorb], byte_start, byte_end, READ_PIECE)

        try:
            return file_bytes(file.terms, indexes.get, read_xorb, start, end)
        except RangeNotSatisfiable as refused:
            raise _unsatisfiable(start, refused.size) from None

    def sha256(self, file: XetFile) -> str:
        """The SHA-256 of the file's bytes as its stored xorbs rebuild it (reconstruct.digest_file: no
        copies, chunks not re-checked against their BLAKE3 hashes); StoredDataError if a xorb is
        missing or does not match its index."""
        digest = hashlib.sha256()
        blobs = self._blobs({t.xorb for t in file.terms})

        def read_xorb(xorb: bytes, byte_start: int, byte_end: int) -> Iterator[bytes]:
            return self.blobs.read(blobs[xorb], byte_start, byte_end, READ_PIECE)

        digest_file(file.terms, self._indexes(file).get, read_xorb, digest)
        return digest.hexdigest()

    def _indexes(self, file: XetFile) -> dict[bytes, Sequence[ChunkEntry]]:
        """The chunk indexes of the file's xorbs, read in place (a small range decodes a few entries)."""
        with self.metadata.session() as session:
            return {str_to_hash(h): IndexView(packed) for h, packed in _lookup(session, {t.xorb for t in file.terms})}

    def _blobs(self, xorbs: set[bytes]) -> dict[bytes, str]:
        names = [hash_to_str(x) for x in xorbs]
        with self.metadata.session() as session:
            rows = session.execute(select(XetXorb.hash, XetXorb.blob_sha256).where(XetXorb.hash.in_(names))).all()
        return {str_to_hash(h): blob for h, blob in rows}


def _unsatisfiable(start: int, size: int) -> HubRangeNotSatisfiable:
    return HubRangeNotSatisfiable(f"Range starting at byte {start} not satisfiable for {size} bytes",
                                  headers={"Content-Range": f"bytes */{size}"})


def _whole(body: bytes | IO[bytes], limit: int, what: str) -> bytes:
    data = body if isinstance(body, bytes) else body.read(limit + 1)
    if len(data) > limit:
        raise BadRequest(f"The {what} is larger than {limit} bytes")
    return data


def _lookup(session: Session, xorbs: set[bytes]) -> list[tuple[str, bytes]]:
    """(hash string, packed chunk index) of those of `xorbs` that are stored."""
    names = sorted(hash_to_str(x) for x in xorbs)
    found: list[tuple[str, bytes]] = []
    for at in range(0, len(names), LOOKUP_BATCH):
        batch = names[at : at + LOOKUP_BATCH]
        found += [(h, packed) for h, packed in session.execute(
            select(XetXorb.hash, XetXorb.chunk_index).where(XetXorb.hash.in_(batch)))]
    return found


def _known_links(session: Session, repo_pk: int, names: list[str]) -> set[str]:
    known: set[str] = set()
    for at in range(0, len(names), LOOKUP_BATCH):
        known |= set(session.scalars(select(XetRepoFile.file_hash).where(
            XetRepoFile.repo_pk == repo_pk, XetRepoFile.file_hash.in_(names[at : at + LOOKUP_BATCH]))))
    return known


def _file_query(repo_pk: int) -> Any:
    return (
        select(XetFileTerms.hash, XetFileTerms.size, XetRepoFile.sha256, XetRepoFile.verified, XetFileTerms.terms)
        .join(XetRepoFile, XetRepoFile.file_hash == XetFileTerms.hash)
        .where(XetRepoFile.repo_pk == repo_pk)
    )


def _file(row: Any) -> XetFile:
    name, size, sha256, verified, terms = row
    return XetFile(str_to_hash(name), size, sha256, bool(verified), unpack_terms(terms))
