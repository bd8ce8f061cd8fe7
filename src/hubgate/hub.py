"""The composition root: one `Hub` per process wires settings to storage and services.

The server and the CLI both build a Hub from the same settings, so they share one code path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import cached_property

from sqlalchemy.exc import SQLAlchemyError

from hubgate.audit import AuditLog
from hubgate.auth.accounts import Accounts
from hubgate.auth.castokens import CasTokens
from hubgate.auth.gate import Gate, MirrorPolicy
from hubgate.auth.throttle import FailureThrottle
from hubgate.auth.upstream_tokens import UpstreamTokens
from hubgate.config import Settings
from hubgate.crashpoints import CrashPoints
from hubgate.errors import BadRequest
from hubgate.ids import RepoRef
from hubgate.maintenance.fsck import Fsck
from hubgate.maintenance.gc import Collector, PeriodicCollector
from hubgate.metrics import Metrics
from hubgate.mirror.service import Mirror
from hubgate.repos.access import RepoAccess
from hubgate.repos.base import Repository
from hubgate.repos.discussions import Discussions
from hubgate.repos.hosted import HostedRepository
from hubgate.repos.plain_copies import PlainCopies
from hubgate.repos.service import MovedRepo, RepoService
from hubgate.signing import Signer
from hubgate.storage.blobs import BlobStore, LocalBlobStore
from hubgate.storage.metadata import MetadataStore
from hubgate.xet.store import XetStore

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # a folder from before: closed to other users now
            settings.data.chmod(0o700)
        settings.tmp_dir.mkdir(mode=0o700, exist_ok=True)  # request bodies spool here, whatever the blob store
        self.metadata = MetadataStore(settings.db_url, settings.db_pool_size)
        self.crash = crash = CrashPoints.parse(settings.crash_at)
        self.blobs: BlobStore = (
            LocalBlobStore(settings.blob_dir, settings.tmp_dir, crash=crash) if settings.blobs.backend == "local"
            else self._s3_blobs()
        )
        # Whether stored files are answered with a redirect to a presigned URL.
        self.redirects = settings.blobs.backend == "s3" and settings.blobs.serve == "redirect"
        limits = settings.auth
        self.accounts = Accounts(self.metadata, FailureThrottle(self.metadata, limits.max_failures, limits.failure_window))
        self.plain_copies = PlainCopies(self.metadata, self.blobs, settings.xet)
        self.repos = RepoService(self.metadata, self.blobs, settings.lfs_threshold, crash=crash, xet=self.xet,
                                 copies=self.plain_copies)
        self.discussions = Discussions(self.metadata, self.repos)
        # Offline, the mirror serves what it cached or a bundle imported, even with no upstream.
        self.mirror: Mirror | None = None
        if settings.upstream or settings.offline:
            # On S3, replicas share the bucket and the database: each file is fetched once among them.
            replica_key = self.signer if settings.blobs.backend == "s3" else None
            self.mirror = Mirror(settings, self.metadata, self.blobs, crash=crash, replica_key=replica_key)
        self.access = RepoAccess(self.metadata)
        self.audit = AuditLog(settings.data / "audit", settings.audit_retention_days)
        rules = settings.mirror
        self.mirror_policy = MirrorPolicy(rules.anonymous_read, tuple(rules.allow), tuple(rules.deny))
        self.gate = Gate(self.open_repo, self.open_hosted, self.access, self.mirror_policy,
                         lambda repo, num: self.discussions.find(repo, num).author, self.cas_tokens,
                         self.accounts.tokens.active)
        self._periodic_gc: PeriodicCollector | None = None
        self.metrics = Metrics(self.mirror.cache.counters if self.mirror is not None else None)

    def readiness(self) -> dict[str, bool]:
        """Whether the database and the blob store answer now, by name (failures are logged)."""
        checks: dict[str, bool] = {}
        for name, check in (("database", self.metadata.check), ("blobs", self.blobs.check)):
            try:
                check()
                checks[name] = True
            except (OSError, SQLAlchemyError) as exc:
                log.warning("readiness: the %s check failed: %s", name, exc)
                checks[name] = False
        return checks

    def _s3_blobs(self) -> BlobStore:
        from hubgate.storage.s3blobs import S3BlobStore  # boto3 loads only for an S3 deployment

        return S3BlobStore(self.settings.blobs, crash=self.crash)

    def open_repo(
        self, ref: RepoRef, upstream_token: str | None = None, vet: Callable[[RepoRef], None] | None = None,
        user: str | None = None,
    ) -> Repository | None:
        """A repo by address, hosted here or mirrored; the caller never needs to know which.

        A namespace that belongs to a local user or organisation is never looked up upstream,
        so nobody can shadow a private repo with a public one of the same name. `vet` may refuse
        a mirrored repo before anything of it is looked up, upstream or in the cache. A `user`
        with their own upstream token fetches with it.
        """
        repo = self.open_hosted(ref)
        if self.mirror is None:
            return repo
        # Asked whether the repo exists or not: a private repo costs what a missing one does.
        local = self.accounts.namespace_kind(ref.namespace) is not None
        if repo is not None or local:
            return repo
        if vet is not None:
            vet(ref)
        if upstream_token is None and user is not None:
            upstream_token = self.upstream_tokens.identity(user)
        mirrored = self.mirror.open(ref, upstream_token)
        canonical = mirrored.meta.ref if mirrored is not None else ref
        if canonical != ref:  # a legacy, former or differently spelled name: the same rules for the real one
            if self.accounts.namespace_kind(canonical.namespace) is not None:
                return None
            if vet is not None:
                vet(canonical)
        return mirrored

    def pull(
        self, ref: RepoRef, revision: str | None, *, on_plan: Callable[[int, int], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[str, int, int]:
        """Fill the mirror's cache with a repo revision, under the same local-namespace rule."""
        if self.mirror is None:
            raise BadRequest("No [[upstream]] is configured")
        kind = self.accounts.namespace_kind(ref.namespace)
        if kind is not None:
            raise BadRequest(f"{ref.namespace} is a local {kind}: its repos are hosted here, never pulled from an upstream")
        self.mirror_policy.check_listed(ref)
        return self.mirror.pull(ref, revision, on_plan=on_plan, progress=progress)

    def open_hosted(self, ref: RepoRef) -> HostedRepository | None:
        """A hosted repo by name in any letter case; MovedRepo (a RepoMoved) for a name it had before a move."""
        repo, moved = self.repos.find(ref)
        if moved is not None:
            raise MovedRepo(ref.repo_id, moved)
        return repo

    @cached_property
    def upstream_tokens(self) -> UpstreamTokens:
        return UpstreamTokens(self.metadata, self.settings.signing_key(), [u.name for u in self.settings.upstream])

    @cached_property
    def signer(self) -> Signer:
        return Signer(self.settings.signing_key())

    @cached_property
    def cas_tokens(self) -> CasTokens:
        """Mints (for xet-read-token / xet-write-token) and checks (the gate) Xet CAS tokens."""
        return CasTokens(self.signer)

    @cached_property
    def xet(self) -> XetStore:
        return XetStore(self.metadata, self.blobs)

    def collector(self, grace: float | None = None, upload_grace: float | None = None) -> Collector:
        gc = self.settings.gc
        return Collector(
            self.metadata,
            self.blobs,
            gc.grace if grace is None else grace,
            gc.upload_grace if upload_grace is None else upload_grace,
            self.crash,
        )

    def fsck(self) -> Fsck:
        return Fsck(self.metadata, self.blobs)

    def start_background(self) -> None:
        """What a server process runs besides answering requests: periodic garbage collection."""
        if self.settings.gc.interval > 0 and self._periodic_gc is None:
            self._periodic_gc = PeriodicCollector(self.collector(), self.settings.gc.interval)
            self._periodic_gc.start()

    def close(self) -> None:
        if self._periodic_gc is not None:
            self._periodic_gc.stop()
        if self.mirror is not None:
            self.mirror.close()
        self.metadata.dispose()
