"""One upstream fetch per file across replicas that share the database and the bucket.

A replica's process that finds a file neither stored nor being fetched takes the file's lease
(leases.py) and fetches it as a lone server does (fetcher.py: a part file, verified, then
published to the store). A client on another replica gets the bytes as they arrive, tailed from
the holder over its internal route (replicas.py); its last bytes come only once the holder
published the verified file. When the holder cannot send them (killed, unreachable), an answer
that has sent nothing yet goes on from whoever fetches next, here if nobody else: it takes the
lease over (unreachable holder) or waits for it to expire. An answer that has sent bytes fails:
they came from a transfer nobody will verify now, and the process that took over marks the file
so no Range resume builds on them (`MirrorCache.remember_served_bad`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Literal

from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.mirror.cache import MirrorCache
from hubgate.mirror.fetcher import Fetcher, FileSource, TokenFor, TransferFailed
from hubgate.mirror.leases import Holder, Leases, file_lease
from hubgate.mirror.replicas import HolderFailed, reachable, tail
from hubgate.mirror.transfer import Started
from hubgate.mirror.upstream import Upstreams
from hubgate.signing import Signer
from hubgate.storage.blobs import BlobStore

HOLDER_POLL = 0.05  # seconds between looks at another replica's lease
FIRST_ANSWER_WAIT = 30.0  # longest wait for another replica's upstream to answer before ours starts
PULL_POLL = 0.5  # seconds between looks at another replica's lease, for `hubgate mirror pull`
ROUNDS = 200  # looks at who fetches a file before an answer gives up (at least ROUNDS * HOLDER_POLL s)


class SharedFetcher(Fetcher):
    """A Fetcher whose downloads are single-flight across replicas, not only on this machine."""

    def __init__(self, blobs: BlobStore, cache: MirrorCache, upstreams: Upstreams, tmp_dir: Path, leases: Leases,
                 signer: Signer, crash: CrashPoints = NO_CRASH) -> None:
        super().__init__(blobs, cache, upstreams, tmp_dir, crash)
        self.leases = self.shared = leases
        self.signer = signer

    def begin(self, src: FileSource, token_for: TokenFor) -> Started | None:
        """As `Fetcher.begin`; when another replica fetches the file, waits (a while) for its
        upstream's first answer, so that a refusal reaches this client as an error: the holder
        then gives up its lease and this replica fetches, learning the refusal itself."""
        deadline = time.monotonic() + FIRST_ANSWER_WAIT
        while True:
            started = self.start(src, token_for)
            if not isinstance(started, Holder):
                return started
            if started.url and not self._local(started) and not reachable(started.url):
                # Dead (or cut off): take over now, before this answer starts, so that it is not
                # one of those begun before the dead holder's bytes were disowned (served-bad).
                taken = self.start(src, token_for, started.holder)
                if not isinstance(taken, Holder):
                    return taken
                continue
            if started.streaming or not started.url or self._local(started) or time.monotonic() > deadline:
                if not self._local(started):  # another replica fetches it: a single-flight wait
                    self.cache.count("singleflight_waits")
                return None
            time.sleep(HOLDER_POLL)

    def fetch_now(self, src: FileSource, token_for: TokenFor, progress: Callable[[int], None] | None = None) -> str:
        """As `Fetcher.fetch_now`, holding the file's lease meanwhile (replicas wait for the stored
        file: a `hubgate mirror pull` serves nobody its bytes), or waiting while another holds it."""
        while (sha256 := self.cached(src)) is None:
            taken = self.shared.acquire(file_lease(src.oid))
            if isinstance(taken, Holder):
                time.sleep(PULL_POLL)
                continue
            if taken.took_over:
                self.cache.remember_served_bad(src.oid)
            try:
                return super().fetch_now(src, token_for, progress)
            finally:
                self.shared.release(file_lease(src.oid))
        return sha256

    def _local(self, holder: Holder) -> bool:
        """Whether a lease is held by a process of this replica (whose part file is on this disk)."""
        return bool(self.shared.url) and holder.url == self.shared.url

    def _fetching_here(self, src: FileSource) -> bool:
        holder = self.shared.holder(file_lease(src.oid))
        return holder is not None and self._local(holder) and self.downloading(src)

    def _source_of(self, src: FileSource, token_for: TokenFor) -> Holder | Literal["here"] | None:
        """Where an answer gets the file's bytes now: "here" (stored, or fetched on this machine,
        by this process if the lease was free), another replica's holder, or None: look again."""
        if self.cached(src) is not None:
            return "here"
        holder = self.shared.holder(file_lease(src.oid))
        if holder is None:
            found = self.start(src, token_for)
            if not isinstance(found, Holder):
                return "here" if found is not None else None  # None: stored just now, or a process here is at it
            holder = found
        if not self._local(holder):
            return holder
        if self.downloading(src):
            return "here"
        self.start(src, token_for, holder.holder)  # this replica's holder died (its lock is free): take over
        return None

    async def read_direct(self, src: FileSource, start: int, end: int, token_for: TokenFor) -> AsyncGenerator[bytes, None]:
        # A range straight from upstream is checked against the download on this machine; with
        # none here, the holder's bytes serve it.
        here = await asyncio.to_thread(self._fetching_here, src)
        chunks = super().read_direct(src, start, end, token_for) if here else self.read(src, start, end, token_for)
        async for chunk in chunks:
            yield chunk

    async def read(self, src: FileSource, start: int, end: int, token_for: TokenFor) -> AsyncGenerator[bytes, None]:
        pos = start
        for _round in range(ROUNDS):
            source = await asyncio.to_thread(self._source_of, src, token_for)
            if source is None or (source != "here" and not source.url):  # `hubgate mirror pull` serves nobody
                await asyncio.sleep(HOLDER_POLL)
                continue
            if source == "here":
                if pos > start:  # never bytes of another transfer after the holder's
                    raise TransferFailed(f"{src.url_path}: the replica fetching it stopped mid-way")
                async for chunk in self.tail_local(src, start, end):
                    yield chunk
                return
            try:
                async for chunk in tail(source.url, self.signer, src.oid, src.size, pos, end):
                    pos += len(chunk)
                    yield chunk
            except HolderFailed as exc:
                if pos > start:
                    raise TransferFailed(f"{src.url_path}: {exc}") from exc
                if exc.unreachable:  # dead or cut off: fetch here instead (a live one fetches it too, harmlessly)
                    await asyncio.to_thread(self.start, src, token_for, source.holder)
                else:  # done, failed or not started yet: look again
                    await asyncio.sleep(HOLDER_POLL)
                continue
            if pos != end + 1:
                raise TransferFailed(f"{src.url_path}: the replica fetching it sent {pos - start} bytes of {end + 1 - start}")
            return
        raise TransferFailed(f"{src.url_path}: no replica could send it")
