"""The lockfile: per repo the requested revision, the resolved commit and every file's identity.

It is TOML, one file per line, sorted, so a change of weights is a readable one-line diff:

    version = 1

    [[repo]]
    id = "team/voice"
    type = "model"
    revision = "v23"
    commit = "0123...40 hex"
    files = [
      { path = "config.json", size = 512, sha256 = "...", blob = "...", lfs = false },
    ]
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubgate import constants
from hubgate.errors import BadRequest
from hubgate.ids import RepoRef, check_path, check_revision, is_commit_id

VERSION = 1


class LockError(BadRequest):
    """A lockfile or spec that cannot be read or used."""


@dataclass(frozen=True)
class LockedFile:
    path: str
    size: int
    sha256: str
    blob: str  # git blob id of the file in the commit's tree (of the LFS pointer for LFS files)
    lfs: bool

    @property
    def etag(self) -> str:
        """The name huggingface_hub gives this file's blob in its cache."""
        return self.sha256 if self.lfs else self.blob


@dataclass(frozen=True)
class Request:
    """What a user asked for: a repo at a revision, optionally narrowed by globs."""

    ref: RepoRef
    revision: str = constants.DEFAULT_BRANCH
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, repo_type: str = "model", include: tuple[str, ...] = (),
              exclude: tuple[str, ...] = ()) -> Request:
        """`namespace/name[@revision]`."""
        repo_id, _, revision = text.partition("@")
        return cls(RepoRef.parse(repo_type, repo_id), check_revision(revision or constants.DEFAULT_BRANCH),
                   tuple(include), tuple(exclude))


@dataclass(frozen=True)
class LockedRepo:
    request: Request
    commit: str
    files: tuple[LockedFile, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> RepoRef:
        return self.request.ref

    @property
    def label(self) -> str:
        return f"{self.ref}@{self.request.revision}"


@dataclass(frozen=True)
class Lock:
    repos: tuple[LockedRepo, ...]
    endpoints: tuple[str, ...] = ()

    def all_files(self) -> list[tuple[LockedRepo, LockedFile]]:
        return [(repo, f) for repo in self.repos for f in repo.files]


# -- reading ---------------------------------------------------------------------------------
def _str_list(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LockError(f"{what} must be a list of strings")
    return tuple(value)


def _request(table: dict[str, Any], where: str) -> Request:
    try:
        ref = RepoRef.parse(str(table.get("type", "model")), str(table["id"]))
        return Request(ref, check_revision(str(table.get("revision", constants.DEFAULT_BRANCH))),
                       _str_list(table.get("include", []), f"{where}: include"),
                       _str_list(table.get("exclude", []), f"{where}: exclude"))
    except KeyError as exc:
        raise LockError(f"{where}: missing key {exc}") from exc
    except BadRequest as exc:
        raise LockError(f"{where}: {exc.message}") from exc


def _file(item: object, where: str) -> LockedFile:
    if not isinstance(item, dict):
        raise LockError(f"{where}: a file entry must be a table")
    try:
        f = LockedFile(check_path(item["path"]), int(item["size"]), str(item["sha256"]), str(item["blob"]),
                       bool(item.get("lfs", False)))
    except (KeyError, TypeError, ValueError, BadRequest) as exc:
        raise LockError(f"{where}: bad file entry {item!r}") from exc
    if f.size < 0 or len(f.sha256) != 64 or not all(c in "0123456789abcdef" for c in f.sha256) or not is_commit_id(f.blob):
        raise LockError(f"{where}: bad file entry {item!r}")
    return f


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{source} is not valid TOML: {exc}") from exc


def _tables(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    tables = data.get("repo", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise LockError(f"{source}: `repo` must be an array of tables ([[repo]])")
    return tables


def read_lock(path: Path) -> Lock:
    if not path.is_file():
        raise LockError(f"no lockfile at {path} (create one with `hubgate lock REPO[@REVISION]`)")
    data = _parse(path.read_text(encoding="utf-8"), str(path))
    if data.get("version") != VERSION:
        raise LockError(f"{path}: unsupported lockfile version {data.get('version')!r} (expected {VERSION})")
    repos = []
    for n, table in enumerate(_tables(data, str(path))):
        where = f"{path}: repo #{n + 1}"
        request = _request(table, where)
        commit = str(table.get("commit", ""))
        if not is_commit_id(commit):
            raise LockError(f"{where}: commit must be 40 lowercase hex digits")
        files = tuple(_file(item, where) for item in table.get("files", []))
        repos.append(LockedRepo(request, commit, files))
    return Lock(tuple(repos), _str_list(data.get("endpoints", []), f"{path}: endpoints"))


def read_spec(path: Path) -> list[Request]:
    """A spec file: `[[repo]]` tables with id, and optionally type, revision, include, exclude."""
    if not path.is_file():
        raise LockError(f"no spec file at {path}")
    data = _parse(path.read_text(encoding="utf-8"), str(path))
    return [_request(table, f"{path}: repo #{n + 1}") for n, table in enumerate(_tables(data, str(path)))]


# -- writing ---------------------------------------------------------------------------------
def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, except DEL which TOML wants escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _qlist(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def dumps(lock: Lock) -> str:
    lines = ["# Written by `hubgate lock`: commit this file; `hubgate pull` fetches exactly these bytes.",
             f"version = {VERSION}"]
    if lock.endpoints:
        lines.append(f"endpoints = {_qlist(lock.endpoints)}")
    for repo in lock.repos:
        req = repo.request
        lines += ["", "[[repo]]", f"id = {_q(req.ref.repo_id)}", f"type = {_q(req.ref.type)}",
                  f"revision = {_q(req.revision)}", f"commit = {_q(repo.commit)}"]
        if req.include:
            lines.append(f"include = {_qlist(req.include)}")
        if req.exclude:
            lines.append(f"exclude = {_qlist(req.exclude)}")
        lines.append("files = [")
        for f in sorted(repo.files, key=lambda f: f.path):
            lines.append(f"  {{ path = {_q(f.path)}, size = {f.size}, sha256 = {_q(f.sha256)}, "
                         f"blob = {_q(f.blob)}, lfs = {str(f.lfs).lower()} }},")
        lines.append("]")
    return "\n".join(lines) + "\n"


def write_lock(lock: Lock, path: Path) -> None:
    """Replace `path` atomically: a reader sees the old lock or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(lock), encoding="utf-8")
    tmp.replace(path)


# -- comparing -------------------------------------------------------------------------------
def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def diff(old: Lock | None, new: Lock) -> list[str]:
    """What changed from `old` to `new`, one human-readable line each (empty: nothing)."""
    before = {(r.ref, r.request.revision): r for r in (old.repos if old else ())}
    after = {(r.ref, r.request.revision): r for r in new.repos}
    lines: list[str] = []
    for key in before.keys() - after.keys():
        lines.append(f"- {before[key].label}: no longer locked")
    for key, repo in after.items():
        prev = before.get(key)
        if prev is None:
            lines.append(f"+ {repo.label}: {repo.commit} ({len(repo.files)} files, {_size(sum(f.size for f in repo.files))})")
            continue
        if prev.commit != repo.commit:
            lines.append(f"~ {repo.label}: commit {prev.commit} -> {repo.commit}")
        old_files = {f.path: f for f in prev.files}
        new_files = {f.path: f for f in repo.files}
        for path in sorted(old_files.keys() | new_files.keys()):
            a, b = old_files.get(path), new_files.get(path)
            if a is None and b is not None:
                lines.append(f"    added    {path} ({_size(b.size)})")
            elif b is None and a is not None:
                lines.append(f"    removed  {path} ({_size(a.size)})")
            elif a is not None and b is not None and a.sha256 != b.sha256:
                lines.append(f"    changed  {path} ({_size(a.size)} -> {_size(b.size)})")
    return lines
