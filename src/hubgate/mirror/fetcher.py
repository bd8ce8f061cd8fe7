"""Fetch each upstream file once, stream it to every waiting client while it arrives, and
publish it to the blob store (local files or S3) only after its hash checks out.

No answer completes with bytes that were not verified: the last bytes of every answer (a whole
file or any range of it, tailed from the download or fetched straight from upstream) are held
back until the whole file verifies, and a range fetched straight from upstream is compared with
the verified file before its last bytes go out. When bytes turn out bad after some were sent,
the file is marked (`MirrorCache.remember_served_bad`): from then on a Range request past its
first byte is answered with the whole file, so a client never appends good bytes to a bad prefix.

One download per file across all worker processes of a machine: the downloader holds an
exclusive `flock` on `tmp/fetch-<oid>.lock` and appends to `tmp/fetch-<oid>.part` (a scratch
buffer, safe to lose); readers (in any process) tail the part file. A download that breaks
resumes with a Range request, on the same or the next upstream when it serves the same hash.
Across replicas, a lease in the database adds to the lock (see shared.py). The verified part
file is published through the blob store's `adopt` (a rename locally, a conditional upload on S3).

The download is a pipeline, so the network never waits for the disk: the thread reading the
upstream response hashes each piece and hands it to a writer thread (partwriter.py), which
appends it to the part file and wakes the readers of this process (others poll).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from cachetools import LRUCache
from starlette.concurrency import iterate_in_threadpool

from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.git.blobid import blob_hasher
from hubgate.mirror.cache import MirrorCache
from hubgate.mirror.leases import Holder, Leases, file_lease
from hubgate.mirror.partwriter import PartWriter
from hubgate.mirror.transfer import CHUNK, Diverged, Progress, Resent, Started, hash_existing
from hubgate.mirror.upstream import Upstream, UpstreamError, UpstreamMissing, Upstreams, raise_for_missing
from hubgate.mirror.waiters import Waiters
from hubgate.repos.base import threaded
from hubgate.storage.blobs import BlobStore

log = logging.getLogger("hubgate.mirror")

ATTEMPTS_PER_UPSTREAM = 3
READER_POLL_MAX = 0.02  # seconds between checks of a part file written by another process


class TransferFailed(Exception):
    """The upstream transfer failed or the bytes did not verify: the client's answer must break."""


@dataclass(frozen=True)
class FileSource:
    """One upstream file: its identity (sha256 for LFS, git blob sha1 otherwise) and location."""

    oid: str
    size: int
    lfs: bool
    url_path: str  # "/{prefix}{repo}/resolve/{commit}/{quoted path}" on any upstream

    def hashers(self) -> tuple[hashlib._Hash, hashlib._Hash | None]:
        sha1 = None if self.lfs else blob_hasher(self.size)
        return hashlib.sha256(), sha1


TokenFor = Callable[[Upstream], "str | None"]


SHA256_OF_KEPT = 65536  # git blob ids whose sha256 a process remembers (~200 bytes each)


class Fetcher:
    def __init__(self, blobs: BlobStore, cache: MirrorCache, upstreams: Upstreams, tmp_dir: Path,
                 crash: CrashPoints = NO_CRASH) -> None:
        self.blobs = blobs
        self.crash = crash
        self.cache = cache
        self.upstreams = upstreams
        self.tmp_dir = tmp_dir  # part files: scratch space, safe to lose
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.on_published: Callable[[int], object] | None = None
        self._waiters = Waiters()
        self.leases: Leases | None = None  # replicas on S3: one lease per file across all of them
        self._started: dict[str, Started] = {}  # downloads started by this process, until they end
        self._started_lock = threading.Lock()
        # A regular file's git blob id names its bytes, hence their sha256, for good: asked of the
        # database once per process (a warm hit then costs no transaction for it).
        self._sha256_of: LRUCache[str, str] = LRUCache(SHA256_OF_KEPT)
        self._sha256_lock = threading.Lock()

    # -- cache lookups ---------------------------------------------------------------------
    def cached(self, src: FileSource) -> str | None:
        """The sha256 of the file's verified copy in the blob store, or None if it is not there."""
        if src.lfs:
            sha256: str | None = src.oid
        else:
            with self._sha256_lock:
                sha256 = self._sha256_of.get(src.oid)
            if sha256 is None:
                known = self.cache.file(src.oid)
                sha256 = known[0] if known else None
                if sha256 is not None:
                    with self._sha256_lock:
                        self._sha256_of[src.oid] = sha256
        return sha256 if sha256 is not None and self.blobs.exists(sha256) else None

    def _paths(self, src: FileSource) -> tuple[Path, Path]:
        return self.tmp_dir / f"fetch-{src.oid}.lock", self.tmp_dir / f"fetch-{src.oid}.part"

    def _verified_mark(self, src: FileSource) -> Path:
        """Names the part file (device:inode) whose bytes verified and were published last: an
        answer tailing a part file completes only if it names that very file, whatever the store."""
        return self.tmp_dir / f"fetch-{src.oid}.ok"

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
    def begin(self, src: FileSource, token_for: TokenFor) -> Started | None:
        """As `start`, but None for a download another replica's process does."""
        started = self.start(src, token_for)
        return started if isinstance(started, Started) else None

    def start(self, src: FileSource, token_for: TokenFor, steal_from: str | None = None) -> Started | Holder | None:
        """Make sure the file is being fetched (here or elsewhere). Returns how the download in this
        process is faring, None if the file is cached or another process here fetches it, or the
        lease of another replica's process that fetches it (replicas only; `steal_from` takes over
        that process's lease, for one found unreachable)."""
        if self.cached(src) is not None:
            return None
        lock_path, part = self._paths(src)
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        handed_over = False  # to the download thread, which closes it (and so releases the lock)
        try:
            for attempt in range(4):  # a reader's shared-lock probe (see `downloading`) lasts microseconds
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 3:  # another thread or process is downloading it: a single-flight wait
                        self.cache.count("singleflight_waits")
                        with self._started_lock:
                            return self._started.get(src.oid)
                    time.sleep(0.002)
            if self.cached(src) is not None:
                return None
            part.touch(exist_ok=True)  # before the lease: where this replica's readers look once it is taken
            if self.leases is not None:
                taken = self.leases.acquire(file_lease(src.oid), steal_from)
                if isinstance(taken, Holder):
                    return taken
                if taken.took_over:  # what that holder sent its clients never verified: no resume builds on it
                    self.cache.remember_served_bad(src.oid)
            started = Started()
            with self._started_lock:
                self._started[src.oid] = started
            try:
                threading.Thread(target=self._download, args=(src, token_for, fd, None, started), daemon=True,
                                 name=f"fetch-{src.oid[:12]}").start()
            except BaseException:
                with self._started_lock:
                    del self._started[src.oid]
                if self.leases is not None:
                    self.leases.release(file_lease(src.oid))
                raise
            handed_over = True
            return started
        finally:
            if not handed_over:  # a locked fd left open would block this file for the process's life
                os.close(fd)

    def fetch_now(self, src: FileSource, token_for: TokenFor, progress: Callable[[int], None] | None = None) -> str:
        """Fetch in the calling thread (for `hubgate mirror pull`); waits if another process is at it.
        Returns the sha256 of the stored copy."""
        while True:
            cached = self.cached(src)
            if cached is not None:
                return cached
            lock_path, part = self._paths(src)
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while someone else downloads
                cached = self.cached(src)
                if cached is None:
                    part.touch(exist_ok=True)
            except BaseException:
                os.close(fd)
                raise
            if cached is not None:
                os.close(fd)
                continue
            if not self._download(src, token_for, fd, progress):  # closes fd
                raise TransferFailed(f"could not fetch {src.url_path}")

    # -- the download itself ---------------------------------------------------------------
    def _download(self, src: FileSource, token_for: TokenFor, lock_fd: int, progress: Callable[[int], None] | None = None,
                  started: Started | None = None) -> bool:
        _, part = self._paths(src)
        started = started or Started()
        try:
            return self._download_locked(src, token_for, part, progress, started)
        except Exception:  # noqa: BLE001 - a background thread must never die silently
            log.exception("fetch of %s failed", src.url_path)
            return False
        finally:
            started.fail(UpstreamError("all", f"no upstream sent {src.url_path}"))  # no-op once answered
            with self._started_lock:
                if self._started.get(src.oid) is started:
                    del self._started[src.oid]
            if self.leases is not None:
                self.leases.release(file_lease(src.oid))
            os.close(lock_fd)  # releases the flock: readers see the end of the attempt
            self._waiters.wake(src.oid)  # published or failed: readers here need not wait for a poll

    def _download_locked(self, src: FileSource, token_for: TokenFor, part: Path, progress: Callable[[int], None] | None,
                         started: Started) -> bool:
        self._verified_mark(src).unlink(missing_ok=True)  # names an earlier part file, maybe of this inode number
        with part.open("r+b", buffering=0) as out:
            state = Progress(src.hashers)
            # Bytes a previous attempt (maybe a killed process) left on disk: if the file does not
            # verify, they may be what is wrong, and no upstream is blamed for them.
            from_disk = hash_existing(out, src.size, state)
            used: Upstream | None = None
            refused: UpstreamError | UpstreamMissing | None = None
            for upstream in self.upstreams.all:
                if self.cache.is_missing(f"bad:{upstream.name}:{src.oid}"):
                    continue
                for _attempt in range(ATTEMPTS_PER_UPSTREAM):
                    if os.fstat(out.fileno()).st_size != state.offset:  # a failed write: hash what is on disk
                        state.restart()
                        hash_existing(out, src.size, state)
                    if state.offset >= src.size:
                        break
                    self.cache.count("upstream_fetches")  # one request for (the rest of) the file
                    try:
                        self._pull(upstream, src, token_for(upstream), out, state, progress, started)
                    except Diverged as exc:
                        # Readers may hold bytes of either version: neither may complete a file.
                        log.error("integrity error: %s from upstream %s: %s; discarded", src.url_path, upstream.name, exc)
                        self.cache.count("integrity_errors")
                        self.cache.remember_served_bad(src.oid)
                        out.truncate(0)
                        part.unlink(missing_ok=True)
                        return False
                    except (UpstreamError, UpstreamMissing, httpx.HTTPError, OSError) as exc:
                        log.warning("fetch of %s from %s broke at byte %d: %s", src.url_path, upstream.name, state.offset, exc)
                        self.cache.count("upstream_failures")
                        if isinstance(exc, UpstreamMissing) or (isinstance(exc, UpstreamError) and exc.status):
                            refused = refused or exc
                            break  # this upstream won't serve it: next one
                    finally:
                        if state.offset > 0:
                            used = upstream
                if state.offset >= src.size:
                    break
            written = os.fstat(out.fileno())
            if state.offset < src.size or written.st_size != src.size:
                if refused is not None:
                    started.fail(refused)
                return False
        # No upstream was needed for an empty file, or for a part file a crash left complete.
        source = used.name if used is not None else "part-file"
        digest = state.sha256.hexdigest()
        actual = state.sha1.hexdigest() if state.sha1 else digest
        if actual != src.oid:
            log.error("integrity error: %s from upstream %s hashed to %s, expected %s; discarded",
                      src.url_path, source, actual, src.oid)
            if used is not None and from_disk == 0:  # every byte came from it in this transfer
                self.cache.remember_missing(f"bad:{used.name}:{src.oid}", 3600)
            elif from_disk:
                log.warning("%s: the %d bytes found on disk may be damaged; part file discarded, upstream not blamed",
                            src.url_path, from_disk)
            self.cache.count("integrity_errors")
            self.cache.remember_served_bad(src.oid)
            part.unlink(missing_ok=True)
            return False
        self.crash.hit("mirror-verified")
        _write_atomically(self._verified_mark(src), f"{written.st_dev}:{written.st_ino}")
        with part.open("rb") as verified:
            self.blobs.publish(verified, digest)
        part.unlink()  # now a name of the published blob on a local store: never to be written again
        self.crash.hit("mirror-published")
        self.cache.remember_file(src.oid, digest, src.size, source)
        started.ok()
        self.cache.count("upstream_bytes", src.size)
        if self.on_published:
            self.on_published(src.size)
        return True

    def _pull(self, upstream: Upstream, src: FileSource, token: str | None, out: BinaryIO, state: Progress,
              progress: Callable[[int], None] | None, started: Started) -> None:
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
            # An upstream that ignores Range resends the whole file: the bytes we have must come first.
            resent = Resent(state) if state.offset and response.status_code != 206 else None
            started.ok()
            if self.leases is not None:  # replicas waiting for the first answer may stream now
                self.leases.mark_streaming(file_lease(src.oid))
            # The pieces as the connection delivers them (no re-chunking copy); hashed here while
            # the writer thread writes the previous ones. Leaving the block drains the writer, so
            # the part file then holds every byte hashed, unless a write failed (then it raises).
            with PartWriter(out.fileno(), state.offset, lambda: self._waiters.wake(src.oid)) as writer:
                for chunk in response.iter_raw():
                    if resent is not None:
                        chunk = resent.skip(chunk)
                        if resent.done:
                            resent = None
                    if state.offset + len(chunk) > src.size:
                        raise UpstreamError(upstream.name, "sent more bytes than the file has")
                    state.add(chunk)
                    writer.put(chunk)
                    if progress:
                        progress(len(chunk))

    def available(self, src: FileSource) -> int:
        """How many bytes of the file are on disk here (all of it once cached)."""
        if self.cached(src) is not None:
            return src.size
        try:
            return self._paths(src)[1].stat().st_size
        except FileNotFoundError:
            return 0

    async def read_direct(self, src: FileSource, start: int, end: int, token_for: TokenFor) -> AsyncGenerator[bytes, None]:
        """A range straight from upstream, for a cold file whose download has not got there yet.

        Its first bytes go out at once; the last `CHUNK` wait until the whole file (fetched by the
        shared download) verifies, and go out only if the range matches the verified file.
        """
        _, part = self._paths(src)
        try:  # the download under way: its bytes, verified, must be what this range is compared with
            running: os.stat_result | None = os.stat(part)
        except FileNotFoundError:
            running = None
        response = await asyncio.to_thread(self._open_direct, src, start, end, token_for)
        if response is None:  # the upstream ignores Range: tail the shared download instead
            async for chunk in self.read(src, start, end, token_for):
                yield chunk
            return
        hasher, held, sent = hashlib.sha256(), bytearray(), 0
        async for chunk in iterate_in_threadpool(_pieces(response)):
            hasher.update(chunk)
            held += chunk
            if len(held) > CHUNK:
                out = bytes(held[:-CHUNK])
                del held[:-CHUNK]
                sent += len(out)
                yield out
        try:
            if running is not None:
                # A file published by a later download (after this one failed, say on the next
                # upstream) may differ from what an earlier answer of this client holds: fail.
                await self._wait_published_as(src, running)
            else:
                await self._wait_verified(src)
        except TransferFailed:
            if sent:  # bytes that may never be checked went out: no resume may build on them
                self.cache.remember_served_bad(src.oid)
            raise
        if sent + len(held) != end + 1 - start or await asyncio.to_thread(self._range_digest, src, start, end) != hasher.digest():
            log.error("integrity error: a range of %s from upstream differs from the verified file", src.url_path)
            self.cache.count("integrity_errors")
            self.cache.remember_served_bad(src.oid)
            raise TransferFailed(f"a range of {src.url_path} did not verify")
        yield bytes(held)

    def _open_direct(self, src: FileSource, start: int, end: int, token_for: TokenFor) -> httpx.Response | None:
        """The first upstream's 206 answer to the range; None if it ignores Range (answers 200)."""
        def attempt(upstream: Upstream) -> httpx.Response | None:
            headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{end}"}
            response = upstream.request("GET", src.url_path, token=token_for(upstream), headers=headers, stream=True)
            if response.status_code >= 400:
                raise_for_missing(upstream, response)
            if response.status_code != 206:
                response.close()
                return None
            return response

        try:
            return self.upstreams.first(attempt)[0]
        except (UpstreamError, UpstreamMissing) as exc:
            raise TransferFailed(str(exc)) from exc

    def _range_digest(self, src: FileSource, start: int, end: int) -> bytes:
        sha256 = self.cached(src)
        if sha256 is None:
            raise TransferFailed(f"{src.url_path} is not cached")
        hasher = hashlib.sha256()
        try:
            for chunk in self.blobs.read(sha256, start, end):
                hasher.update(chunk)
        except FileNotFoundError:
            raise TransferFailed(f"{src.url_path} is not cached") from None
        return hasher.digest()

    # -- reading while it arrives ----------------------------------------------------------
    def read(self, src: FileSource, start: int, end: int, token_for: TokenFor) -> AsyncGenerator[bytes, None]:
        """Bytes start..end (inclusive) of a file being fetched; raises TransferFailed on failure."""
        return self.tail_local(src, start, end)

    async def tail_local(self, src: FileSource, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Bytes start..end of a file a process of this machine fetches (or that is stored)."""
        sha256 = await asyncio.to_thread(self.cached, src)  # on S3, a request: not on the event loop
        _, part = self._paths(src)
        try:
            if sha256 is not None:
                raise FileNotFoundError(part)  # read from the store
            fd = os.open(part, os.O_RDONLY)
        except FileNotFoundError:
            # Just published: the downloader records the file before it lets go of its lock.
            delay = 0.001
            while (sha256 := await asyncio.to_thread(self.cached, src)) is None:
                if not self.downloading(src):  # ended: it may have published since the look above
                    sha256 = await asyncio.to_thread(self.cached, src)
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, READER_POLL_MAX)
            if sha256 is None:
                raise TransferFailed(f"{src.url_path} is not being fetched") from None
            async for chunk in self._read_stored(src, sha256, start, end):
                yield chunk
            return
        verified = False
        try:
            opened = os.fstat(fd)
            pos, delay = start, 0.001
            while pos <= end:
                want = min(CHUNK, end + 1 - pos)
                if not verified and pos + want > end:
                    verified = await self._wait_published_as(src, opened)  # hold the last bytes back until verified
                chunk = os.pread(fd, want, pos)
                if chunk:
                    pos += len(chunk)
                    delay = 0.001
                    yield chunk
                    continue
                if not self.downloading(src) and await asyncio.to_thread(self.cached, src) is None:
                    raise TransferFailed(f"upstream transfer of {src.url_path} failed")
                # Woken as soon as the writer here appends; the timeout covers other processes.
                await self._waiters.wait(src.oid, delay, lambda: os.fstat(fd).st_size > pos)  # noqa: B023 (called before pos changes)
                delay = min(delay * 2, READER_POLL_MAX)
        finally:
            os.close(fd)

    async def _read_stored(self, src: FileSource, sha256: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in threaded(lambda first, last: self.blobs.read(sha256, first, last))(start, end):
                yield chunk
        except FileNotFoundError:  # evicted meanwhile: this answer breaks, the next one fetches it again
            raise TransferFailed(f"{src.url_path} is no longer cached") from None

    async def _wait_verified(self, src: FileSource) -> str:
        """The verified file's sha256, once the download publishes it; TransferFailed if none does."""
        delay = 0.001
        while (sha256 := await asyncio.to_thread(self.cached, src)) is None:
            if not self.downloading(src):
                if (sha256 := await asyncio.to_thread(self.cached, src)) is not None:
                    break
                raise TransferFailed(f"{src.url_path} did not verify")
            await self._waiters.wait(src.oid, delay, lambda: self.cached(src) is not None)
            delay = min(delay * 2, READER_POLL_MAX)
        return sha256

    async def _wait_published_as(self, src: FileSource, opened: os.stat_result) -> bool:
        """Wait until the part file an answer reads (`opened`) is published as the verified file.

        A file published by a later download (after this one failed, say on the next upstream) does
        not vouch for the bytes already sent from the discarded part file: that answer fails.
        """
        await self._wait_verified(src)
        try:
            mark = self._verified_mark(src).read_text()
        except FileNotFoundError:
            mark = ""
        if mark != f"{opened.st_dev}:{opened.st_ino}":
            raise TransferFailed(f"{src.url_path}: the bytes sent came from a transfer that did not verify")
        return True


def _write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    scratch.write_text(text)
    os.replace(scratch, path)


def _pieces(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_raw(CHUNK)
    except httpx.HTTPError as exc:
        raise TransferFailed(str(exc)) from exc
    finally:
        response.close()
