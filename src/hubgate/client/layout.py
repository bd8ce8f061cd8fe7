"""Where pulled files live: the standard Hugging Face cache, or a plain folder.

In the cache (`$HF_HUB_CACHE`, default `~/.cache/huggingface/hub`), a repo's files are
`models--ns--name/blobs/<etag>` (the SHA-256 for LFS files, the git blob id otherwise), linked
from `snapshots/<commit>/<path>`, and `refs/<revision>` holds the commit: exactly what
huggingface_hub writes, so `from_pretrained(repo, revision=...)` finds them offline. In a folder,
a repo's files are `DIR/ns/name/<path>`. Partial downloads sit under their own names and only a
verified file is renamed into place.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Protocol

from hubgate.client.lockfile import Lock, LockedFile, LockedRepo

PART_SUFFIX = ".hubgate-part"


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")


def default_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or hf_home() / "hub")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Target(Protocol):
    root: Path

    def final(self, repo: LockedRepo, f: LockedFile) -> Path:
        """Where the verified bytes are stored (shared by files with the same content in the cache)."""

    def part(self, repo: LockedRepo, f: LockedFile) -> Path:
        """Where the bytes gather until they are verified."""

    def location(self, repo: LockedRepo, f: LockedFile) -> Path:
        """The path a program reads the file at."""

    def link(self, repo: LockedRepo, f: LockedFile) -> None:
        """Make a stored file visible at its location."""

    def finish(self, repo: LockedRepo) -> None:
        """Record a completely pulled repo (the revision name in the cache)."""

    def listing(self, repo: LockedRepo) -> Iterator[str]:
        """Paths present for this repo's commit, to find extra files."""

    def revision_points_elsewhere(self, repo: LockedRepo) -> str | None:
        """Why loading the locked revision by name would not give the locked commit, if it would not."""


def _walk(base: Path) -> Iterator[str]:
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != ".hubgate"]
        for name in filenames:
            if not name.endswith(PART_SUFFIX):
                yield Path(dirpath, name).relative_to(base).as_posix()


class HFCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, repo: LockedRepo) -> Path:
        return self.root / "--".join([f"{repo.ref.type}s", repo.ref.namespace, repo.ref.name])

    def final(self, repo: LockedRepo, f: LockedFile) -> Path:
        return self.folder(repo) / "blobs" / f.etag

    def part(self, repo: LockedRepo, f: LockedFile) -> Path:
        return self.folder(repo) / "blobs" / (f.etag + PART_SUFFIX)

    def location(self, repo: LockedRepo, f: LockedFile) -> Path:
        return self.folder(repo) / "snapshots" / repo.commit / f.path

    def link(self, repo: LockedRepo, f: LockedFile) -> None:
        where = self.location(repo, f)
        where.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.final(repo, f), where.parent)
        if where.is_symlink() and os.readlink(where) == target:
            return
        tmp = where.with_name(f".{where.name}.link")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, where)

    def finish(self, repo: LockedRepo) -> None:
        if repo.request.revision != repo.commit:
            _atomic_write(self.folder(repo) / "refs" / repo.request.revision, repo.commit)

    def listing(self, repo: LockedRepo) -> Iterator[str]:
        return _walk(self.folder(repo) / "snapshots" / repo.commit)

    def revision_points_elsewhere(self, repo: LockedRepo) -> str | None:
        if repo.request.revision == repo.commit:
            return None
        ref = self.folder(repo) / "refs" / repo.request.revision
        try:
            found = ref.read_text().strip()
        except OSError:
            return f"{ref} is missing"
        return None if found == repo.commit else f"{ref} names {found}, not the locked {repo.commit}"


class LocalDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def final(self, repo: LockedRepo, f: LockedFile) -> Path:
        return self.location(repo, f)

    def part(self, repo: LockedRepo, f: LockedFile) -> Path:
        key = hashlib.sha256(f"{repo.ref}/{f.path}".encode()).hexdigest()[:32]
        return self.root / ".hubgate" / "parts" / (key + PART_SUFFIX)

    def location(self, repo: LockedRepo, f: LockedFile) -> Path:
        return self.root / repo.ref.namespace / repo.ref.name / f.path

    def link(self, repo: LockedRepo, f: LockedFile) -> None:
        return None

    def finish(self, repo: LockedRepo) -> None:
        return None

    def listing(self, repo: LockedRepo) -> Iterator[str]:
        return _walk(self.root / repo.ref.namespace / repo.ref.name)

    def revision_points_elsewhere(self, repo: LockedRepo) -> str | None:
        return None


def target(local_dir: Path | None, cache_dir: Path | None) -> Target:
    return LocalDir(local_dir) if local_dir is not None else HFCache(cache_dir or default_cache())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def is_present(where: Target, repo: LockedRepo, f: LockedFile, rehash: bool = False) -> bool:
    """The stored file exists with the locked size (what a no-op pull relies on) and, with
    `rehash`, the locked SHA-256."""
    final = where.final(repo, f)
    try:
        if final.stat().st_size != f.size:
            return False
    except OSError:
        return False
    return not rehash or sha256_of(final) == f.sha256


def show(where: Target, lock: Lock, failed: Collection[tuple[str, str]] = ()) -> None:
    """Make every stored locked file visible, and record each repo pulled in full."""
    failed_repos = {repo_id for repo_id, _ in failed}
    for repo in lock.repos:
        for f in repo.files:
            if (repo.ref.repo_id, f.path) not in failed:
                where.link(repo, f)
        if repo.ref.repo_id not in failed_repos:
            where.finish(repo)
