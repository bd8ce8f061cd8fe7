"""Content-addressed blob storage, keyed by SHA256.

Writers stream into a temporary file, hash on the way, and publish with an atomic rename only
when the digest (and size, when known) match: a crash or a bad upload never leaves a partial
blob visible.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.errors import BadRequest


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> str: ...
    def abort(self) -> None: ...
    @property
    def size(self) -> int: ...


class BlobStore(Protocol):
    """What the rest of hubgate needs from blob storage."""

    def exists(self, sha256: str) -> bool: ...
    def size(self, sha256: str) -> int | None: ...
    def local_path(self, sha256: str) -> Path | None:
        """A path on this machine to serve the blob from, or None if it is not stored here."""
    def open(self, sha256: str) -> BinaryIO: ...
    def writer(self) -> BlobWriter: ...
    def delete(self, sha256: str) -> None: ...
    def remove_partial_writes(self) -> int: ...
    def adopt(self, path: Path, sha256: str) -> Path: ...


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class LocalBlobWriter:
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> str:
        digest = self._hash.hexdigest()
        try:
            if expected_size is not None and expected_size != self._size:
                raise BadRequest(f"Size mismatch: expected {expected_size} bytes, received {self._size}")
            if expected_sha256 is not None and expected_sha256 != digest:
                raise BadRequest(f"Hash mismatch: expected sha256 {expected_sha256}, received {digest}")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            final = self._store.path_for(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            self._store.crash.hit("blob-written")
            os.replace(self._path, final)
            self._done = True
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

    def __init__(self, root: Path, tmp_dir: Path, crash: CrashPoints = NO_CRASH) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.crash = crash
        root.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise BadRequest(f"Not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def local_path(self, sha256: str) -> Path | None:
        path = self.path_for(sha256)
        return path if path.is_file() else None

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def writer(self) -> LocalBlobWriter:
        return LocalBlobWriter(self)

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def remove_partial_writes(self) -> int:
        """Delete temporary files left by writers that died (call only when no writer runs)."""
        removed = 0
        for leftover in self.tmp_dir.glob("blob-*"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def adopt(self, path: Path, sha256: str) -> Path:
        """Publish a file already verified to hash to `sha256` (it must be under `tmp_dir`)."""
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(path, final)
        return final
