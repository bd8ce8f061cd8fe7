"""A repo served from upstream hubs through the cache: the same interface as a hosted repo.

Commits are immutable, so a commit's info and full tree are fetched once and kept forever;
branches and tags are re-resolved after `revision_ttl` and, when every upstream fails, the last
known mapping is served with an `X-Hubgate-Stale` header.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from hubgate.errors import EntryNotFound, GatedRepo, HubError, RepoDisabled, RepoNotFound, RevisionNotFound
from hubgate.git.objects import CommitData
from hubgate.ids import RepoRef, check_path, is_commit_id
from hubgate.mirror.fetcher import Fetcher, FileSource, TransferFailed
from hubgate.mirror.trees import CommitTree
from hubgate.mirror.upstream import Upstream, UpstreamError, UpstreamMissing, origin, raise_for_missing
from hubgate.repos.base import Content, Entry, LfsInfo, RepoMeta, stored_content
from hubgate.repos.modelcard import CARD, CARD_DATA_LIMIT, card_data

if TYPE_CHECKING:
    from hubgate.mirror.cache import KnownRevision
    from hubgate.mirror.service import Mirror

log = logging.getLogger("hubgate.mirror")

_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Kept inside a cached repo info: whose credential fetched it ("server" or "client").
VIA_KEY = "_hubgate_via"
# A Range starting this far beyond the bytes already fetched is proxied from upstream directly.
DIRECT_RANGE_GAP = 4 * 1024 * 1024
# Longest wait for an upstream's first answer about a cold file before our answer starts anyway.
FIRST_ANSWER_TIMEOUT = 60.0


class UpstreamUnavailable(HubError):
    """No upstream answered and nothing usable is cached. Clients learn only that; which upstream
    failed and how (names, addresses, errors) goes to the log and the admin status."""

    status = 503

    def __init__(self, what: str, detail: object = None) -> None:
        super().__init__(f"Upstream unavailable: cannot get {what}")
        if detail is not None:
            log.warning("upstream unavailable for %s: %s", what, detail)


class NotCached(UpstreamUnavailable):
    """Offline, and not in the cache: said the same way for repos' revisions, trees, files, history."""

    def __init__(self, what: str) -> None:
        HubError.__init__(self, f"{what} is not cached (hubgate runs offline)")


def parse_date(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime(1970, 1, 1)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC).replace(tzinfo=None)


def missing_to_error(ref: RepoRef, exc: UpstreamMissing, what: str) -> HubError:
    if disabled(exc):
        return RepoDisabled(status=exc.status)
    if exc.code == "RevisionNotFound":
        return RevisionNotFound(what)
    if exc.code == "EntryNotFound":
        return EntryNotFound(what)
    if exc.code == "GatedRepo":
        anonymous = exc.status == 401
        if exc.message:  # the upstream's words: its gate, and its page to ask for access
            return GatedRepo(exc.message, anonymous=anonymous)
        return GatedRepo.refused(ref.type, ref.repo_id, None, anonymous=anonymous)  # asked for upstream
    return RepoNotFound(str(ref), anonymous=False)


def disabled(exc: UpstreamMissing) -> bool:
    """Whether upstream refused because the repo is disabled (said only in its message, as the Hub does)."""
    return exc.message.strip() == RepoDisabled.MESSAGE


class MirroredRepository:
    def __init__(self, mirror: Mirror, ref: RepoRef, info: dict[str, Any], upstream: str, token: str | None,
                 revisions: dict[str, KnownRevision] | None = None) -> None:
        """`revisions`: what the cache knew of the repo's branches and tags as it was opened, read in the
        same transaction as its info; used by the first `resolve` only (any later one reads the cache)."""
        self.mirror = mirror
        self.ref = ref
        self._token = token
        self._revisions = dict(revisions) if revisions is not None else None
        self._stale = False
        restricted = bool(info.get("private")) or bool(info.get("gated"))
        # What a client's own token fetched is for callers upstream vouches for, nobody else.
        readers = mirror.restricted_readers if info.get(VIA_KEY) != "client" else "nobody"
        self.meta = RepoMeta(
            ref=ref,
            private=bool(info.get("private")),
            gated=info.get("gated") or None,
            created_at=parse_date(info.get("createdAt")),
            sdk=info.get("sdk"),
            source=upstream,
            readers=readers if restricted else "anyone",
        )

    @property
    def _fetcher(self) -> Fetcher:
        return self.mirror.fetcher

    def token_for(self, upstream: Upstream) -> str | None:
        return credentials(self._token)(upstream)

    def response_headers(self) -> dict[str, str]:
        return {"X-Hubgate-Stale": "1"} if self._stale else {}

    def _api(self, suffix: str) -> str:
        return f"/api/{self.ref.plural}/{self.ref.repo_id}{suffix}"

    # -- revisions -------------------------------------------------------------------------
    def resolve(self, revision: str) -> str:
        cache = self.mirror.cache
        key = (self.ref.type, self.ref.repo_id)
        if is_commit_id(revision) and ((*key, revision) in self.mirror.trees or cache.has_commit(*key, revision)):
            return revision
        known = self._revisions.pop(revision, None) if self._revisions is not None else cache.revision(*key, revision)
        self._revisions = None
        if known and (self.mirror.offline or time.time() - known.fetched_at < self.mirror.settings.revision_ttl):
            return known.commit
        if self.mirror.offline:
            raise NotCached(f"Revision {revision} of {self.ref}")
        try:
            info, upstream = self.mirror.fetch_info(self.ref, revision, self.token_for)
        except UpstreamMissing as exc:
            if exc.code in (None, "RepoNotFound") and revision != "main" and self._exists():
                raise RevisionNotFound(revision) from exc  # some mirrors say RepoNotFound for any missing thing
            raise missing_to_error(self.ref, exc, revision) from exc
        except UpstreamError as exc:
            if known is None:
                raise UpstreamUnavailable(f"revision {revision} of {self.ref}", exc) from exc
            self._stale = True
            return known.commit
        sha: str = info["sha"]
        return sha

    def _exists(self) -> bool:
        try:
            self.mirror.fetch_info(self.ref, "main", self.token_for)
        except (UpstreamMissing, UpstreamError):
            return False
        return True

    def _info(self, commit: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        found = self.mirror.cache.commit(self.ref.type, self.ref.repo_id, commit)
        if found is None:
            self.resolve(commit)
            found = self.mirror.cache.commit(self.ref.type, self.ref.repo_id, commit)
        if found is None:
            raise RevisionNotFound(commit)
        return found

    def commit(self, sha1: str) -> CommitData:
        info, _ = self._info(sha1)
        stamp = int(parse_date(info.get("lastModified")).replace(tzinfo=dt.UTC).timestamp())
        return CommitData(sha1, "", (), info.get("author") or "", stamp, "")

    def history(self, sha1: str) -> Iterator[CommitData]:
        if self.mirror.offline:
            raise NotCached(f"The commit history of {self.ref}")
        url: str | None = self._api(f"/commits/{sha1}")
        while url:
            def attempt(upstream: Upstream, url: str = url) -> tuple[list[dict[str, Any]], str | None]:
                response = upstream.request("GET", url, token=self.token_for(upstream))
                raise_for_missing(upstream, response)
                return response.json(), _next_link(upstream, response)

            try:
                (items, url), _ = self.mirror.upstreams.first(attempt)
            except UpstreamMissing as exc:
                raise missing_to_error(self.ref, exc, sha1) from exc
            except UpstreamError as exc:
                raise UpstreamUnavailable(f"the commit history of {self.ref}", exc) from exc
            for item in items:
                stamp = int(parse_date(item.get("date")).replace(tzinfo=dt.UTC).timestamp())
                authors = item.get("authors") or [{}]
                message = item.get("message") or item.get("title") or ""
                yield CommitData(item["id"], "", (), authors[0].get("user", ""), stamp, message)

    def _refs(self, with_prs: bool = False) -> dict[str, Any]:
        if self.mirror.offline:
            raise UpstreamError("offline", "offline")
        params = {"include_prs": "1"} if with_prs else None

        def attempt(upstream: Upstream) -> dict[str, Any]:
            response = upstream.request("GET", self._api("/refs"), token=self.token_for(upstream), params=params)
            raise_for_missing(upstream, response)
            refs: dict[str, Any] = response.json()
            return refs

        return self.mirror.upstreams.first(attempt)[0]

    def _named(self, kind: str) -> dict[str, str]:
        try:
            return {item["name"]: item["targetCommit"] for item in self._refs().get(kind, [])}
        except UpstreamMissing as exc:
            raise missing_to_error(self.ref, exc, kind) from exc
        except UpstreamError:
            known = self.mirror.cache.revisions(self.ref.type, self.ref.repo_id)
            self._stale = True
            return {name: sha for name, sha in known.items() if not is_commit_id(name)} if kind == "branches" else {}

    def branches(self) -> dict[str, str]:
        return self._named("branches")

    def tags(self) -> dict[str, str]:
        return self._named("tags")

    def pull_requests(self) -> dict[str, str]:
        """The upstream's pull request refs, as it has them (none when it cannot be asked)."""
        try:
            items = self._refs(with_prs=True).get("pullRequests") or []
            return {item["ref"]: item["targetCommit"] for item in items}
        except UpstreamMissing as exc:
            raise missing_to_error(self.ref, exc, "pullRequests") from exc
        except UpstreamError:
            self._stale = True
            return {}

    def card_data(self, commit: str) -> dict[str, Any] | None:
        """The upstream's `cardData` for this commit; else, from a README.md already cached here."""
        info, _ = self._info(commit)
        if isinstance(info.get("cardData"), dict):
            found: dict[str, Any] = info["cardData"]
            return found
        try:
            entry = self.describe(commit, CARD)
        except EntryNotFound:
            return None
        sha256 = None if entry.lfs or entry.size > CARD_DATA_LIMIT else self._fetcher.cached(self.source(commit, entry))
        if sha256 is None:
            return None
        try:
            return card_data(b"".join(self.mirror.blobs.read(sha256, 0, entry.size - 1)) if entry.size else b"")
        except FileNotFoundError:  # evicted meanwhile
            return None

    # -- trees -----------------------------------------------------------------------------
    def _tree(self, commit: str) -> CommitTree:
        key = (self.ref.type, self.ref.repo_id, commit)
        known = self.mirror.trees.get(key)
        if known is not None:
            return known
        _, entries = self._info(commit)
        if entries is None:
            entries = self._fetched_tree(commit)
        tree = CommitTree(entries)
        self.mirror.trees.put(key, tree)
        return tree

    def _fetched_tree(self, commit: str) -> list[dict[str, Any]]:
        if self.mirror.offline:
            raise NotCached(f"The file list of {self.ref} at {commit}")
        try:
            fetched, _ = self.mirror.upstreams.first(lambda upstream: self._fetch_tree(upstream, commit))
        except UpstreamMissing as exc:
            raise missing_to_error(self.ref, exc, commit) from exc
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"the file list of {self.ref} at {commit}", exc) from exc
        self.mirror.cache.remember_tree(self.ref.type, self.ref.repo_id, commit, fetched)
        return fetched

    def _fetch_tree(self, upstream: Upstream, commit: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        url: str | None = self._api(f"/tree/{commit}")
        params: dict[str, str] | None = {"recursive": "true", "expand": "false"}
        while url:
            response = upstream.request("GET", url, token=self.token_for(upstream), params=params)
            raise_for_missing(upstream, response)
            for item in response.json():
                entries.append(_checked_entry(upstream, item))  # xetHash and other upstream-only fields stay behind
            url, params = _next_link(upstream, response), None
        return entries

    def list_tree(self, commit: str, path: str = "", recursive: bool = False) -> list[Entry]:
        tree = self._tree(commit)
        if path and path not in tree.directories:
            raise EntryNotFound(path or "/", commit=commit)
        prefix = f"{path}/" if path else ""
        found = []
        for item in tree.entries:
            rest = item["path"][len(prefix):] if item["path"].startswith(prefix) else None
            if rest and (recursive or "/" not in rest):
                found.append(_entry(item))
        return found

    def describe(self, commit: str, path: str) -> Entry:
        item = self._tree(commit).files.get(path)
        if item is None:
            raise EntryNotFound(path, commit=commit)
        return _entry(item)

    # -- bytes -----------------------------------------------------------------------------
    def source(self, commit: str, entry: Entry) -> FileSource:
        url_path = f"/{self.ref.url_path}/resolve/{commit}/{quote(entry.path)}"
        if entry.lfs:
            return FileSource(entry.lfs.sha256, entry.lfs.size, True, url_path)
        return FileSource(entry.oid, entry.size, False, url_path)

    def open(self, entry: Entry, commit: str | None = None) -> Content:
        if commit is None:
            raise ValueError("a mirrored file is opened at a commit")
        src = self.source(commit, entry)
        sha256 = self._fetcher.cached(src)
        # From the store as a hosted file is (its file, a stream, or a presigned URL for LFS files as the Hub does).
        stored = stored_content(self.mirror.blobs, sha256, src.size, redirect=src.lfs) if sha256 is not None else None
        cache = self.mirror.cache
        cache.record_access(src.oid, stored is not None)
        if stored is not None:  # whether it was ever served bad is asked only by a Range request that needs it
            return replace(stored, resumable=lambda: not cache.served_bad(src.oid), refetchable=True)
        resumable = not cache.served_bad(src.oid)
        if self.mirror.offline:
            raise NotCached(f"File {entry.path} of {self.ref}")
        started = self._fetcher.begin(src, self.token_for)
        if started is not None:
            # The upstream's first answer decides ours: its refusal, not a 200 that breaks.
            try:
                started.wait(FIRST_ANSWER_TIMEOUT)
            except UpstreamMissing as exc:
                raise refused_file(exc, entry.path, commit) from exc
            except UpstreamError as exc:
                why = f"HTTP {exc.status}" if exc.status else "no answer"  # never the URL: it may be presigned
                raise UpstreamUnavailable(f"{entry.path} of {self.ref}", why) from exc
            resumable = not self.mirror.cache.served_bad(src.oid)  # a download taken over from a dead replica marks it

        def stream(start: int, end: int) -> AsyncGenerator[bytes, None]:
            # Tail the shared download, unless the range lies well past what has arrived.
            if start > self._fetcher.available(src) + DIRECT_RANGE_GAP:
                chunks = self._fetcher.read_direct(src, start, end, self.token_for)
            else:
                chunks = self._fetcher.read(src, start, end, self.token_for)
            return self._unless_found_bad(src, chunks, end + 1 - start) if resumable else chunks

        return Content(src.size, stream=stream, resumable=resumable)

    async def _unless_found_bad(self, src: FileSource, chunks: AsyncGenerator[bytes, None],
                                length: int) -> AsyncGenerator[bytes, None]:
        """`chunks`, except that the answer breaks before its last bytes if the file was found bad
        while it ran (it was not when the answer began, or it would not continue a prefix).

        A segmented downloader (aria2c) keeps every piece it got, from any of its answers: if one
        transfer turned out bad, no answer that began before that was known may complete, even one
        that then followed a later, good transfer, or the client could finish a file holding bad
        pieces of the first. Identity checks of the transfer an answer follows are not enough: an
        answer that began just before the failure may find only the next transfer under way.
        """
        sent = 0
        async with aclosing(chunks):
            async for chunk in chunks:
                sent += len(chunk)
                if sent >= length and await asyncio.to_thread(self.mirror.cache.served_bad, src.oid):
                    log.warning("an answer with %s ends broken: the file was found bad while it was sent", src.url_path)
                    raise TransferFailed(f"{src.url_path} was found bad while it was sent")
                yield chunk


def refused_file(exc: UpstreamMissing, path: str, commit: str) -> HubError:
    """An upstream's refusal of a file, passed on with its status, `X-Error-Code` and message."""
    if exc.code == "EntryNotFound" or (exc.status == 404 and not exc.code):
        return EntryNotFound(path, commit=commit)
    headers = {"X-Error-Code": exc.code} if exc.code else {}
    return HubError(exc.message or f"{path}: refused upstream", status=exc.status, headers=headers)


def credentials(client_token: str | None) -> Callable[[Upstream], str | None]:
    """Which token goes to an upstream: a client's own only where that upstream takes passthrough
    (it is never sent anywhere else), otherwise the server's token for that upstream, if any."""

    def token_for(upstream: Upstream) -> str | None:
        bound = getattr(client_token, "upstream", None)  # a user's own token for one upstream only
        if client_token and (upstream.config.name == bound if bound else upstream.config.passthrough):
            return client_token
        return upstream.config.token

    return token_for


def _checked_entry(upstream: Upstream, item: dict[str, Any]) -> dict[str, Any]:
    """A tree entry from upstream, validated: its ids name files on disk and its path URLs here."""
    try:
        check_path(item["path"])
        kind, oid, size = item["type"], item["oid"], int(item.get("size") or 0)
        if kind not in ("file", "directory") or not _SHA1.fullmatch(oid) or size < 0:
            raise ValueError(f"bad entry {item['path']!r}")
        entry: dict[str, Any] = {"type": kind, "path": item["path"], "oid": oid, "size": size}
        if item.get("lfs"):
            lfs = item["lfs"]
            if not _SHA256.fullmatch(lfs["oid"]) or int(lfs["size"]) < 0:
                raise ValueError(f"bad LFS entry {item['path']!r}")
            entry["lfs"] = {"oid": lfs["oid"], "size": int(lfs["size"]), "pointerSize": int(lfs.get("pointerSize") or 0)}
    except (HubError, KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(upstream.name, f"unusable tree entry: {exc}") from exc
    return entry


def _entry(item: dict[str, Any]) -> Entry:
    lfs = item.get("lfs")
    info = LfsInfo(lfs["oid"], lfs["size"], lfs.get("pointerSize", 0)) if lfs else None
    size = info.size if info else item.get("size", 0)
    return Entry(item["path"], item["type"], item["oid"], size, info)


def _next_link(upstream: Upstream, response: Any) -> str | None:
    """The `rel="next"` page, only if it stays on this upstream's origin."""
    link: str | None = response.links.get("next", {}).get("url")
    if not link:
        return None
    if urlsplit(link).scheme and origin(link) != origin(upstream.base):
        raise UpstreamError(upstream.name, f"pagination link leaves the upstream: {link}")
    return link

