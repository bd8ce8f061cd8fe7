"""Preupload answers: how each file travels, whether `.gitignore` excludes it, and whether the
repo already has it (its `oid`, so that huggingface_hub skips files that did not change)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import pathspec
from cachetools import LRUCache

from hubgate.errors import EntryNotFound
from hubgate.repos.commits import LfsPolicy
from hubgate.repos.hosted import HostedRepository
from hubgate.storage.blobs import BlobStore

GITIGNORE = ".gitignore"
GITIGNORE_MAX = 1024 * 1024
# A client sending a file as "regular" compares the git blob id of its content; for a file stored
# as LFS that id is computed from the stored bytes, up to this size (larger ones are sent again).
CONTENT_OID_MAX = 1024 * 1024 * 1024
CONTENT_OIDS_KEPT = 4096


@dataclass(frozen=True)
class Wanted:
    path: str
    size: int


@dataclass
class ContentOids:
    """Git blob ids of LFS objects' contents, computed once each (bounded)."""

    blobs: BlobStore
    _known: LRUCache[str, str] = field(default_factory=lambda: LRUCache(CONTENT_OIDS_KEPT))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, sha256: str, size: int) -> str | None:
        with self._lock:
            known = self._known.get(sha256)
        if known is not None or size > CONTENT_OID_MAX or not self.blobs.exists(sha256):
            return known
        hasher = hashlib.sha1(b"blob %d\0" % size)
        with self.blobs.open(sha256) as handle:
            while chunk := handle.read(1024 * 1024):
                hasher.update(chunk)
        with self._lock:
            self._known[sha256] = hasher.hexdigest()
        return hasher.hexdigest()


def plan(repo: HostedRepository, commit: str, files: list[Wanted], policy: LfsPolicy, gitignore: str | None,
         oids: ContentOids) -> list[dict[str, object]]:
    """The preupload answer for each file (`gitignore`: the client's, else the repo's own).

    "lfs" goes to every client alike: up to huggingface_hub 1.19 (and later ones without hf_xet or
    with HF_HUB_DISABLE_XET=1) it takes the LFS batch path, from 1.20 with hf_xet the Xet CAS."""
    ignored = _ignore_spec(repo, commit, gitignore)
    answers: list[dict[str, object]] = []
    for item in files:
        mode = "lfs" if policy.wants_lfs(item.path, item.size) else "regular"
        answer: dict[str, object] = {"path": item.path, "uploadMode": mode,
                                     "shouldIgnore": bool(ignored and ignored.match_file(item.path))}
        try:
            existing = repo.describe(commit, item.path)
        except EntryNotFound:
            existing = None
        if existing is not None:
            if existing.lfs:
                same_size = existing.lfs.size == item.size
                answer["oid"] = existing.lfs.sha256 if mode == "lfs" else (
                    oids.of(existing.lfs.sha256, existing.lfs.size) if same_size else None)
            elif mode == "regular":
                answer["oid"] = existing.oid
        answers.append(answer)
    return answers


def _ignore_spec(repo: HostedRepository, commit: str, gitignore: str | None) -> pathspec.GitIgnoreSpec | None:
    if gitignore is None:
        try:
            entry = repo.describe(commit, GITIGNORE)
        except EntryNotFound:
            return None
        data = repo.open(entry, commit).read_small(GITIGNORE_MAX)
        gitignore = data.decode("utf-8", "replace") if data is not None else None
    if not gitignore:
        return None
    return pathspec.GitIgnoreSpec.from_lines(gitignore.splitlines())
