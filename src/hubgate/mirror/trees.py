"""A mirrored commit's file list, parsed once per process and looked up by path.

A commit's tree never changes, so once parsed it is kept in memory (a `ByteCache`, bounded by
bytes; safe to lose: the metadata store keeps the packed tree). A warm download then finds its
entry in a dict instead of unpacking and scanning the whole list on every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Memory one process may spend on parsed trees; ~450 bytes per entry of a typical repo.
TREE_CACHE_BYTES = 64 * 1024 * 1024
_ENTRY_BYTES = 400  # a parsed entry's dict, its id and size, before the path
_LFS_BYTES = 300  # the nested dict of an LFS entry


@dataclass(frozen=True)
class CommitTree:
    entries: list[dict[str, Any]]
    files: dict[str, dict[str, Any]] = field(init=False)
    directories: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", {e["path"]: e for e in self.entries if e["type"] == "file"})
        object.__setattr__(self, "directories", frozenset(e["path"] for e in self.entries if e["type"] == "directory"))

    def weight(self) -> int:
        """An estimate of the bytes this tree holds in memory (entries, plus the two indexes)."""
        return sum(_ENTRY_BYTES + 2 * len(e["path"]) + (_LFS_BYTES if "lfs" in e else 0) for e in self.entries)
