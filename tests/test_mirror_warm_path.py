"""A warm download from the mirror costs the same work whatever the repo's size, and writes nothing;
a hosted one too (issue 10, "Speed").

Timing is measured by bench/percall.py (docs/benchmarks.md); here the work is compared: the database
statements of one warm download of a small file from a repo of 10 files and from one of 2,000, through
the same domain calls as the `resolve` route. Hits and recency are counted in memory and written in
batches (mirror/tally.py): the shared counters, read from another process's Hub, still add up.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import event, select

from conftest import start_server
from hubgate.auth.gate import Action, Subject
from hubgate.config import Settings, UpstreamConfig
from hubgate.hub import Hub
from hubgate.ids import RepoRef
from hubgate.storage.metadata import MirrorFile
from ndjson_commit import commit_files
from processes import until

SIZES = {"team/small": 10, "team/large": 2000}
PATH = "d0/f0.txt"


def download(hub: Hub, repo_id: str, *, warm: bool = True) -> bytes:
    """What `GET /{repo}/resolve/main/{PATH}` asks of the domain, and the body."""
    repo = hub.gate.authorize(None, Action.DOWNLOAD, Subject(ref=RepoRef.parse("model", repo_id)))
    assert repo is not None
    commit = repo.resolve("main")
    content = repo.open(repo.describe(commit, PATH), commit)
    small = content.read_small()  # a hosted file's bytes, or a cached file's
    if small is not None:
        return small
    assert not warm and content.stream is not None, "a warm download is not served from the cache"

    async def read(stream: Callable[[int, int], AsyncGenerator[bytes, None]]) -> bytes:
        return b"".join([chunk async for chunk in stream(0, content.size - 1)])

    return asyncio.run(read(content.stream))


@contextmanager
def statements(hub: Hub) -> Iterator[list[str]]:
    """The statements this thread executes (the request's; not the background flush of the hit counts)."""
    seen: list[str] = []
    me = threading.get_ident()

    def record(_conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        if threading.get_ident() == me:
            seen.append(re.sub(r"\s+", " ", statement))

    event.listen(hub.metadata.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(hub.metadata.engine, "before_cursor_execute", record)


def test_warm_download_does_the_same_reads_for_10_and_2000_files_and_no_writes(tmp_path: Path) -> None:
    with start_server(tmp_path / "origin") as origin:
        origin.add_user("team")
        token = origin.token("team", "write")
        for repo_id, n in SIZES.items():
            httpx.post(f"{origin.url}/api/repos/create", json={"name": repo_id}, timeout=60,
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            files = {f"d{i % 7}/f{i}.txt": f"{repo_id} {i}".encode() for i in range(n)}
            commit_files(origin.url, token, repo_id, files).raise_for_status()
        hosted = Hub(Settings.load(data=tmp_path / "origin"))  # the origin's repos, read in this process
        settings = Settings.load(data=tmp_path / "mirror", upstream=[UpstreamConfig(name="origin", url=origin.url)])
        hub, other = Hub(settings), Hub(settings)  # `other`: a second process on the same database
        try:
            seen_hosted = {}
            for repo_id in SIZES:
                download(hosted, repo_id)
                with statements(hosted) as seen_hosted[repo_id]:
                    assert download(hosted, repo_id) == f"{repo_id} 0".encode()
            small, large = seen_hosted.values()
            assert small and small == large and all(s.startswith("SELECT") for s in small), small
            for repo_id in SIZES:
                assert download(hub, repo_id, warm=False) == f"{repo_id} 0".encode()  # cold: fetched
                download(hub, repo_id)  # warm from here on
            seen = {}
            for repo_id in SIZES:
                with statements(hub) as seen[repo_id]:
                    assert download(hub, repo_id) == f"{repo_id} 0".encode()
            small, large = seen.values()
            assert small and small == large, "a warm download's statements depend on the repo"
            writes = [s for s in small if not s.lstrip().upper().startswith("SELECT")]
            assert not writes, f"a warm hit writes to the database: {writes}"
            assert not [s for s in small if "mirror_commits.tree" in s], "a warm hit reads the commit's whole tree"
            # a regular file's git blob id names its sha256 for good: looked up once per process
            assert not [s for s in small if "FROM mirror_files" in s], "a warm hit looks up the file's sha256 again"
            assert len(small) <= len(seen_hosted[next(iter(SIZES))]) + 4, (small, seen_hosted)

            assert hub.mirror is not None and other.mirror is not None
            cache = hub.mirror.status()["cache"]  # this process's counts are written before it reads them
            assert (cache["hits"], cache["misses"]) == (4, 2) and cache["hitRatio"] == round(4 / 6, 4)
            before = time.time()
            for _ in range(5):
                download(hub, "team/large")
            # another process sees them once this one's background flush has run
            until(lambda: other.mirror is not None and other.mirror.status()["cache"]["hits"] == 9,
                  "the other process to see this one's hits")
            with other.metadata.session() as session:
                recent = session.scalars(select(MirrorFile.last_access).where(MirrorFile.last_access >= before)).all()
            assert len(recent) == 1  # the file just read, and only it, is the most recently used
        finally:
            for each in (hosted, hub, other):
                each.close()
