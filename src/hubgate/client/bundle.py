"""Air-gapped bundles: a tar of the lock and exactly the locked files, each stored once by SHA-256.

    hubgate.lock
    blobs/<sha256>

Export reads a pulled copy and checks every file's hash as it packs it. Import unpacks into a
staging folder and checks everything first: a bundle that does not match its lock (a changed,
missing or unexpected file) is refused and nothing is changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from hubgate.client.layout import Target
from hubgate.client.lockfile import Lock, LockError, dumps, read_lock
from hubgate.errors import BadRequest

LOCK_NAME = "hubgate.lock"
READ_SIZE = 1024 * 1024
MAX_LOCK_SIZE = 64 * 1024 * 1024


class BundleError(BadRequest):
    pass


class _Hashing:
    """A file object that hashes what tarfile reads from it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.digest.update(data)
        return data


def export(lock: Lock, where: Target, output: Path) -> tuple[int, int]:
    """Write the bundle (atomically); returns (files, bytes). Fails on any missing or changed file."""
    sources: dict[str, Path] = {}
    for repo, f in lock.all_files():
        path = where.location(repo, f)
        if not path.is_file() or path.stat().st_size != f.size:
            raise BundleError(f"{repo.ref.repo_id}@{repo.commit[:12]} {f.path}: not pulled at {path} (run `hubgate pull` first)")
        sources.setdefault(f.sha256, path)
    size = {f.sha256: f.size for _, f in lock.all_files()}
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            data = dumps(lock).encode()
            info = tarfile.TarInfo(LOCK_NAME)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for sha256, path in sorted(sources.items()):
                info = tarfile.TarInfo(f"blobs/{sha256}")
                info.size = size[sha256]
                with path.open("rb") as handle:
                    reader = _Hashing(handle)
                    tar.addfile(info, reader)
                if reader.digest.hexdigest() != sha256:
                    raise BundleError(f"{path} does not match its locked sha256 {sha256} (run `hubgate verify`)")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return len(sources), sum(size.values())


@contextmanager
def unpacked(bundle: Path, staging_parent: Path) -> Iterator[tuple[Lock, dict[str, Path]]]:
    """The bundle's lock and its files, each verified, in a staging folder removed afterwards."""
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".hubgate-import-", dir=staging_parent))
    try:
        yield _unpack(bundle, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(bundle: Path, staging: Path) -> tuple[Lock, dict[str, Path]]:
    try:
        with tarfile.open(bundle, "r|*") as tar:
            lock, files = _members(bundle, tar, staging)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"{bundle}: not a readable bundle: {exc}; nothing was imported") from exc
    missing = sorted({f.path for _, f in lock.all_files() if f.sha256 not in files})
    if missing:
        raise BundleError(f"{bundle}: locked files missing from the bundle: {', '.join(missing[:5])}; nothing was imported")
    return lock, files


def _members(bundle: Path, tar: tarfile.TarFile, staging: Path) -> tuple[Lock, dict[str, Path]]:
    lock: Lock | None = None
    files: dict[str, Path] = {}
    expected: dict[str, int] = {}
    for member in tar:
        source = tar.extractfile(member) if member.isfile() else None
        if source is None:
            raise BundleError(f"{bundle}: unexpected entry {member.name!r}; nothing was imported")
        if member.name == LOCK_NAME and lock is None:
            if member.size > MAX_LOCK_SIZE:
                raise BundleError(f"{bundle}: its {LOCK_NAME} is larger than {MAX_LOCK_SIZE} bytes")
            (staging / LOCK_NAME).write_bytes(source.read())
            try:
                lock = read_lock(staging / LOCK_NAME)
            except LockError as exc:
                raise BundleError(f"{bundle}: its lock is unusable: {exc.message}") from exc
            expected = {f.sha256: f.size for _, f in lock.all_files()}
            continue
        name = member.name.removeprefix("blobs/")
        if lock is None or member.name != f"blobs/{name}" or name not in expected or name in files:
            raise BundleError(f"{bundle}: unexpected entry {member.name!r}; nothing was imported")
        digest = hashlib.sha256()
        with (staging / name).open("wb") as out:
            while data := source.read(READ_SIZE):
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != name or member.size != expected[name]:
            raise BundleError(f"{bundle}: {member.name} does not match its hash (got {digest.hexdigest()}); nothing was imported")
        files[name] = staging / name
    if lock is None:
        raise BundleError(f"{bundle}: no {LOCK_NAME} inside")
    return lock, files


def install(lock: Lock, files: dict[str, Path], where: Target) -> int:
    """Place verified files at their locations (a link, else a copy), then make them visible."""
    placed = 0
    for repo, f in lock.all_files():
        final = where.final(repo, f)
        if not (final.is_file() and final.stat().st_size == f.size):
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = where.part(repo, f)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            try:
                os.link(files[f.sha256], tmp)
            except OSError:
                shutil.copyfile(files[f.sha256], tmp)
            os.replace(tmp, final)
            placed += 1
        where.link(repo, f)
    for repo in lock.repos:
        where.finish(repo)
    return placed
