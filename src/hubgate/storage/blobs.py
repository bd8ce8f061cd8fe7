"""Content-addressed blob storage, keyed by SHA256.

Writers stream into a temporary file, hash on the way, and publish with an atomic rename only
when the digest (and size, when known) match: a crash or a bad upload never leaves a partial
blob visible.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from hubgate import constants
from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.errors import BadRequest
from hubgate.processes import alive


class BlobWriter(Protocol):
    def __enter__(self) -> BlobWriter: ...
    def __exit__(self, *exc: object) -> None: ...
    def write(self, data: bytes | memoryview) -> None: ...
    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> str: ...
    def abort(self) -> None: ...
    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    written_at: float  # seconds since the epoch of the last write (publishing it again renews it)


class BlobStore(Protocol):
    """What the rest of hubgate needs from blob storage: streams, ranges, sizes, conditional
    creation and presigned URLs - never file paths."""

    on_disk: bool
    """Whether `open` gives a file on this machine's disk (answers then send it with sendfile)
    rather than a network stream."""

    def exists(self, sha256: str) -> bool: ...
    def size(self, sha256: str) -> int | None: ...
    def open(self, sha256: str) -> BinaryIO:
        """The blob's bytes from the start; FileNotFoundError if it is not stored."""
    def read(self, sha256: str, start: int, end: int, piece: int = constants.STREAM_CHUNK) -> Generator[bytes, None, None]:
        """The bytes `start..end` (inclusive) in chunks of at most `piece` bytes."""
    def presigned_url(self, sha256: str) -> str | None:
        """A short-lived URL clients fetch the blob from directly, or None to stream it here."""
    def writer(self, expected_sha256: str | None = None) -> BlobWriter:
        """A writer of a new blob; `expected_sha256`, when known, lets a store upload straight to
        the blob's key (S3), still published only if the bytes hash to it."""
    def delete(self, sha256: str) -> None: ...
    def remove_partial_writes(self) -> int: ...
    def publish(self, source: BinaryIO, sha256: str) -> None:
        """Publish the bytes of `source` (an open file, from its start) already verified to hash
        to `sha256`, unless the blob exists (then it is renewed, as a write would). The caller
        keeps `source`; a local store links a file on its own filesystem instead of copying it."""
    def scan(self) -> Iterator[StoredBlob]:
        """Every published blob (in no particular order)."""
    def delete_if_older(self, sha256: str, cutoff: float) -> bool:
        """Delete the blob unless it was (re)written at or after `cutoff`, as one step with respect
        to writers publishing it again; True if it was deleted."""
    def quarantine(self, sha256: str, reason: str) -> None:
        """Move a damaged blob aside (kept for inspection, never served); no-op if absent."""
    def recover_deletes(self) -> int:
        """Finish `delete_if_older` calls a crash interrupted (blobs are put back, never lost)."""
    def check(self) -> None:
        """Raise OSError unless blobs can be read and written now (a readiness probe)."""


def blob_key(sha256: str) -> str:
    """Where a blob lies under a store's root: `ab/cd/<sha256>` (also the X-Accel-Redirect path)."""
    if not is_sha256(sha256):
        raise BadRequest(f"Not a sha256: {sha256!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def copy_in(writer: BlobWriter, source: BinaryIO, sha256: str, piece: int = constants.STREAM_CHUNK) -> None:
    """Write all of `source` (from its start) through `writer` and publish it as `sha256`."""
    source.seek(0)
    with writer:
        while chunk := source.read(piece):
            writer.write(chunk)
        writer.commit(sha256)


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def check_received(digest: str, size: int, expected_sha256: str | None, expected_size: int | None) -> None:
    """BadRequest unless a writer's bytes are what the uploader announced."""
    if expected_size is not None and expected_size != size:
        raise BadRequest(f"Size mismatch: expected {expected_size} bytes, received {size}")
    if expected_sha256 is not None and expected_sha256 != digest:
        raise BadRequest(f"Hash mismatch: expected sha256 {expected_sha256}, received {digest}")


def _locked_temp_file(tmp_dir: Path) -> tuple[int, Path]:
    """A new `blob-*` file in `tmp_dir`, held under an exclusive flock for as long as its fd is open.

    The lock tells any process's start-up cleanup that a live writer owns the file. A cleanup
    that got in between creating and locking has unlinked it: then try again.
    """
    while True:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, Path(name)
        os.close(fd)


def _folders_for(final: Path) -> list[Path]:
    """Create `final`'s folder; returns the folders whose entries must reach the disk once `final`
    is renamed there: its own, and the parent of each folder just created."""
    created = [folder for folder in (final.parent.parent, final.parent) if not folder.is_dir()]
    final.parent.mkdir(parents=True, exist_ok=True)
    return [final.parent, *(folder.parent for folder in reversed(created))]


def _name_of(fd: int) -> str | None:
    """The name an open file has now, if any (for a second name without a copy)."""
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
        named, opened = os.stat(name), os.fstat(fd)
    except OSError:
        return None
    return name if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino) else None


def _sync_folders(folders: list[Path]) -> None:
    """fsync folders, so a rename into them survives a power cut before the database names the blob."""
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalBlobWriter:
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        fd, self._path = _locked_temp_file(store.tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> str:
        digest = self._hash.hexdigest()
        try:
            check_received(digest, self._size, expected_sha256, expected_size)
            self._file.flush()
            os.fsync(self._file.fileno())
            final = self._store.path_for(digest)
            folders = _folders_for(final)
            self._store.crash.hit("blob-written")
            os.replace(self._path, final)  # still open, so still locked: no cleanup can take it first
            self._done = True
            self._file.close()
            _sync_folders(folders)
            return digest
        finally:
            if not self._done:
                self.abort()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> LocalBlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class LocalBlobStore:
    """Blobs as files `root/ab/cd/<sha256>` on the local disk."""

    on_disk = True

    def __init__(self, root: Path, tmp_dir: Path, crash: CrashPoints = NO_CRASH) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.crash = crash
        root.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            raise NotADirectoryError(f"{self.root} is not a folder this process may read and write")
        fd, path = tempfile.mkstemp(dir=self.tmp_dir, prefix="ready-")  # where every write starts
        os.close(fd)
        os.unlink(path)

    def path_for(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def read(self, sha256: str, start: int, end: int, piece: int = constants.STREAM_CHUNK) -> Generator[bytes, None, None]:
        with self.open(sha256) as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0 and (chunk := handle.read(min(piece, remaining))):
                remaining -= len(chunk)
                yield chunk

    def presigned_url(self, sha256: str) -> str | None:
        return None

    def writer(self, expected_sha256: str | None = None) -> LocalBlobWriter:
        return LocalBlobWriter(self)  # a temporary file renamed at commit, whatever the hash

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def remove_partial_writes(self) -> int:
        """Delete temporary files left by writers that died; those a live writer (in any process)
        still holds are locked, and kept."""
        removed = 0
        for leftover in self.tmp_dir.glob("blob-*"):
            try:
                fd = os.open(leftover, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                leftover.unlink(missing_ok=True)  # under the lock: no writer can own it meanwhile
                removed += 1
            except BlockingIOError:
                continue  # a live writer's
            finally:
                os.close(fd)
        return removed

    def publish(self, source: BinaryIO, sha256: str) -> None:
        final = self.path_for(sha256)
        folders = _folders_for(final)
        os.fsync(source.fileno())
        name = _name_of(source.fileno())
        while True:
            try:  # a second name for the very file (no copy); refused if the blob exists
                if name is None:
                    raise OSError("no name for the file")
                os.link(name, final)
                break
            except FileExistsError:
                try:  # renewed, as a writer's rename would, so a collection running now keeps it
                    os.utime(final)
                    return
                except FileNotFoundError:  # collected between the two steps: link it again
                    continue
            except OSError:  # another filesystem, or no /proc: copied like any upload
                copy_in(self.writer(sha256), source, sha256)
                return
        _sync_folders(folders)

    def scan(self) -> Iterator[StoredBlob]:
        for path in self.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
            if not is_sha256(path.name) or path.parent.parent.name + path.parent.name != path.name[:4]:
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            yield StoredBlob(path.name, info.st_size, info.st_mtime)

    def delete_if_older(self, sha256: str, cutoff: float) -> bool:
        # Take the file out of sight first (rename is atomic), then look at what was taken: if a
        # writer published it again meanwhile (a new file, fresh mtime), put that back.
        path = self.path_for(sha256)
        doomed = self.tmp_dir / f"gc-{sha256}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.replace(path, doomed)
        except FileNotFoundError:
            return False
        self.crash.hit("gc-unlinking")
        if doomed.stat().st_mtime >= cutoff:
            with contextlib.suppress(FileExistsError):  # published yet again: the same bytes
                os.link(doomed, path)
            doomed.unlink()
            return False
        doomed.unlink()
        return True

    def quarantine(self, sha256: str, reason: str) -> None:
        path = self.path_for(sha256)
        folder = self.root.parent / "quarantine"
        folder.mkdir(mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            os.replace(path, folder / f"{sha256}.{stamp}")
        except FileNotFoundError:
            return
        (folder / f"{sha256}.{stamp}.reason").write_text(reason + "\n")

    def recover_deletes(self) -> int:
        recovered = 0
        for doomed in self.tmp_dir.glob("gc-*"):
            parts = doomed.name.split("-")
            if len(parts) != 4 or not is_sha256(parts[1]) or not parts[2].isdigit():
                continue
            if int(parts[2]) != os.getpid() and alive(int(parts[2])):
                continue  # another process is in the middle of it
            path = self.path_for(parts[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # garbage put back is collected again; a live blob is never lost
                os.link(doomed, path)
            doomed.unlink(missing_ok=True)
            recovered += 1
        return recovered

