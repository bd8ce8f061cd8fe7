"""The fake Hub's repositories: an on-disk layout written by tests and read by the server.

Layout under the repos folder (`--repos DIR`)::

    blobs/<sha256>                    content of files given as bytes (content-addressed)
    external/<sha256>                 a text file holding the absolute path of a file added by path
                                      (large benchmark files are never copied nor loaded in memory)
    repos/<type>/<quote(repo_id)>.json one manifest per repo: flags, refs and every commit

A commit records, for each file: its size, sha256, git blob id, whether it is LFS, and where its
bytes live. Git ids are real: a regular file's `oid` is sha1(b"blob %d\\0" + data); an LFS file's
`oid` is the sha1 of its git-lfs pointer blob (as on the real Hub); tree and commit ids are the
ones git would compute (dulwich objects), so a commit sha is 40-hex and depends only on the
content, the parent, the message and the (fixed by default) date.

Manifests are replaced atomically, so the server (another process) can read them at any time; it
re-reads a manifest whenever the file changes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from dulwich.objects import Commit, Tree

REPO_TYPES = ("model", "dataset", "space")
LFS_THRESHOLD = 1024 * 1024
LFS_PATTERNS = ("*.safetensors", "*.bin")
BASE_DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
HASH_CHUNK = 8 * 1024 * 1024

GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""

DEFAULT_LFS_GLOBS = [line.split()[0] for line in GITATTRIBUTES.decode().splitlines()]

FileSource = bytes | str | os.PathLike


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def xet_hash_for(sha256: str) -> str:
    """A stable 64-hex stand-in for the Xet merkle hash (the real one needs Xet's chunking)."""
    return hashlib.sha256(b"fakehub-xet:" + sha256.encode()).hexdigest()


def format_date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def repo_type_of(plural_or_singular: str) -> str:
    value = plural_or_singular.rstrip("s") if plural_or_singular.endswith("s") else plural_or_singular
    if value not in REPO_TYPES:
        raise ValueError(f"unknown repo type {plural_or_singular!r}")
    return value


def manifest_name(repo_id: str) -> str:
    return quote(repo_id, safe="") + ".json"


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    oid: str  # git blob id (of the pointer for LFS files)
    lfs: bool
    pointer_size: int | None
    src: str  # "blobs/<sha256>" (relative to the repos root) or an absolute path

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "oid": self.oid, "lfs": self.lfs,
                "pointerSize": self.pointer_size, "src": self.src}

    @classmethod
    def from_json(cls, path: str, data: Mapping[str, Any]) -> FileEntry:
        return cls(path, data["size"], data["sha256"], data["oid"], data["lfs"], data.get("pointerSize"), data["src"])


@dataclass
class CommitRecord:
    sha: str
    parents: list[str]
    title: str
    message: str
    date: str
    author: str
    files: dict[str, FileEntry]
    dirs: dict[str, str]  # folder path ("" = root) -> git tree id

    def to_json(self) -> dict[str, Any]:
        return {"parents": self.parents, "title": self.title, "message": self.message, "date": self.date,
                "author": self.author, "files": {p: f.to_json() for p, f in sorted(self.files.items())},
                "dirs": dict(sorted(self.dirs.items()))}

    @classmethod
    def from_json(cls, sha: str, data: Mapping[str, Any]) -> CommitRecord:
        return cls(sha, list(data["parents"]), data["title"], data["message"], data["date"], data["author"],
                   {p: FileEntry.from_json(p, f) for p, f in data["files"].items()}, dict(data["dirs"]))


@dataclass
class Repo:
    """A repo as the server sees it (read from its manifest)."""

    id: str
    type: str
    private: bool = False
    gated: bool | str = False
    granted: list[str] = field(default_factory=list)
    readers: list[str] | None = None
    disabled: bool = False
    xet: bool = True
    sdk: str | None = None
    created_at: str = format_date(BASE_DATE)
    heads: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, CommitRecord] = field(default_factory=dict)
    alias_of: str | None = None
    card_data: dict[str, Any] | None = None  # repo info's `cardData` (the Hub parses README.md)
    discussions: list[dict[str, Any]] = field(default_factory=list)  # details as the Hub answers them

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "private": self.private, "gated": self.gated,
                "granted": self.granted, "readers": self.readers, "disabled": self.disabled, "xet": self.xet,
                "sdk": self.sdk, "createdAt": self.created_at, "alias_of": self.alias_of,
                "cardData": self.card_data, "discussions": self.discussions,
                "refs": {"heads": self.heads, "tags": self.tags, "pr": self.prs},
                "commits": {sha: c.to_json() for sha, c in self.commits.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Repo:
        refs = data.get("refs", {})
        return cls(id=data["id"], type=data["type"], private=data.get("private", False),
                   gated=data.get("gated", False), granted=list(data.get("granted") or []),
                   readers=data.get("readers"), disabled=data.get("disabled", False), xet=data.get("xet", True),
                   sdk=data.get("sdk"), created_at=data.get("createdAt", format_date(BASE_DATE)),
                   heads=dict(refs.get("heads", {})), tags=dict(refs.get("tags", {})), prs=dict(refs.get("pr", {})),
                   commits={sha: CommitRecord.from_json(sha, c) for sha, c in data.get("commits", {}).items()},
                   alias_of=data.get("alias_of"), card_data=data.get("cardData"),
                   discussions=list(data.get("discussions") or []))

    # -- revisions -----------------------------------------------------------------------------
    def resolve(self, rev: str) -> CommitRecord | None:
        """Branch, tag, `refs/heads/x`, `refs/tags/x`, `refs/pr/N` or a full commit sha."""
        if rev in self.heads:
            return self.commits.get(self.heads[rev])
        if rev in self.tags:
            return self.commits.get(self.tags[rev])
        for prefix, table in (("refs/heads/", self.heads), ("refs/tags/", self.tags), ("refs/pr/", self.prs)):
            if rev.startswith(prefix) and rev[len(prefix):] in table:
                return self.commits.get(table[rev[len(prefix):]])
        if re.fullmatch(r"[0-9a-f]{40}", rev):
            return self.commits.get(rev)
        return None

    def history(self, commit: CommitRecord) -> list[CommitRecord]:
        """First-parent history, newest first."""
        out: list[CommitRecord] = []
        current: CommitRecord | None = commit
        while current is not None:
            out.append(current)
            current = self.commits.get(current.parents[0]) if current.parents else None
        return out

    def last_commit_for(self, commit: CommitRecord, path: str, is_dir: bool) -> CommitRecord:
        def key(c: CommitRecord) -> str | None:
            if is_dir:
                return c.dirs.get(path)
            entry = c.files.get(path)
            return entry.oid if entry else None

        wanted = key(commit)
        last = commit
        for older in self.history(commit)[1:]:
            if key(older) != wanted:
                break
            last = older
        return last

    def xet_hash(self, entry: FileEntry) -> str | None:
        return xet_hash_for(entry.sha256) if (self.xet and entry.lfs) else None


# ------------------------------------------------------------------------------------------------
class RepoStore:
    """Reads and writes the on-disk layout. Writers: the tests' helper; reader: the server."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        for sub in ("blobs", "external", *(f"repos/{t}" for t in REPO_TYPES)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._cache: dict[Path, tuple[tuple[int, int, int], Repo]] = {}
        self._lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------------
    def manifest_path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / manifest_name(repo_id)

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        path = self.manifest_path(repo_type, repo_id)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # manifests are replaced: a new inode each time
        with self._lock:
            cached = self._cache.get(path)
            if cached and cached[0] == stamp:
                return cached[1]
        try:
            repo = Repo.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        with self._lock:
            self._cache[path] = (stamp, repo)
        return repo

    def list(self, repo_type: str) -> list[Repo]:
        out = []
        for path in sorted((self.root / "repos" / repo_type).glob("*.json")):
            repo = self.get(repo_type, unquote(path.name[: -len(".json")]))
            if repo is not None and repo.alias_of is None:
                out.append(repo)
        return out

    def source_path(self, entry: FileEntry) -> Path:
        return Path(entry.src) if os.path.isabs(entry.src) else self.root / entry.src

    def path_for_sha256(self, sha256: str) -> Path | None:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            return None
        blob = self.root / "blobs" / sha256
        if blob.is_file():
            return blob
        ext = self.root / "external" / sha256
        if ext.is_file():
            target = Path(ext.read_text().strip())
            return target if target.is_file() else None
        return None

    # -- writing -------------------------------------------------------------------------------
    def _write_manifest(self, repo: Repo) -> None:
        path = self.manifest_path(repo.type, repo.id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(repo.to_json(), indent=1))
        os.replace(tmp, path)

    def _ingest(self, path: str, value: FileSource, lfs_threshold: int, lfs_patterns: Iterable[str]) -> FileEntry:
        if isinstance(value, str):
            value = value.encode()
        matches_pattern = any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in lfs_patterns)
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            sha256 = hashlib.sha256(data).hexdigest()
            blob = self.root / "blobs" / sha256
            if not blob.exists():
                tmp = blob.with_name(f".{sha256}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, blob)
            size, src, sha1 = len(data), f"blobs/{sha256}", None
            lfs = size >= lfs_threshold or matches_pattern
            if not lfs:
                sha1 = git_blob_id(data)
        else:
            source = Path(value).resolve()
            size = source.stat().st_size
            lfs = size >= lfs_threshold or matches_pattern
            sha256, sha1 = self._hash_file(source, want_sha1=not lfs)
            ext = self.root / "external" / sha256
            ext.write_text(str(source))
            src = str(source)
        if lfs:
            pointer = lfs_pointer(sha256, size)
            return FileEntry(path, size, sha256, git_blob_id(pointer), True, len(pointer), src)
        assert sha1 is not None
        return FileEntry(path, size, sha256, sha1, False, None, src)

    def _hash_file(self, source: Path, want_sha1: bool) -> tuple[str, str | None]:
        """sha256 (and git sha1) of a file, streamed; cached by (path, size, mtime) for big files."""
        st = source.stat()
        cache_file = self.root / "hashcache.json"
        key = f"{source}|{st.st_size}|{st.st_mtime_ns}"
        try:
            cache = json.loads(cache_file.read_text())
        except (FileNotFoundError, ValueError):
            cache = {}
        hit = cache.get(key)
        if hit and (hit[1] or not want_sha1):
            return hit[0], hit[1]
        h256 = hashlib.sha256()
        h1 = hashlib.sha1(b"blob %d\0" % st.st_size) if want_sha1 else None
        with open(source, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                h256.update(chunk)
                if h1 is not None:
                    h1.update(chunk)
        result = (h256.hexdigest(), h1.hexdigest() if h1 else None)
        cache[key] = list(result)
        tmp = cache_file.with_name(f".hashcache.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
        return result

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileSource],
        *,
        repo_type: str = "model",
        branch: str = "main",
        tags: Iterable[str] = (),
        private: bool | None = None,
        gated: bool | str | None = None,
        granted: Iterable[str] | None = None,
        readers: Iterable[str] | None = None,
        xet: bool | None = None,
        sdk: str | None = None,
        message: str | None = None,
        date: datetime | None = None,
        author: str = "fakehub",
        gitattributes: bool = True,
        replace: bool = True,
        lfs_threshold: int = LFS_THRESHOLD,
        lfs_patterns: Iterable[str] = LFS_PATTERNS,
    ) -> CommitRecord:
        """Create the repo if needed and commit `files` on `branch`; returns the new commit.

        `files` maps repo paths to bytes, text, or a filesystem path (referenced, never copied).
        With `replace=True` (default) the commit holds exactly `files` (plus a generated
        `.gitattributes` unless `gitattributes=False` or one is given);
        with `replace=False` they are added on top of the branch's current files.
        Calling it again on an existing repo makes a new commit (parent = branch head, or the
        main head for a new branch). Flags left as None keep their current value.
        """
        repo_type = repo_type_of(repo_type)
        repo = self.get(repo_type, repo_id) or Repo(id=repo_id, type=repo_type)
        if private is not None:
            repo.private = private
        if gated is not None:
            repo.gated = "manual" if gated is True else gated
        if granted is not None:
            repo.granted = list(granted)
        elif not repo.granted and repo.gated:
            repo.granted = ["alice"]
        if readers is not None:
            repo.readers = list(readers)
        if xet is not None:
            repo.xet = xet
        if sdk is not None or (repo_type == "space" and repo.sdk is None):
            repo.sdk = sdk or "gradio"

        if branch.startswith("refs/pr/"):
            table, name = repo.prs, branch[len("refs/pr/"):]
        else:
            table, name = repo.heads, branch.removeprefix("refs/heads/")
        parent_sha = table.get(name) or repo.heads.get("main")
        parent = repo.commits.get(parent_sha) if parent_sha else None

        entries: dict[str, FileEntry] = {} if (replace or parent is None) else dict(parent.files)
        for path, value in files.items():
            path = path.strip("/")
            entries[path] = self._ingest(path, value, lfs_threshold, lfs_patterns)
        if gitattributes and ".gitattributes" not in files:
            # Like the Hub: the default patterns, plus one line per LFS file they do not cover.
            extra = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p, e in sorted(entries.items())
                            if e.lfs and not any(fnmatch.fnmatch(p.rsplit("/", 1)[-1], pat) for pat in DEFAULT_LFS_GLOBS))
            entries[".gitattributes"] = self._ingest(".gitattributes", GITATTRIBUTES + extra.encode(), lfs_threshold, ())

        dirs = build_trees(entries)
        index = len(repo.history(parent)) if parent else 0
        when = date or (BASE_DATE.replace(tzinfo=UTC) + _seconds(index * 60))
        title = message or ("initial commit" if parent is None else f"Update {branch} ({index})")
        commit = Commit()
        commit.tree = dirs[""].encode()
        commit.parents = [parent.sha.encode()] if parent else []
        ident = f"{author} <{author}@users.noreply.huggingface.co>".encode()
        commit.author = commit.committer = ident
        commit.author_time = commit.commit_time = int(when.timestamp())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = title.encode() + b"\n"
        sha = commit.id.decode()
        record = CommitRecord(sha, [parent.sha] if parent else [], title.splitlines()[0], title, format_date(when),
                              author, entries, dirs)
        repo.commits[sha] = record
        table[name] = sha
        for tag in tags:
            repo.tags[tag] = sha
        self._write_manifest(repo)
        return record

    def update_repo(self, repo_id: str, *, repo_type: str = "model", **flags: Any) -> None:
        """Change flags (private, gated, granted, readers, disabled, xet), refs (`tags`, `heads` dicts),
        `card_data` (repo info's `cardData`) or `discussions` (details dicts as the Hub answers them)."""
        repo_type = repo_type_of(repo_type)
        repo = self.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        for key, value in flags.items():
            if key == "gated" and value is True:
                value = "manual"
            if not hasattr(repo, key):
                raise TypeError(f"unknown repo attribute {key!r}")
            setattr(repo, key, value)
        self._write_manifest(repo)

    def add_alias(self, old_id: str, new_id: str, *, repo_type: str = "model") -> None:
        """Make `old_id` a renamed repo: API calls answer for `new_id`, resolve redirects to it."""
        repo_type = repo_type_of(repo_type)
        self._write_manifest(Repo(id=old_id, type=repo_type, alias_of=new_id))

    def delete_repo(self, repo_id: str, *, repo_type: str = "model") -> None:
        self.manifest_path(repo_type_of(repo_type), repo_id).unlink(missing_ok=True)


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def build_trees(entries: Mapping[str, FileEntry]) -> dict[str, str]:
    """Git tree ids of every folder ("" = root) holding `entries`."""
    children: dict[str, dict[str, tuple[int, str | None]]] = {"": {}}
    for path in entries:
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            parent, name = "/".join(parts[:depth]), parts[depth]
            children.setdefault(parent, {})[name] = (0o040000, None)
            children.setdefault("/".join(parts[: depth + 1]), {})
        children.setdefault("/".join(parts[:-1]), {})[parts[-1]] = (0o100644, entries[path].oid)
    ids: dict[str, str] = {}
    for folder in sorted(children, key=lambda p: -p.count("/") - (1 if p else 0)):
        tree = Tree()
        for name, (mode, oid) in children[folder].items():
            if oid is None:
                oid = ids[f"{folder}/{name}" if folder else name]
            tree.add(name.encode(), mode, oid.encode())
        ids[folder] = tree.id.decode()
    return ids
