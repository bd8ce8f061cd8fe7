"""Resolve requests into a lock: the commit each revision names now, and every file's identity.

LFS files carry their SHA-256 in the tree listing; regular files (configs, tokenizers) are small
and are downloaded once to hash them, checked against their git blob id on the way.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from typing import Any

from hubgate.client.lockfile import Lock, LockedFile, LockedRepo, Request
from hubgate.client.remote import Endpoint, Hubs, RemoteError
from hubgate.git.blobid import blob_hasher


def selected(path: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """huggingface_hub's allow/ignore patterns: a trailing `/` means everything below."""
    def match(pattern: str) -> bool:
        return fnmatch(path, pattern + "*" if pattern.endswith("/") else pattern)

    return (not include or any(match(p) for p in include)) and not any(match(p) for p in exclude)


def _hash_regular(hubs: Hubs, request: Request, commit: str, item: dict[str, Any]) -> LockedFile:
    size = int(item["size"])

    def attempt(ep: Endpoint) -> LockedFile:
        sha256, sha1, got = hashlib.sha256(), blob_hasher(size), 0
        with hubs.stream(ep, request.ref, commit, item["path"]) as response:
            for chunk in response.iter_raw():
                sha256.update(chunk)
                sha1.update(chunk)
                got += len(chunk)
        if got != size or sha1.hexdigest() != item["oid"]:
            raise RemoteError(ep.url, f"{item['path']}: the bytes do not match the tree's git blob id {item['oid']}")
        return LockedFile(item["path"], size, sha256.hexdigest(), item["oid"], False)

    return hubs.first(attempt)


def lock_repo(hubs: Hubs, request: Request, pool: ThreadPoolExecutor) -> LockedRepo:
    commit, endpoint = hubs.resolve(request.ref, request.revision)
    entries = [e for e in hubs.tree(endpoint, request.ref, commit) if selected(e["path"], request.include, request.exclude)]
    files: list[LockedFile] = []
    regular = []
    for item in entries:
        lfs = item.get("lfs")
        if lfs:
            files.append(LockedFile(item["path"], int(lfs["size"]), str(lfs["oid"]), str(item["oid"]), True))
        else:
            regular.append(item)
    files += pool.map(lambda item: _hash_regular(hubs, request, commit, item), regular)
    return LockedRepo(request, commit, tuple(sorted(files, key=lambda f: f.path)))


def resolve(hubs: Hubs, requests: list[Request], endpoint_texts: tuple[str, ...]) -> Lock:
    with ThreadPoolExecutor(8) as pool:
        return Lock(tuple(lock_repo(hubs, r, pool) for r in requests), endpoint_texts)
