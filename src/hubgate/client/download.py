"""Fetch what a lock names: files in parallel, large files in parallel ranges, resumable,
failing over between endpoints per file, and nothing visible before its SHA-256 matches.

A small file gathers in a part file that a later run resumes with a Range request. A large file
is preallocated and cut into ranges; each finished range is noted in `<part>.done`, so a later
run fetches only the missing ones. Either way the whole file is hashed before it is renamed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hubgate.client.layout import Target, is_present, sha256_of, show
from hubgate.client.lockfile import Lock, LockedFile, LockedRepo
from hubgate.client.remote import Endpoint, Hubs, RemoteError

CHUNK = 16 * 1024 * 1024
RANGED_FROM = 32 * 1024 * 1024
TRIES_PER_ENDPOINT = 3


@dataclass
class Job:
    """One stored file to fetch, and every locked file that shares it."""

    repo: LockedRepo
    file: LockedFile
    final: Path
    part: Path
    users: list[tuple[LockedRepo, LockedFile]] = field(default_factory=list)
    ranges_left: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def label(self) -> str:
        return f"{self.repo.ref.repo_id}@{self.repo.commit[:12]} {self.file.path}"

    @property
    def done_path(self) -> Path:
        return self.part.with_name(self.part.name + ".done")


@dataclass
class Summary:
    fetched: int = 0
    present: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


class FileFailed(Exception):
    pass


class Puller:
    def __init__(self, hubs: Hubs, where: Target, *, workers: int = 8, chunk: int = CHUNK,
                 ranged_from: int = RANGED_FROM, progress: Callable[[int], None] | None = None,
                 rehash: bool = False) -> None:
        self.hubs = hubs
        self.where = where
        self.workers = workers
        self.chunk = chunk
        self.ranged_from = ranged_from
        self.rehash = rehash
        self.progress = progress or (lambda n: None)
        self._bytes = 0
        self._count = threading.Lock()

    # -- planning --------------------------------------------------------------------------
    def plan(self, lock: Lock) -> tuple[list[Job], int]:
        """The jobs still to do (one per stored file) and how many locked files are present."""
        jobs: dict[Path, Job] = {}
        present = 0
        for repo, f in lock.all_files():
            if is_present(self.where, repo, f, self.rehash):
                present += 1
                continue
            final = self.where.final(repo, f)
            job = jobs.setdefault(final, Job(repo, f, final, self.where.part(repo, f)))
            job.users.append((repo, f))
        return list(jobs.values()), present

    def run(self, lock: Lock) -> Summary:
        started = time.monotonic()
        jobs, present = self.plan(lock)
        summary = Summary(present=present)
        failed: set[tuple[str, str]] = set()
        with ThreadPoolExecutor(self.workers) as pool:
            futures = {}
            for job in jobs:
                for task in self._tasks(job):
                    futures[pool.submit(task)] = job
            for future in as_completed(futures):
                job = futures[future]
                try:
                    if future.result():
                        summary.fetched += len(job.users)
                except FileFailed as exc:
                    summary.failures.append(f"{job.label}: {exc}")
                    failed.update((r.ref.repo_id, f.path) for r, f in job.users)
        show(self.where, lock, failed)
        summary.bytes = self._bytes
        summary.seconds = time.monotonic() - started
        return summary

    def _tasks(self, job: Job) -> list[Callable[[], bool]]:
        job.part.parent.mkdir(parents=True, exist_ok=True)
        size = job.file.size
        if size < self.ranged_from or size <= self.chunk:
            return [lambda: self._whole(job)]
        done: set[int] = set()
        if job.part.exists() and job.part.stat().st_size == size and job.done_path.exists():
            done = {int(x) for x in job.done_path.read_text().split() if x.isdigit()}
        else:
            with job.part.open("wb") as handle:
                handle.truncate(size)
            job.done_path.write_text("")
        ranges = [(i, start, min(start + self.chunk, size) - 1) for i, start in enumerate(range(0, size, self.chunk))]
        self._advance(sum(end - start + 1 for i, start, end in ranges if i in done))
        todo = [r for r in ranges if r[0] not in done]
        job.ranges_left = len(todo)
        if not todo:
            return [lambda: self._finalize(job)]
        return [lambda r=r: self._range(job, *r) for r in todo]  # type: ignore[misc]

    def _advance(self, n: int) -> None:
        with self._count:
            self._bytes += n
        self.progress(n)

    # -- fetching --------------------------------------------------------------------------
    def _attempts(self, job: Job, fetch: Callable[[Endpoint], bool]) -> None:
        """Try `fetch` on each endpoint (retrying while bytes keep coming) until it completes."""
        errors: list[str] = []
        for endpoint in self.hubs.ordered():
            for _ in range(TRIES_PER_ENDPOINT):
                try:
                    if fetch(endpoint):
                        return
                    errors.append(f"{endpoint.url}: transfer cut")
                except httpx.TransportError as exc:
                    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                        self.hubs.mark_down(endpoint)
                        errors.append(f"{endpoint.url}: unreachable")
                        break
                    errors.append(f"{endpoint.url}: {exc.__class__.__name__}")
                except RemoteError as exc:
                    errors.append(exc.message)
                    break
        refused = [e for e in errors if "token refused" in e or "no token sent" in e]
        raise FileFailed("; ".join(refused or errors[-3:]))

    def _whole(self, job: Job) -> bool:
        size = job.file.size
        mismatches: list[str] = []

        def fetch(endpoint: Endpoint) -> bool:
            offset = job.part.stat().st_size if job.part.exists() else 0
            if offset > size:
                job.part.unlink()
                offset = 0
            if offset < size:
                with self.hubs.stream(endpoint, job.repo.ref, job.repo.commit, job.file.path, start=offset) as response:
                    if response.status_code == 200 and offset:
                        job.part.unlink()
                        offset = 0
                    with job.part.open("ab") as out:
                        for data in response.iter_raw():
                            out.write(data)
                            self._advance(len(data))
                offset = job.part.stat().st_size
            if offset != size:
                return False
            digest = sha256_of(job.part)
            if digest != job.file.sha256:
                job.part.unlink()
                self._advance(-size)
                mismatches.append(f"sha256 mismatch from {endpoint.url}: got {digest}, expected {job.file.sha256}")
                raise RemoteError(endpoint.url, mismatches[-1])
            self._publish(job)
            return True

        if not job.part.exists() and size == 0:
            job.part.write_bytes(b"")
        try:
            self._attempts(job, fetch)
        except FileFailed as exc:
            raise FileFailed("; ".join(mismatches) or str(exc)) from exc
        return True

    def _range(self, job: Job, index: int, start: int, end: int) -> bool:
        position = start

        def fetch(endpoint: Endpoint) -> bool:
            nonlocal position
            with self.hubs.stream(endpoint, job.repo.ref, job.repo.commit, job.file.path, start=position, end=end) as response:
                if response.status_code != 206:
                    raise RemoteError(endpoint.url, f"{job.file.path}: answered a Range request with {response.status_code}")
                fd = os.open(job.part, os.O_WRONLY)
                try:
                    for data in response.iter_raw():
                        data = data[: end + 1 - position]
                        os.pwrite(fd, data, position)
                        position += len(data)
                        self._advance(len(data))
                finally:
                    os.close(fd)
            return position > end

        self._attempts(job, fetch)
        with job.lock:
            with job.done_path.open("a") as done:
                done.write(f"{index}\n")
            job.ranges_left -= 1
            last = job.ranges_left == 0
        return self._finalize(job) if last else False

    def _finalize(self, job: Job) -> bool:
        digest = sha256_of(job.part)
        if digest != job.file.sha256:
            # Which range, from which endpoint, was bad is unknown: start again, one endpoint at a
            # time, each checked on its own (the next one is used if one sends bad bytes).
            job.part.unlink()
            job.done_path.unlink(missing_ok=True)
            self._advance(-job.file.size)
            return self._whole(job)
        self._publish(job)
        job.done_path.unlink(missing_ok=True)
        return True

    def _publish(self, job: Job) -> None:
        job.final.parent.mkdir(parents=True, exist_ok=True)
        with job.part.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(job.part, job.final)
