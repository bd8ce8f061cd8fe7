"""Load verified files of locked commits into the mirror's cache, as if fetched from upstream.

`hubgate bundle import --data DIR` uses this: the commits keep their ids and the repos their
names, and a server started with `--offline` (no upstream needed) serves them to every client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubgate.errors import BadRequest
from hubgate.git.objects import lfs_pointer
from hubgate.ids import RepoRef
from hubgate.mirror.cache import MirrorCache
from hubgate.mirror.repository import VIA_KEY
from hubgate.mirror.service import SOURCE_KEY
from hubgate.storage.blobs import BlobStore
from hubgate.storage.metadata import MetadataStore

SOURCE = "bundle"


@dataclass(frozen=True)
class Seed:
    ref: RepoRef
    revision: str
    commit: str
    files: list[tuple[str, int, str, str, bool]]  # path, size, sha256, git blob id, lfs


def _tree(files: list[tuple[str, int, str, str, bool]]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path, size, sha256, blob, lfs in sorted(files):
        entry: dict[str, Any] = {"type": "file", "path": path, "oid": blob, "size": size}
        if lfs:
            entry["lfs"] = {"oid": sha256, "size": size, "pointerSize": len(lfs_pointer(sha256, size))}
        entries.append(entry)
    return entries


def seed(
    is_local: Callable[[RepoRef], bool], blobs: BlobStore, metadata: MetadataStore, seeds: list[Seed],
    staged: Mapping[str, Path], *, private: bool = False,
) -> None:
    """Publish `staged` ({sha256: verified file under the tmp folder}) and record the commits.

    Refused before anything changes when a repo's name belongs to this server's own users or
    repos (`is_local`).
    """
    for s in seeds:
        if is_local(s.ref):
            raise BadRequest(f"{s.ref}: {s.ref.namespace} is a local namespace on this server; nothing was imported")
        missing = [path for path, _, sha256, _, _ in s.files if sha256 not in staged and not blobs.exists(sha256)]
        if missing:
            raise BadRequest(f"{s.ref}: no verified bytes for {', '.join(missing[:5])}; nothing was imported")
    for sha256, path in staged.items():
        if not blobs.exists(sha256):
            with path.open("rb") as verified:
                blobs.publish(verified, sha256)
        path.unlink(missing_ok=True)
    cache = MirrorCache(metadata)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for s in seeds:
        key = (s.ref.type, s.ref.repo_id)
        info = {"id": s.ref.repo_id, "sha": s.commit, "private": private, "gated": False, "lastModified": now,
                SOURCE_KEY: SOURCE, VIA_KEY: "server"}
        known = cache.commit(*key, s.commit)
        if known is None or known[1] is None:  # a listing fetched upstream stays: a lock may name only some files
            cache.remember_commit(*key, s.commit, info)
            cache.remember_tree(*key, s.commit, _tree(s.files))
        if s.revision != s.commit:
            cache.remember_revision(*key, s.revision, s.commit, SOURCE)
        for _path, size, sha256, blob, lfs in s.files:
            cache.remember_file(sha256 if lfs else blob, sha256, size, SOURCE)
