"""The one repository interface the API talks to, whether a repo is hosted here or mirrored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hubgate.git.objects import CommitData
from hubgate.repos.ids import RepoRef


@dataclass(frozen=True)
class LfsInfo:
    sha256: str
    size: int
    pointer_size: int


@dataclass(frozen=True)
class Entry:
    """A file or folder of a tree at one commit."""

    path: str
    type: str  # "file" | "directory"
    oid: str  # git blob or tree sha1
    size: int
    lfs: LfsInfo | None = None

    @property
    def etag(self) -> str:
        return self.lfs.sha256 if self.lfs else self.oid

    @property
    def content_size(self) -> int:
        return self.lfs.size if self.lfs else self.size


@dataclass(frozen=True)
class Content:
    """The bytes of a file: a local path to stream (or sendfile) from, or the bytes themselves."""

    size: int
    path: Path | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class RepoMeta:
    ref: RepoRef
    private: bool
    gated: str | None
    created_at: dt.datetime
    sdk: str | None = None


class Repository(Protocol):
    meta: RepoMeta

    def resolve(self, revision: str) -> str:
        """The 40-hex commit a branch, tag, `refs/...` name or commit id points at."""

    def commit(self, sha1: str) -> CommitData: ...

    def history(self, sha1: str) -> Iterator[CommitData]:
        """Commits reachable from `sha1`, newest first (first-parent order)."""

    def list_tree(self, commit: str, path: str = "", recursive: bool = False) -> list[Entry]: ...

    def describe(self, commit: str, path: str) -> Entry:
        """The file at `path`; EntryNotFound if there is none."""

    def open(self, entry: Entry) -> Content: ...

    def branches(self) -> dict[str, str]: ...

    def tags(self) -> dict[str, str]: ...
