"""Part files a killed fetch left behind, checked once at server start (issue 6, item 12).

A part file's bytes cannot be checked until the file is whole, and local damage (a flipped byte
on disk) would otherwise only show when a resumed download failed to verify, after a client had
been sent the damaged prefix. So at start each part file no live process owns (its fetch lock is
free) is hashed: a complete file that verifies is kept (the next request publishes it without the
upstream); anything else is discarded and fetched again from the start.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path

from hubgate.git.blobid import blob_hasher

log = logging.getLogger("hubgate.mirror")

READ = 1024 * 1024


def check_part_files(tmp_dir: Path) -> int:
    """Discard every orphaned `fetch-<oid>.part` that is not the whole, verified file; returns how
    many were discarded. One a live fetch (in any process) holds is left alone."""
    discarded = 0
    for part in tmp_dir.glob("fetch-*.part"):
        oid = part.name.removeprefix("fetch-").removesuffix(".part")
        fd = os.open(tmp_dir / f"fetch-{oid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live fetch's
        try:  # under the lock: no fetch can start on it meanwhile
            if not _verifies(part, oid):
                log.warning("part file %s left by an interrupted fetch cannot be verified: discarded", part.name)
                part.unlink(missing_ok=True)
                discarded += 1
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    return discarded


def _verifies(part: Path, oid: str) -> bool:
    """Whether the part file is the whole file `oid` names (sha256 for LFS, git blob id otherwise)."""
    with part.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        hasher = hashlib.sha256() if len(oid) == 64 else blob_hasher(size)
        while chunk := handle.read(READ):
            hasher.update(chunk)
    return hasher.hexdigest() == oid
