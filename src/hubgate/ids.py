"""Repo types, repo ids, file paths and revisions, validated once at the edge.

Names follow the Hub's rules, refs and paths git's own (`git check-ref-format`, and the `.git`
checks git applies to paths with core.protectNTFS and core.protectHFS). Every pattern is a full
match: `$` would also match before a final newline.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from hubgate import constants
from hubgate.errors import BadRequest, InvalidPath

# The Hub's repo names (huggingface_hub's REPO_ID_REGEX): ASCII letters, digits, `-_.`, at most
# 96, starting with a letter or digit and ending with a letter, digit or `_`; no `--` nor `..`.
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
# First path segments the URL scheme already uses: a namespace of that name could not be reached
# (`/datasets/x/resolve/...` is the dataset `x`, never the model `datasets/x`).
RESERVED_NAMESPACES = frozenset({"api", "datasets", "spaces", "models", "kernels", "organizations", "settings"})
# Code points HFS+ ignores in file names (git's is_hfs_dotgit skips them too).
_HFS_IGNORABLE = frozenset(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x206A, 0x206B, 0x206C, 0x206D,
     0x206E, 0x206F, 0xFEFF]
)
MAX_PATH = 1024
MAX_REVISION = 255
# A new branch or tag is stored as `refs/heads/NAME` in a 255-character column.
MAX_REF_NAME = 200


def shown(value: object, limit: int = 100) -> str:
    """`repr(value)`, cut short: error messages quote what the client sent, within reason."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def check_repo_type(value: str | None) -> str:
    repo_type = value or "model"
    if repo_type not in constants.REPO_TYPES:
        raise BadRequest(f"Invalid repo type: {shown(repo_type)}. Must be one of {', '.join(constants.REPO_TYPES)}.")
    return repo_type


def check_name(value: str, what: str = "name") -> str:
    """A namespace or repo name as the Hub accepts it."""
    if (
        not isinstance(value, str)
        or not _NAME_RE.fullmatch(value)
        or ".." in value
        or "--" in value
        or value.lower().endswith(".git")
    ):
        raise BadRequest(f"Invalid {what}: {shown(value)}")
    return value


def check_new_namespace(name: str, what: str = "namespace") -> str:
    """A namespace something new is created in: a valid name that the URL scheme does not reserve."""
    check_name(name, what)
    if name.lower() in RESERVED_NAMESPACES:
        raise BadRequest(f"The {what} {name!r} is reserved")
    return name


@dataclass(frozen=True)
class RepoRef:
    """The address of a repo: type plus `namespace/name`."""

    type: str
    namespace: str
    name: str

    @classmethod
    def parse(cls, repo_type: str, repo_id: str) -> RepoRef:
        repo_type = check_repo_type(repo_type)
        parts = repo_id.split("/")
        if len(parts) != 2:
            raise BadRequest(f"Invalid repo id: {shown(repo_id)}. Expected 'namespace/name'.")
        return cls(repo_type, check_name(parts[0], "namespace"), check_name(parts[1], "repo name"))

    @classmethod
    def legacy(cls, repo_type: str, name: str) -> RepoRef:
        """A one-segment id (`gpt2`, `bert-base-uncased`): upstreams redirect it to its canonical repo."""
        return cls(check_repo_type(repo_type), "", check_name(name, "repo name"))

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def plural(self) -> str:
        return constants.REPO_TYPE_PLURAL[self.type]

    @property
    def url_path(self) -> str:
        """Path of the repo's web and file URLs: `[datasets/|spaces/]ns/name`."""
        return constants.REPO_TYPE_PREFIX[self.type] + self.repo_id

    def __str__(self) -> str:
        return self.url_path


def is_utf8(text: str) -> bool:
    """False for strings holding lone surrogates (from JSON `\\ud800`): they cannot be stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    """C0 and C1 control characters and DEL (newlines and tabs included)."""
    if text.isascii():
        return _ASCII_CONTROL.search(text) is not None
    return any(unicodedata.category(c) == "Cc" for c in text)


def is_dotgit(part: str) -> bool:
    """Whether git would take this path component for `.git` on some filesystem: any case,
    HFS+ ignorable code points removed, NTFS trailing dots and spaces, 8.3 name `GIT~1`, and
    NTFS alternate data streams (`.git::$INDEX_ALLOCATION`)."""
    if part.isascii() and "git" not in part.lower():
        return False
    folded = "".join(c for c in part if ord(c) not in _HFS_IGNORABLE).casefold()
    folded = folded.split(":", 1)[0].rstrip(" .")
    return folded in (".git", "git~1")


def check_path(path: str) -> str:
    """A file path inside a repo: relative, no `..`, no control character or backslash, no empty
    segment, no segment ending in a space, no segment git would take for `.git`."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or not is_utf8(path):
        raise BadRequest(f"Invalid path: {shown(path)}")
    if _has_control(path) or "\\" in path or path.startswith("/") or path.endswith("/"):
        raise BadRequest(f"Invalid path: {shown(path)}")
    for part in path.split("/"):
        if part in ("", ".", "..") or part.endswith(" ") or is_dotgit(part):
            raise BadRequest(f"Invalid path: {shown(path)}")
    return path


def check_path_to_write(path: str) -> str:
    """A file path a commit or a preupload names: as `check_path`, refused with the Hub's 422."""
    try:
        return check_path(path)
    except BadRequest as exc:
        raise InvalidPath(exc.message) from None


def check_folder(path: str) -> str:
    """A folder path to read: like a file path, but may be empty (the root) or end with `/`."""
    path = path.strip("/") if isinstance(path, str) else path
    return "" if path == "" else check_path(path)


def check_folder_to_delete(path: str) -> str:
    """A folder named by a commit operation: relative and not the root (a trailing `/` is fine)."""
    if not isinstance(path, str):
        raise InvalidPath(f"Invalid path: {shown(path)}")
    return check_path_to_write(path.removesuffix("/"))


def _ref_format_ok(name: str) -> bool:
    """`git check-ref-format --allow-onelevel NAME`, plus no backslash."""
    if not name or name == "@" or "@{" in name or ".." in name or "//" in name:
        return False
    if name.startswith("/") or name.endswith(("/", ".")):
        return False
    if any(c in name for c in " ~^:?*[\\") or _has_control(name):
        return False
    return all(not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def check_revision(rev: str) -> str:
    """A revision to look up: a branch, tag, `refs/...` name or commit id in git's ref syntax."""
    if not isinstance(rev, str) or len(rev) > MAX_REVISION or not is_utf8(rev) or not _ref_format_ok(rev):
        raise BadRequest(f"Invalid revision: {shown(rev)}")
    return rev


def check_branch_name(name: str) -> str:
    """A new branch or tag name: what `git check-ref-format --branch` accepts, in printable ASCII
    (no look-alike of another name), and nothing that reads as a full ref name, a commit id,
    `HEAD` or an option."""
    if not isinstance(name, str) or not name.isascii() or not name.isprintable() or len(name) > MAX_REF_NAME:
        raise BadRequest(f"Invalid branch or tag name: {shown(name)}")
    if (
        not _ref_format_ok(name)
        or name.startswith(("refs/", "-"))
        or name == "HEAD"
        or is_commit_id(name)
    ):
        raise BadRequest(f"Invalid branch or tag name: {shown(name)}")
    return name


def is_commit_id(rev: str) -> bool:
    return bool(_COMMIT_RE.fullmatch(rev))
