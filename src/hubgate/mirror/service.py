"""The mirror as a whole: which repos come from upstream, their info, cache size and health."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from hubgate.config import Settings
from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.errors import HubError, RepoNotCached
from hubgate.ids import RepoRef, is_commit_id
from hubgate.memcache import ByteCache
from hubgate.mirror.cache import MirrorCache
from hubgate.mirror.fetcher import Fetcher
from hubgate.mirror.leases import Holder, Leases
from hubgate.mirror.repository import VIA_KEY, MirroredRepository, UpstreamUnavailable, credentials, disabled, missing_to_error
from hubgate.mirror.shared import SharedFetcher
from hubgate.mirror.trees import TREE_CACHE_BYTES, CommitTree
from hubgate.mirror.upstream import Health, Upstream, UpstreamError, UpstreamMissing, Upstreams, raise_for_missing
from hubgate.signing import Signer
from hubgate.storage.blobs import BlobStore
from hubgate.storage.metadata import GitObject, MetadataStore, RepoLfsObject

log = logging.getLogger("hubgate.mirror")

ALIAS_TTL = 3600  # seconds a legacy or former name's canonical repo is trusted
EVICT_LEASE = "evict"  # held by the one replica evicting cached files
SOURCE_KEY = "_hubgate_upstream"  # which upstream answered, kept inside the cached info
TokenFor = Callable[[Upstream], "str | None"]


class Mirror:
    def __init__(self, settings: Settings, metadata: MetadataStore, blobs: BlobStore,
                 crash: CrashPoints = NO_CRASH, replica_key: Signer | None = None) -> None:
        """`replica_key`: set when replicas share the database and the bucket (it signs their
        requests to each other); each file is then fetched once across all of them."""
        self.settings = settings.mirror
        self.offline = settings.offline
        self.metadata = metadata
        self.blobs = blobs
        self.upstreams = Upstreams(settings.upstream, offline=settings.offline)
        self.cache = MirrorCache(metadata)
        self.trees: ByteCache[tuple[str, str, str], CommitTree] = ByteCache(TREE_CACHE_BYTES, CommitTree.weight)
        self.leases: Leases | None = None
        if replica_key is not None:
            self.leases = Leases(metadata, str(settings.mirror.internal_url or "").rstrip("/"))
            self.fetcher: Fetcher = SharedFetcher(blobs, self.cache, self.upstreams, settings.tmp_dir, self.leases,
                                                  replica_key, crash)
        else:
            self.fetcher = Fetcher(blobs, self.cache, self.upstreams, settings.tmp_dir, crash)
        self.fetcher.on_published = lambda _size: self.evict()
        self.restricted_readers = settings.mirror.restricted_access
        for upstream in self.upstreams.all:
            upstream.health.on_change = lambda succeeded, health, name=upstream.name: self._save_health(name, succeeded, health)

    def _save_health(self, name: str, succeeded: bool, health: Health) -> None:
        """Share one observation; every process's observations merge field by field."""
        try:
            if succeeded and health.last_success is not None:
                self.cache.record_success(name, health.last_success, health.latency_ms)
            elif not succeeded and health.last_error_at is not None:
                # Query strings may hold presigned signatures: they are not kept.
                self.cache.record_failure(name, health.last_error_at, re.sub(r"\?\S*", "", health.last_error or ""))
        except Exception:  # noqa: BLE001 - health bookkeeping must never break a request
            log.exception("could not record the health of upstream %s", name)

    def __bool__(self) -> bool:
        return bool(self.upstreams)

    # -- repo info -------------------------------------------------------------------------
    def fetch_info(self, ref: RepoRef, revision: str | None, token_for: TokenFor) -> tuple[dict[str, Any], str]:
        """Ask the upstreams, in order, for a repo's info at `revision` (None: default branch)."""
        path = f"/api/{ref.plural}/{ref.repo_id}"
        if revision is not None:
            path += f"/revision/{quote(revision, safe='')}"

        def attempt(upstream: Upstream) -> dict[str, Any]:
            response = upstream.request("GET", path, token=token_for(upstream))
            if revision is None and response.status_code in (401, 404):
                # Some mirrors answer a repo's info only with a revision: name the default branch.
                response.close()
                response = upstream.request("GET", f"{path}/revision/main", token=token_for(upstream))
            raise_for_missing(upstream, response)
            info = response.json()
            if not isinstance(info, dict) or not is_commit_id(str(info.get("sha", ""))):
                raise UpstreamError(upstream.name, f"answered {path} without a commit sha")
            return info

        info, upstream = self.upstreams.first(attempt)
        info = {k: v for k, v in info.items() if k != "siblings"}
        canonical = canonical_ref(ref, info)
        if canonical != ref:  # a legacy id, a renamed repo or another letter case: kept once, under its name
            self.cache.remember_alias(ref.type, ref.repo_id, canonical.repo_id)
            ref = canonical
        info[SOURCE_KEY] = upstream.name
        info[VIA_KEY] = "server" if self._server_may_read(ref, info, upstream) else "client"
        key = (ref.type, ref.repo_id)
        self.cache.remember_commit(*key, info["sha"], info)
        label = "" if revision is None else revision
        if label != info["sha"]:
            self.cache.remember_revision(*key, label, info["sha"], upstream.name)
        return info, upstream.name

    def _follow_alias(self, repo_type: str) -> Callable[[str, float], bool]:
        """Whether a name an upstream resolved before still stands for its canonical repo (re-asked
        after ALIAS_TTL)."""

        def follow(canonical: str, fetched_at: float) -> bool:
            if not (self.offline or time.time() - fetched_at < ALIAS_TTL):
                return False
            try:
                RepoRef.parse(repo_type, canonical)
            except HubError:
                return False
            return True

        return follow

    def _server_may_read(self, ref: RepoRef, info: dict[str, Any], upstream: Upstream) -> bool:
        """Whether the server's own credential reads this repo's files (always, for public repos).

        If not, whatever a client's passthrough token brings in stays for callers upstream vouches for.
        """
        if not info.get("private") and not info.get("gated"):
            return True
        token = upstream.config.token
        if token is None:
            return False
        response = upstream.request("GET", f"/api/{ref.plural}/{ref.repo_id}/auth-check", token=token)
        response.close()
        return response.status_code == 200

    def open(self, ref: RepoRef, token: str | None = None) -> MirroredRepository | None:
        """The mirrored repo, or None when no upstream has it.

        A repo seen before opens from its cached info without asking upstream: resolving a
        branch or tag re-checks upstream once `revision_ttl` has passed (refreshing the repo's
        private/gated flags too), and a known commit needs no upstream request at all. A caller's
        own upstream token (passthrough or stored) is checked upstream only for a private or gated
        repo: a public one opens from the cache as for anyone. If upstream cannot answer that check,
        a cached repo the server's credential read opens as for callers without a token.
        """
        if not self.upstreams and not self.offline:
            return None
        known = self.cache.known_repo(ref.type, ref.repo_id, self._follow_alias(ref.type))
        if known.repo_id != ref.repo_id:
            ref = RepoRef.parse(ref.type, known.repo_id)
        cached = known.info
        restricted = cached is not None and bool(cached.get("private") or cached.get("gated"))
        if cached is not None and (token is None or self.offline or not restricted):
            return MirroredRepository(self, ref, cached, cached.get(SOURCE_KEY, "cache"), token if restricted else None,
                                      known.revisions)
        if self.offline:
            raise RepoNotCached(str(ref), anonymous=True)  # the gate says it to the caller as it is
        negative = f"repo:{ref.type}:{ref.repo_id}"
        if token is None and self.cache.is_missing(negative):
            return None

        token_for = credentials(token)
        try:
            info, upstream = self.fetch_info(ref, None, token_for)
        except UpstreamMissing as exc:
            if disabled(exc):  # the Hub's own answer, so clients raise DisabledRepoError
                raise missing_to_error(ref, exc, ref.repo_id) from exc
            if exc.status in (401, 404) and token is None:
                self.cache.remember_missing(negative, self.settings.negative_ttl)
            return None
        except UpstreamError as exc:
            if cached is not None and cached.get(VIA_KEY) != "client":
                log.warning("upstream unavailable to check a token's access to %s (%s): the cached repo is served", ref, exc)
                return MirroredRepository(self, ref, cached, cached.get(SOURCE_KEY, "cache"), None)
            raise UpstreamUnavailable(str(ref), exc) from exc
        ref = canonical_ref(ref, info)
        repo = MirroredRepository(self, ref, info, upstream, token)
        if token is not None and repo.meta.readers != "anyone":
            self.check_access(ref, token_for)
            repo.meta = replace(repo.meta, readers="anyone")  # upstream just granted this caller access
        return repo

    def check_access(self, ref: RepoRef, token_for: TokenFor) -> None:
        """Ask upstream whether this credential may read the files of a private or gated repo."""
        path = f"/api/{ref.plural}/{ref.repo_id}/auth-check"

        def attempt(upstream: Upstream) -> None:
            raise_for_missing(upstream, upstream.request("GET", path, token=token_for(upstream)))

        try:
            self.upstreams.first(attempt)
        except UpstreamMissing as exc:
            raise missing_to_error(ref, exc, ref.repo_id) from exc
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"access to {ref}", exc) from exc

    # -- warming the cache -----------------------------------------------------------------
    def pull(
        self, ref: RepoRef, revision: str | None, *, on_plan: Callable[[int, int], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[str, int, int]:
        """Fetch every file of `ref` at `revision` into the cache; returns (commit, files, bytes)."""
        repo = self.open(ref)
        if repo is None:
            raise UpstreamUnavailable(str(ref), "no upstream has it")
        commit = repo.resolve(revision or "main")
        entries = [e for e in repo.list_tree(commit, recursive=True) if e.type == "file"]
        total = sum(e.content_size for e in entries)
        if on_plan:
            on_plan(len(entries), total)
        for entry in entries:
            src = repo.source(commit, entry)
            if self.fetcher.cached(src) is not None:
                if progress:
                    progress(src.size)
                continue
            self.fetcher.fetch_now(src, repo.token_for, progress)
        return commit, len(entries), total

    # -- cache bookkeeping -----------------------------------------------------------------
    def evict(self) -> list[str]:
        """Drop least recently used cached files until the cache fits `cache_max_bytes`.

        Replicas take turns (the lease `evict`: while one evicts, the others skip), and leave
        alone a file used in the last `evict_grace` seconds: another replica may be sending it
        from the bucket, or a client hold a presigned URL to it."""
        limit = self.settings.cache_max_bytes
        if limit <= 0 or self.cache.cached_bytes()[1] <= limit:
            return []
        if self.leases is None:
            return self._evict(limit, None)
        if isinstance(self.leases.acquire(EVICT_LEASE), Holder):
            return []
        try:
            return self._evict(limit, time.time() - self.settings.evict_grace)
        finally:
            self.leases.release(EVICT_LEASE)

    def _evict(self, limit: int, idle_since: float | None) -> list[str]:
        _, total = self.cache.cached_bytes()
        if total <= limit:
            return []
        victims = self.cache.eviction_candidates(total - limit, idle_since)
        candidates = [v[1] for v in victims]
        with self.metadata.session() as session:  # never delete what a hosted repo holds or was sent
            hosted = set(session.scalars(select(GitObject.lfs_sha256).where(GitObject.lfs_sha256.in_(candidates))))
            hosted |= set(session.scalars(select(GitObject.content_sha256).where(GitObject.content_sha256.in_(candidates))))
            hosted |= set(session.scalars(select(RepoLfsObject.oid).where(RepoLfsObject.oid.in_(candidates))))
        self.cache.forget_files([oid for oid, _, _ in victims])
        for _oid, sha256, _size in victims:
            if sha256 not in hosted and not self.cache.sha256_in_use(sha256):
                self.blobs.delete(sha256)
        self.cache.count("evictions", len(victims))
        return [oid for oid, _, _ in victims]

    def status(self) -> dict[str, Any]:
        files, size = self.cache.cached_bytes()
        counters = self.cache.counters()
        hits, misses = counters.get("hits", 0), counters.get("misses", 0)
        health = self.cache.health()
        return {
            "offline": self.offline,
            "upstreams": [
                _health_json(u.name, u.base, health.get(u.name)) for u in self.upstreams.all
            ],
            "cache": {
                "files": files,
                "bytes": size,
                "maxBytes": self.settings.cache_max_bytes,
                "hits": hits,
                "misses": misses,
                "hitRatio": round(hits / (hits + misses), 4) if hits + misses else None,
                "upstreamBytes": counters.get("upstream_bytes", 0),
                "integrityErrors": counters.get("integrity_errors", 0),
                "evictions": counters.get("evictions", 0),
            },
        }

    def close(self) -> None:
        if self.leases is not None:
            self.leases.close()
        self.upstreams.close()
        self.cache.close()



def _health_json(name: str, url: str, row: Any) -> dict[str, Any]:
    def iso(stamp: float | None) -> str | None:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)) if stamp else None

    healthy = row is not None and row.last_success is not None and (row.last_error_at or 0) <= row.last_success
    return {
        "name": name,
        "url": url,
        "healthy": healthy,
        "lastSuccess": iso(row.last_success) if row else None,
        "lastError": row.last_error if row else None,
        "lastErrorAt": iso(row.last_error_at) if row else None,
        "latencyMs": round(row.latency_ms, 2) if row and row.latency_ms is not None else None,
    }


def canonical_ref(asked: RepoRef, info: dict[str, Any]) -> RepoRef:
    """The repo an upstream's info is about (its `id`), or the one asked for if that is unusable."""
    try:
        found = RepoRef.parse(asked.type, str(info.get("id") or ""))
    except HubError:
        return asked
    return found
