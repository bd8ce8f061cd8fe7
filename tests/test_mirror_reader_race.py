"""An answer that starts as its file's download ends must read the published file.

Seen in full runs (about one cold small file in 60 under load): the reader looked in the store
(not there yet), the download then published the file and let go of its lock, and the reader,
finding no download running, broke the answer off after its headers with no byte sent. The
interleaving is forced here: the download ends exactly between the reader's two looks.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from hubgate.mirror.fetcher import Fetcher, FileSource
from hubgate.storage.blobs import LocalBlobStore

DATA = b"hello"


class EndsBetweenLooks(Fetcher):
    """A fetcher whose download publishes the file and ends at the moment the reader asks whether
    it still runs."""

    published = False

    def cached(self, src: FileSource) -> str | None:
        return hashlib.sha256(DATA).hexdigest() if self.published else None

    def downloading(self, src: FileSource) -> bool:
        self.published = True  # the file is in the store and the lock is free from now on
        return False


async def read_all(fetcher: Fetcher, src: FileSource) -> bytes:
    return b"".join([chunk async for chunk in fetcher.tail_local(src, 0, src.size - 1)])


def test_a_download_that_ends_between_the_readers_looks_is_read_from_the_store(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    writer = blobs.writer()
    writer.write(DATA)
    writer.commit()
    fetcher = EndsBetweenLooks(blobs, None, None, tmp_path / "fetch")  # type: ignore[arg-type]  # neither is consulted
    src = FileSource(hashlib.sha1(b"blob 5\0" + DATA).hexdigest(), len(DATA), False, "/team/voice/resolve/c/notes.txt")
    assert asyncio.run(read_all(fetcher, src)) == DATA
