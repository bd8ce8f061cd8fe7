"""Build and parse git objects exactly as git does, so commit ids are real git ids."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from typing import cast

from dulwich.objects import Blob, Commit, ObjectID, Tree

FILE_MODE = 0o100644
DIR_MODE = stat.S_IFDIR  # 0o040000

LFS_SPEC = b"version https://git-lfs.github.com/spec/v1\n"
_POINTER_RE = re.compile(rb"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n$")
MAX_POINTER_SIZE = 200


@dataclass(frozen=True)
class RawObject:
    sha1: str
    kind: str
    data: bytes


def blob(data: bytes) -> RawObject:
    obj = Blob.from_string(data)
    return RawObject(obj.id.decode(), "blob", data)


def lfs_pointer(sha256: str, size: int) -> bytes:
    return LFS_SPEC + f"oid sha256:{sha256}\nsize {size}\n".encode()


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    if len(data) > MAX_POINTER_SIZE:
        return None
    match = _POINTER_RE.match(data)
    if not match:
        return None
    return match.group(1).decode(), int(match.group(2))


@dataclass(frozen=True)
class TreeItem:
    name: str
    mode: int
    sha1: str

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


def parse_tree(data: bytes) -> list[TreeItem]:
    tree = cast(Tree, Tree.from_raw_string(Tree.type_num, data))
    return [TreeItem(e.path.decode("utf-8", "surrogateescape"), e.mode, e.sha.decode()) for e in tree.iteritems()]


def build_trees(files: dict[str, tuple[int, str]]) -> tuple[str, list[RawObject]]:
    """Nested tree objects for a flat {path: (mode, blob sha1)}; returns (root sha1, objects)."""
    children: dict[str, dict[str, tuple[int, str] | None]] = {"": {}}
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent, name = "/".join(parts[: depth - 1]), parts[depth - 1]
            children.setdefault(parent, {})[name] = None
            children.setdefault("/".join(parts[:depth]), {})
        parent = "/".join(parts[:-1])
        children.setdefault(parent, {})[parts[-1]] = files[path]
    objects: list[RawObject] = []

    def build(prefix: str) -> str:
        tree = Tree()
        for name, entry in children[prefix].items():
            if entry is None:
                sub = build(f"{prefix}/{name}" if prefix else name)
                tree.add(name.encode(), DIR_MODE, ObjectID(sub.encode()))
            else:
                tree.add(name.encode(), entry[0], ObjectID(entry[1].encode()))
        raw = tree.as_raw_string()
        objects.append(RawObject(tree.id.decode(), "tree", raw))
        return tree.id.decode()

    return build(""), objects


@dataclass(frozen=True)
class CommitData:
    sha1: str
    tree: str
    parents: tuple[str, ...]
    author: str
    timestamp: int
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def body(self) -> str:
        parts = self.message.split("\n\n", 1)
        return parts[1].strip() if len(parts) > 1 else ""


def build_commit(tree: str, parents: list[str], author: str, email: str, timestamp: int, message: str) -> RawObject:
    commit = Commit()
    commit.tree = ObjectID(tree.encode())
    commit.parents = [ObjectID(p.encode()) for p in parents]
    identity = f"{author} <{email}>".encode()
    commit.author = commit.committer = identity
    commit.author_time = commit.commit_time = timestamp
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode()
    return RawObject(commit.id.decode(), "commit", commit.as_raw_string())


def parse_commit(sha1: str, data: bytes) -> CommitData:
    commit = cast(Commit, Commit.from_raw_string(Commit.type_num, data))
    author = commit.author.decode("utf-8", "replace").split(" <", 1)[0]
    return CommitData(
        sha1=sha1,
        tree=commit.tree.decode(),
        parents=tuple(p.decode() for p in commit.parents),
        author=author,
        timestamp=commit.commit_time,
        message=commit.message.decode("utf-8", "replace"),
    )
