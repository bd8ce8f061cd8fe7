"""Repo types, repo ids, file paths and revisions, validated once at the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hubgate import constants
from hubgate.errors import BadRequest

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


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
    if not isinstance(value, str) or not _NAME_RE.match(value) or ".." in value or value.endswith(".git"):
        raise BadRequest(f"Invalid {what}: {shown(value)}")
    return value


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

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

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


def check_path(path: str) -> str:
    """A file path inside a repo: relative, no `..`, no NUL or backslash, no empty segment."""
    if not isinstance(path, str) or not path or len(path) > 1024 or not is_utf8(path):
        raise BadRequest(f"Invalid path: {shown(path)}")
    if "\x00" in path or "\\" in path or path.startswith("/") or path.endswith("/"):
        raise BadRequest(f"Invalid path: {shown(path)}")
    for part in path.split("/"):
        if part in ("", ".", "..") or part == ".git":
            raise BadRequest(f"Invalid path: {shown(path)}")
    return path


def check_folder(path: str) -> str:
    """A folder path to read: like a file path, but may be empty (the root) or end with `/`."""
    path = path.strip("/") if isinstance(path, str) else path
    return "" if path == "" else check_path(path)


def check_folder_to_delete(path: str) -> str:
    """A folder named by a commit operation: relative and not the root (a trailing `/` is fine)."""
    if not isinstance(path, str):
        raise BadRequest(f"Invalid path: {shown(path)}")
    return check_path(path[:-1] if path.endswith("/") else path)


def check_revision(rev: str) -> str:
    if not isinstance(rev, str) or not rev or len(rev) > 255 or not is_utf8(rev):
        raise BadRequest(f"Invalid revision: {shown(rev)}")
    if "\x00" in rev or "\\" in rev or ".." in rev or rev.startswith("/") or rev.endswith("/") or "//" in rev:
        raise BadRequest(f"Invalid revision: {shown(rev)}")
    if any(c in rev for c in " ~^:?*[") or any(ord(c) < 32 for c in rev):
        raise BadRequest(f"Invalid revision: {shown(rev)}")
    return rev


def check_branch_name(name: str) -> str:
    """A new branch or tag name: a revision that `git check-ref-format` also accepts, and that
    cannot be mistaken for a full ref name or a commit id."""
    check_revision(name)
    if name.startswith("refs/") or is_commit_id(name) or name == "@" or "@{" in name or "\x7f" in name:
        raise BadRequest(f"Invalid branch or tag name: {shown(name)}")
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".") or part.endswith(".lock"):
            raise BadRequest(f"Invalid branch or tag name: {shown(name)}")
    return name


def is_commit_id(rev: str) -> bool:
    return bool(_COMMIT_RE.match(rev))
