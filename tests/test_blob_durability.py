"""A blob is on disk for good (its bytes and its name in every folder on the way) before the
database is told about it: a power cut must not leave the database naming a blob that is gone."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hubgate.storage.blobs import LocalBlobStore


@pytest.fixture()
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of what is fsync'ed from now on."""
    paths: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return paths


def test_written_and_adopted_blobs_sync_their_folders(tmp_path: Path, synced: list[str]) -> None:
    store = LocalBlobStore(tmp_path / "blobs", tmp_path / "tmp")
    writer = store.writer()
    writer.write(b"first")
    final = store.path_for(writer.commit())
    # its folder, and the folders that were created for it (the file itself before its rename)
    assert {str(final.parent), str(final.parent.parent), str(store.root)} <= set(synced)

    synced.clear()
    part = tmp_path / "tmp" / "fetched.part"
    part.write_bytes(b"second")
    sha256 = hashlib.sha256(b"second").hexdigest()
    with part.open("rb") as verified:
        store.publish(verified, sha256)
    adopted = store.path_for(sha256)
    assert str(adopted.parent) in synced and adopted.read_bytes() == b"second"
    assert adopted.stat().st_ino == part.stat().st_ino  # linked, not copied; the caller keeps its file

    # Published again (a second fetch of the same bytes): the blob stays, renewed for the collector.
    os.utime(adopted, (1, 1))
    again = tmp_path / "tmp" / "again.part"
    again.write_bytes(b"second")
    with again.open("rb") as verified:
        store.publish(verified, sha256)
    assert adopted.stat().st_mtime > 1 and adopted.stat().st_ino == part.stat().st_ino
