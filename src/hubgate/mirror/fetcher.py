"""Fetch each upstream file once, stream it to every waiting client while it arrives, and
publish it to the cache only after its hash checks out.

One download per file across all worker processes: the downloader holds an exclusive `flock`
on `tmp/fetch-<oid>.lock` and appends to `tmp/fetch-<oid>.part`; readers (in any process) tail
the part file. The last bytes of a whole-file answer are held back until the file is verified,
so a corrupted transfer is never delivered as a complete success. A download that breaks
resumes with a Range request, on the same or the next upstream when it serves the same hash.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from starlette.concurrency import iterate_in_threadpool

from hubgate.mirror.cache import MirrorCache
from hubgate.mirror.upstream import Upstream, UpstreamError, UpstreamMissing, Upstreams, raise_for_missing
from hubgate.storage.blobs import LocalBlobStore

log = logging.getLogger("hubgate.mirror")

CHUNK = 1024 * 1024
ATTEMPTS_PER_UPSTREAM = 3


class TransferFailed(Exception):
    """The upstream transfer failed or the bytes did not verify: the client's answer must break."""


@dataclass(frozen=True)
class FileSource:
    """One upstream file: its identity (sha256 for LFS, git blob sha1 otherwise) and location."""

    oid: str
    size: int
    lfs: bool
    url_path: str  # "/{prefix}{repo}/resolve/{commit}/{quoted path}" on any upstream

    def hashers(self) -> tuple["hashlib._Hash", "hashlib._Hash | None"]:
        sha1 = None if self.lfs else hashlib.sha1(b"blob %d\0" % self.size)
        return hashlib.sha256(), sha1


TokenFor = Callable[[Upstream], "str | None"]


class Fetcher:
    def __init__(self, blobs: LocalBlobStore, cache: MirrorCache, upstreams: Upstreams, tmp_dir: Path) -> None:
        self.blobs = blobs
        self.cache = cache
        self.upstreams = upstreams
        self.tmp_dir = tmp_dir
        self.on_published: Callable[[int], None] | None = None

    # -- cache lookups ---------------------------------------------------------------------
    def cached_path(self, src: FileSource) -> Path | None:
        if src.lfs:
            return self.blobs.local_path(src.oid)
        known = self.cache.file(src.oid)
        return self.blobs.local_path(known[0]) if known else None

    def _paths(self, src: FileSource) -> tuple[Path, Path]:
        return self.tmp_dir / f"fetch-{src.oid}.lock", self.tmp_dir / f"fetch-{src.oid}.part"

    def downloading(self, src: FileSource) -> bool:
        lock_path, _ = self._paths(src)
        try:
            fd = os.open(lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # -- starting a download ---------------------------------------------------------------
    def start(self, src: FileSource, token_for: TokenFor) -> bool:
        """Make sure the file is being fetched (here or elsewhere); False if already cached."""
        if self.cached_path(src) is not None:
            return False
        lock_path, part = self._paths(src)
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return True  # another thread or process is downloading it
        if self.cached_path(src) is not None:
            os.close(fd)
            return False
        part.touch(exist_ok=True)
        threading.Thread(target=self._download, args=(src, token_for, fd), daemon=True, name=f"fetch-{src.oid[:12]}").start()
        return True

    def fetch_now(self, src: FileSource, token_for: TokenFor, progress: Callable[[int], None] | None = None) -> Path:
        """Fetch in the calling thread (for `hubgate mirror pull`); waits if another process is at it."""
        while True:
            cached = self.cached_path(src)
            if cached is not None:
                return cached
            lock_path, part = self._paths(src)
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while someone else downloads
            if self.cached_path(src) is not None:
                os.close(fd)
                continue
            part.touch(exist_ok=True)
            if not self._download(src, token_for, fd, progress):
                raise TransferFailed(f"could not fetch {src.url_path}")

    # -- the download itself ---------------------------------------------------------------
    def _download(self, src: FileSource, token_for: TokenFor, lock_fd: int, progress: Callable[[int], None] | None = None) -> bool:
        _, part = self._paths(src)
        try:
            return self._download_locked(src, token_for, part, progress)
        except Exception:  # noqa: BLE001 - a background thread must never die silently
            log.exception("fetch of %s failed", src.url_path)
            return False
        finally:
            os.close(lock_fd)  # releases the flock: readers see the end of the attempt

    def _download_locked(self, src: FileSource, token_for: TokenFor, part: Path, progress: Callable[[int], None] | None) -> bool:
        with part.open("r+b") as out:
            state = _Progress(src)
            _hash_existing(out, src.size, state)
            used: Upstream | None = None
            for upstream in self.upstreams.all:
                if self.cache.is_missing(f"bad:{upstream.name}:{src.oid}"):
                    continue
                for _attempt in range(ATTEMPTS_PER_UPSTREAM):
                    if state.offset >= src.size:
                        break
                    try:
                        self._pull(upstream, src, token_for(upstream), out, state, progress)
                    except _Restart:
                        out.seek(0)
                        out.truncate()
                        state.restart()
                        continue
                    except (UpstreamError, UpstreamMissing, httpx.HTTPError, OSError) as exc:
                        log.warning("fetch of %s from %s broke at byte %d: %s", src.url_path, upstream.name, state.offset, exc)
                        if isinstance(exc, UpstreamMissing) or (isinstance(exc, UpstreamError) and exc.status):
                            break  # this upstream won't serve it: next one
                    finally:
                        if state.offset > 0:
                            used = upstream
                if state.offset >= src.size:
                    break
            if state.offset < src.size or used is None:
                return False
            out.flush()
        digest = state.sha256.hexdigest()
        actual = state.sha1.hexdigest() if state.sha1 else digest
        if actual != src.oid:
            log.error("integrity error: %s from upstream %s hashed to %s, expected %s; discarded",
                      src.url_path, used.name, actual, src.oid)
            self.cache.remember_missing(f"bad:{used.name}:{src.oid}", 3600)
            self.cache.count("integrity_errors")
            part.unlink(missing_ok=True)
            return False
        self.blobs.adopt(part, digest)
        self.cache.remember_file(src.oid, digest, src.size, used.name)
        self.cache.count("upstream_bytes", src.size)
        if self.on_published:
            self.on_published(src.size)
        return True

    def _pull(self, upstream: Upstream, src: FileSource, token: str | None, out: BinaryIO, state: "_Progress",
              progress: Callable[[int], None] | None) -> None:
        """Append what `upstream` sends from `state.offset` on; `state` keeps up even if it breaks."""
        headers = {"Accept-Encoding": "identity"}
        if state.offset:
            headers["Range"] = f"bytes={state.offset}-"
        with self.upstreams.stream(upstream, src.url_path, token, headers) as response:
            if response.status_code >= 400:
                raise_for_missing(upstream, response)
            etag = (response.headers.get("x-linked-etag") or response.headers.get("etag") or "").removeprefix("W/").strip('"')
            if etag and len(etag) in (40, 64) and etag != src.oid and src.lfs == (len(etag) == 64):
                raise UpstreamMissing(upstream.name, 409, None, f"serves another version of the file (etag {etag})")
            if state.offset and response.status_code != 206:
                raise _Restart()
            out.seek(state.offset)
            for chunk in response.iter_raw(CHUNK):
                if state.offset + len(chunk) > src.size:
                    raise UpstreamError(upstream.name, "sent more bytes than the file has")
                out.write(chunk)
                out.flush()
                state.add(chunk)
                if progress:
                    progress(len(chunk))

    def available(self, src: FileSource) -> int:
        """How many bytes of the file are on disk here (all of it once cached)."""
        if self.cached_path(src) is not None:
            return src.size
        try:
            return self._paths(src)[1].stat().st_size
        except FileNotFoundError:
            return 0

    async def read_direct(self, src: FileSource, start: int, end: int, token_for: TokenFor) -> AsyncIterator[bytes]:
        """A range straight from upstream, for a cold file whose download has not got there yet."""
        def pieces() -> Iterator[bytes]:
            def attempt(upstream: Upstream) -> tuple[Upstream, "httpx.Response"]:
                headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{end}"}
                response = upstream.request("GET", src.url_path, token=token_for(upstream), headers=headers, stream=True)
                if response.status_code >= 400:
                    raise_for_missing(upstream, response)
                if response.status_code != 206:
                    response.close()
                    raise UpstreamError(upstream.name, "ignored the Range header")
                return upstream, response

            try:
                (_, response), _ = self.upstreams.first(attempt)
            except (UpstreamError, UpstreamMissing) as exc:
                raise TransferFailed(str(exc)) from exc
            try:
                yield from response.iter_raw(CHUNK)
            finally:
                response.close()

        async for chunk in iterate_in_threadpool(pieces()):
            yield chunk

    # -- reading while it arrives ----------------------------------------------------------
    async def read(self, src: FileSource, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive) of a file being fetched; raises TransferFailed on failure."""
        path = self.cached_path(src)
        _, part = self._paths(src)
        try:
            fd = os.open(path or part, os.O_RDONLY)
        except FileNotFoundError:
            path = self.cached_path(src)
            if path is None:
                raise TransferFailed(f"{src.url_path} is not being fetched") from None
            fd = os.open(path, os.O_RDONLY)
        verified = path is not None
        try:
            pos, delay = start, 0.001
            while pos <= end:
                want = min(CHUNK, end + 1 - pos)
                if not verified and end == src.size - 1 and pos + want > end:
                    verified = await self._wait_verified(src)  # hold the last bytes back until verified
                chunk = os.pread(fd, want, pos)
                if chunk:
                    pos += len(chunk)
                    delay = 0.001
                    yield chunk
                    continue
                if not self.downloading(src) and self.cached_path(src) is None:
                    raise TransferFailed(f"upstream transfer of {src.url_path} failed")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)
        finally:
            os.close(fd)

    async def _wait_verified(self, src: FileSource) -> bool:
        delay = 0.001
        while self.cached_path(src) is None:
            if not self.downloading(src):
                if self.cached_path(src) is not None:
                    break
                raise TransferFailed(f"{src.url_path} did not verify")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        return True


class _Progress:
    """How far a download got, and the running hashes of the bytes so far."""

    def __init__(self, src: FileSource) -> None:
        self.src = src
        self.restart()

    def restart(self) -> None:
        self.offset = 0
        self.sha256, self.sha1 = self.src.hashers()

    def add(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)
        self.offset += len(chunk)


class _Restart(Exception):
    """The upstream ignored our Range: start the file over."""


def _hash_existing(out: BinaryIO, size: int, state: "_Progress") -> int:
    """Feed the bytes a previous attempt left in the part file to the hashers; returns the offset."""
    out.seek(0, os.SEEK_END)
    have = out.tell()
    if have > size:
        out.seek(0)
        out.truncate()
        return 0
    out.seek(0)
    remaining = have
    while remaining:
        chunk = out.read(min(CHUNK, remaining))
        if not chunk:
            break
        state.add(chunk)
        remaining -= len(chunk)
    return state.offset
