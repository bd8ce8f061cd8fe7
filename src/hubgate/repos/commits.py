"""Turn a list of file operations into a new git commit on a branch, atomically."""

from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass, field
from functools import cached_property

from hubgate import constants
from hubgate.errors import BadRequest, EntryNotFound
from hubgate.git import objects as git
from hubgate.ids import check_folder_to_delete, check_path_to_write
from hubgate.storage.blobs import BlobStore


@dataclass(frozen=True)
class AddBytes:
    """A file sent inline; stored as a git blob, or as LFS if policy says so."""

    path: str
    data: bytes


@dataclass(frozen=True)
class AddLfs:
    """A file whose content is already in the blob store.

    `inline`: the content came with this very commit (the server stored it from the request), so
    the sender evidently has it; otherwise the repo must be allowed to use the object (lfs_links).
    """

    path: str
    sha256: str
    size: int | None = None
    inline: bool = False


@dataclass(frozen=True)
class AddStored:
    """A file sent inline whose bytes were written to the blob store while the request was read
    (`commit_payload`), so a commit never holds large files in memory. Stored as LFS or as a
    regular blob (its bytes in the blob store, see INLINE_BLOB_MAX) as policy says."""

    path: str
    sha1: str  # its git blob id
    sha256: str
    size: int


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Operation = AddBytes | AddLfs | AddStored | DeleteFile | DeleteFolder


def lfs_patterns(gitattributes: bytes | None) -> list[str]:
    patterns = []
    for line in (gitattributes or b"").decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def _pattern_regex(patterns: list[str]) -> re.Pattern[str] | None:
    """One regex for a list of fnmatch patterns (None for none), so that a file costs one match."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p.replace('**/', '*'))})" for p in patterns))


@dataclass(frozen=True)
class LfsPolicy:
    """Which files are stored as LFS: large ones, and those `.gitattributes` marks `filter=lfs`.

    A pattern with a `/` matches the whole path, one without matches the file name.
    """

    threshold: int
    patterns: list[str]

    @cached_property
    def _by_path(self) -> re.Pattern[str] | None:
        return _pattern_regex([p for p in self.patterns if "/" in p])

    @cached_property
    def _by_name(self) -> re.Pattern[str] | None:
        return _pattern_regex([p for p in self.patterns if "/" not in p])

    def matches(self, path: str) -> bool:
        if self._by_name is not None and self._by_name.match(path.rpartition("/")[2]):
            return True
        return self._by_path is not None and self._by_path.match(path) is not None

    def wants_lfs(self, path: str, size: int) -> bool:
        return size > 0 and (size >= self.threshold or self.matches(path))


@dataclass
class TreeEdit:
    """A flat view of a tree ({path: (mode, blob sha1)}) being edited by operations."""

    files: dict[str, tuple[int, str]]
    new_objects: list[git.RawObject]
    # LFS objects whose content arrived with this commit (see AddLfs.inline).
    inline_lfs: set[str] = field(default_factory=set)
    # Regular blobs whose bytes went to the blob store: {git sha1: (sha256, size)} (see INLINE_BLOB_MAX).
    stored: dict[str, tuple[str, int]] = field(default_factory=dict)
    # LFS objects this repo may name by oid (sent to it, or held by it): any other one is answered
    # exactly like a missing one, size included, so no repo learns what another repo stores.
    usable_lfs: set[str] = field(default_factory=set)
    # Contents uploaded through Xet this repo may name: {sha256: (Xet file hash, size)} (see xet_files).
    xet_files: dict[str, tuple[str, int]] = field(default_factory=dict)

    def lfs_oids(self) -> set[str]:
        """The LFS objects the new blobs point at (pointers committed as plain files included)."""
        oids = set()
        for obj in self.new_objects:
            pointer = git.parse_lfs_pointer(obj.data) if obj.kind == "blob" else None
            if pointer:
                oids.add(pointer[0])
        return oids

    def __post_init__(self) -> None:
        # {folder: names of its direct children}, "" being the root: adding, deleting and checking
        # for file/folder clashes cost the depth of a path, not the size of the tree.
        self._children: dict[str, set[str]] = {"": set()}
        for path in self.files:
            self._link(path)

    def _link(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        while True:
            known = parent in self._children
            self._children.setdefault(parent, set()).add(name)
            if known or not parent:
                return
            parent, _, name = parent.rpartition("/")

    def _unlink(self, path: str) -> None:
        """Forget `path`, and every folder it leaves empty (git has no empty folders)."""
        parent, _, name = path.rpartition("/")
        while True:
            siblings = self._children[parent]
            siblings.discard(name)
            if siblings or not parent:
                return
            del self._children[parent]
            parent, _, name = parent.rpartition("/")

    def _subtree(self, folder: str) -> tuple[list[str], list[str]]:
        """(files, folders) under `folder`, itself included among the folders."""
        files: list[str] = []
        folders: list[str] = []
        pending = [folder]
        while pending:
            current = pending.pop()
            folders.append(current)
            for name in self._children[current]:
                child = f"{current}/{name}" if current else name
                (pending if child in self._children else files).append(child)
        return files, folders

    def apply(self, ops: list[Operation], blobs: BlobStore, policy: LfsPolicy) -> None:
        for op in ops:
            if isinstance(op, (AddBytes, AddLfs, AddStored)):
                path = check_path_to_write(op.path)
                prefix = path.rpartition("/")[0]
                while prefix:
                    if prefix in self.files:
                        raise BadRequest(f"Cannot add {path}: {prefix} is a file")
                    prefix = prefix.rpartition("/")[0]
                if path in self._children:
                    raise BadRequest(f"Cannot add {path}: it is a folder")
                obj = self._blob_for(op, blobs, policy)
                self.new_objects.append(obj)
                self.files[path] = (git.FILE_MODE, obj.sha1)
                self._link(path)
            elif isinstance(op, DeleteFile):
                path = check_path_to_write(op.path)
                if self.files.pop(path, None) is None:  # huggingface_hub looks for the Hub's words
                    raise EntryNotFound(path, message=f"A file with this name doesn't exist: {path}")
                self._unlink(path)
            else:
                folder = check_folder_to_delete(op.path)
                if folder not in self._children:
                    raise EntryNotFound(folder, message=f"A folder with this name doesn't exist: {folder}")
                doomed, folders = self._subtree(folder)
                for p in doomed:
                    del self.files[p]
                for sub in folders:
                    del self._children[sub]
                self._unlink(folder)

    def _blob_for(self, op: AddBytes | AddLfs | AddStored, blobs: BlobStore, policy: LfsPolicy) -> git.RawObject:
        if isinstance(op, AddStored):
            if policy.wants_lfs(op.path, op.size):
                self.inline_lfs.add(op.sha256)
                return git.blob(git.lfs_pointer(op.sha256, op.size))
            self.stored[op.sha1] = (op.sha256, op.size)
            return git.RawObject(op.sha1, "blob", b"")  # its bytes are in the blob store (`stored`)
        if isinstance(op, AddLfs):
            size = blobs.size(op.sha256) if op.inline or op.sha256 in self.usable_lfs else None
            if size is None and op.sha256 in self.xet_files:
                size = self.xet_files[op.sha256][1]
            if size is None:
                raise BadRequest(f"LFS object {op.sha256} for {op.path} was not uploaded")
            if op.size is not None and op.size != size:
                raise BadRequest(f"LFS object {op.sha256} has size {size}, not {op.size}")
            if op.inline:
                self.inline_lfs.add(op.sha256)
            return git.blob(git.lfs_pointer(op.sha256, size))
        if policy.wants_lfs(op.path, len(op.data)):
            writer = blobs.writer()
            writer.write(op.data)
            sha256 = writer.commit()
            self.inline_lfs.add(sha256)
            return git.blob(git.lfs_pointer(sha256, len(op.data)))
        obj = git.blob(op.data)
        if len(op.data) > constants.INLINE_BLOB_MAX:
            # Written even when stored already: a fresh copy is safe from a garbage collection
            # that found the old one unused (see hubgate.gc).
            writer = blobs.writer()
            writer.write(op.data)
            self.stored[obj.sha1] = (writer.commit(), len(op.data))
        return obj


def new_commit_objects(
    edit: TreeEdit, parent: str | None, author: str, email: str, summary: str, description: str
) -> tuple[str, list[git.RawObject]]:
    root, trees = git.build_trees(edit.files)
    message = summary.strip() or "Update files"
    if description.strip():
        message += "\n\n" + description.strip()
    commit = git.build_commit(root, [parent] if parent else [], author, email, int(time.time()), message + "\n")
    return commit.sha1, [*edit.new_objects, *trees, commit]
