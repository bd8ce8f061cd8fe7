"""The one authorisation point: every route declares an `Action`, checked here before it runs.

Handlers never check access themselves; the repo a repo action is about is opened here, once,
and handed to the handler already authorised.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hubgate.auth import policy
from hubgate.auth.accounts import Principal
from hubgate.auth.castokens import CasGrant, CasTokens, TokenRefused
from hubgate.errors import Forbidden, RepoNotCached, Unauthorized
from hubgate.ids import RepoRef
from hubgate.repos.access import RepoAccess, Standing
from hubgate.repos.base import RepoMeta, Repository
from hubgate.repos.hosted import HostedRepository
from hubgate.repos.service import MovedRepo


class Action(enum.Enum):
    PUBLIC = "public"  # anybody, no repo involved
    SIGNED = "signed URL"  # the URL's signature is the credential (checked by its handler)
    AUTHENTICATED = "authenticated"  # any valid token
    READ_REPO = "read repo"  # info, trees, refs, commits
    DOWNLOAD = "download file"  # file contents: reading plus the repo's gate
    WRITE_REPO = "write repo"  # commits, branches, tags, LFS uploads
    MANAGE_REPO = "manage repo"  # settings, delete, move, collaborators, access requests
    REQUEST_ACCESS = "request access"  # a gated repo's files: reading it, authenticated
    DISCUSS = "discuss"  # open discussions and pull requests, comment: reading it, authenticated
    AUTHOR = "author or write"  # change a discussion or pull request (`Subject.discussion`): its author, else writers
    CREATE_REPO = "create repo"  # in a namespace
    MANAGE_TOKENS = "manage tokens"  # one's own tokens; admins everybody's
    ADMIN = "admin"  # server operators only
    CAS_READ = "read xet storage"  # a Xet CAS token (read or write) of the repo it names
    CAS_WRITE = "write xet storage"  # a Xet CAS write token


CAS_ACTIONS = frozenset({Action.CAS_READ, Action.CAS_WRITE})


REPO_ACTIONS = frozenset(
    {Action.READ_REPO, Action.DOWNLOAD, Action.REQUEST_ACCESS, Action.DISCUSS, Action.AUTHOR, Action.WRITE_REPO,
     Action.MANAGE_REPO}
)


@dataclass(frozen=True)
class Subject:
    """What an action is about: a repo, and/or a namespace a repo is created in (or moved to)."""

    ref: RepoRef | None = None
    namespace: str | None = None
    user: str | None = None  # whose tokens (MANAGE_TOKENS); None: nobody's (an unknown token)
    revision: str | None = None  # the revision and path of a file download (for lock-bound tokens)
    path: str | None = None
    discussion: int | None = None  # the discussion or pull request number (AUTHOR)


OpenRepo = Callable[[RepoRef, "str | None", Callable[[RepoRef], None], "str | None"], "Repository | None"]
OpenHosted = Callable[[RepoRef], "HostedRepository | None"]
# Who opened discussion `num` of a hosted repo; DiscussionNotFound if there is none.
AuthorOf = Callable[[HostedRepository, int], str]
_Opened = TypeVar("_Opened", bound="Repository")


@dataclass(frozen=True)
class MirrorPolicy:
    """The operator's rules for mirrored repos (`[mirror]` anonymous_read, allow, deny)."""

    anonymous_read: bool = True
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def check_listed(self, ref: RepoRef) -> None:
        """Forbidden if the allow and deny patterns keep this repo out of the mirror."""
        name = str(ref).lower()
        listed = any(fnmatch.fnmatchcase(name, p.lower()) for p in self.allow)
        if any(fnmatch.fnmatchcase(name, p.lower()) for p in self.deny) or (self.allow and not listed):
            raise Forbidden(f"{ref} is refused by this server's mirror policy")

    def check(self, principal: Principal | None, ref: RepoRef) -> None:
        self.check_listed(ref)
        if principal is None and not self.anonymous_read:
            raise Unauthorized("This server's mirror is for authenticated users only")


class Gate:
    def __init__(
        self, open_repo: OpenRepo, open_hosted: OpenHosted, access: RepoAccess, mirror: MirrorPolicy, author_of: AuthorOf,
        cas_tokens: CasTokens, token_active: Callable[[int], bool],
    ) -> None:
        self._cas_tokens = cas_tokens
        self._token_active = token_active
        self._open_repo = open_repo
        self._author_of = author_of
        self._open_hosted = open_hosted
        self._access = access
        self._mirror = mirror

    def visible(self, principal: Principal | None) -> Callable[[RepoMeta], bool]:
        """Whether a listing may show a repo to the caller (what READ_REPO would allow)."""
        roles = self._access.collaborations(principal.name) if principal else {}

        def check(meta: RepoMeta) -> bool:
            return policy.can_read(principal, meta, Standing(roles.get(meta.pk)) if meta.pk else Standing())

        return check

    def _unless_hidden_move(
        self, principal: Principal | None, open_repo: Callable[[], _Opened | None]
    ) -> _Opened | None:
        """`open_repo()`; None (a missing repo) instead of the redirect of a renamed repo the caller may
        not read: its new name, even its existence, are for its readers only."""
        try:
            return open_repo()
        except MovedRepo as moved:
            if policy.can_read(principal, moved.meta, self._standing(principal, moved.meta)):
                raise
            return None

    def _standing(self, principal: Principal | None, meta: RepoMeta | None) -> Standing:
        if principal is None or (meta is not None and meta.pk is None):
            return Standing()
        # Looked up for a missing repo too (no repo has pk -1): a private repo the caller may not
        # see must answer in the time a missing one does.
        return self._access.standing(meta.pk if meta is not None and meta.pk is not None else -1, principal.name)

    def authorize(
        self, principal: Principal | None, action: Action, subject: Subject, upstream_token: str | None = None
    ) -> Repository | None:
        """The authorised repo of a repo action (None for the others); a HubError if refused."""
        if action in (Action.PUBLIC, Action.SIGNED):
            return None
        assert action not in CAS_ACTIONS, "CAS calls are authorised by authorize_cas"
        if action is Action.AUTHENTICATED:
            if principal is None:
                raise Unauthorized("Invalid credentials in Authorization header")
            return None
        if action is Action.MANAGE_TOKENS:
            policy.check_token_management(principal, subject.user)
            return None
        if action is Action.ADMIN:
            policy.check_admin(principal)
            return None
        if action is Action.CREATE_REPO:
            assert subject.namespace is not None
            policy.check_namespace_write(principal, subject.namespace)
            return None
        ref = subject.ref
        assert ref is not None and action in REPO_ACTIONS
        if action in (Action.READ_REPO, Action.DOWNLOAD, Action.REQUEST_ACCESS, Action.DISCUSS):
            user = principal.name if principal else None
            try:
                repo = self._unless_hidden_move(principal, lambda: self._open_repo(
                    ref, upstream_token, lambda mirrored: self._mirror.check(principal, mirrored), user))
            except RepoNotCached:  # offline: missing to this caller (401 or 404), said as what it is
                raise RepoNotCached(str(ref), anonymous=principal is None) from None
            standing = self._standing(principal, repo.meta if repo else None)
            meta = policy.check_read(principal, ref, repo.meta if repo else None, standing)
            if action is Action.DOWNLOAD:
                policy.check_download(principal, meta, standing)
            if action is Action.REQUEST_ACCESS and principal is None:
                raise Unauthorized("You must be authenticated to request access to a gated repo")
            if action is Action.DISCUSS:
                policy.check_discuss(principal, ref)
            if principal is not None and principal.scope.locked and repo is not None:
                download = (subject.revision, subject.path) if action is Action.DOWNLOAD else None
                policy.check_locked(principal, repo, download)
            return repo
        hosted = self._unless_hidden_move(principal, lambda: self._open_hosted(ref))
        found = hosted.meta if hosted else None
        if action is Action.AUTHOR:
            assert subject.discussion is not None
            return self._authors_own(principal, ref, hosted, subject.discussion)
        policy.check_write(principal, ref, found, self._standing(principal, found), manage=action is Action.MANAGE_REPO)
        if subject.namespace is not None:  # a move: the target namespace too
            policy.check_namespace_write(principal, subject.namespace)
        return hosted

    def authorize_cas(self, token: str | None, action: Action) -> CasGrant:
        """The grant of the Xet CAS token a CAS call presents: 401 without a valid, unexpired one,
        403 for a read token on a write action."""
        assert action in CAS_ACTIONS
        if token is None:
            raise Unauthorized("A Xet access token is required (Authorization: Bearer <accessToken>)")
        try:
            grant = self._cas_tokens.verify(token)
        except TokenRefused as refused:
            raise Unauthorized(str(refused)) from None
        if grant.token_id is not None and not self._token_active(grant.token_id):
            raise Unauthorized("The hubgate token this Xet access token was issued to is revoked or expired")
        if action is Action.CAS_WRITE and not grant.writes:
            raise Forbidden("This Xet access token is read-only: uploads need one from xet-write-token")
        return grant

    def _authors_own(self, principal: Principal | None, ref: RepoRef, hosted: HostedRepository | None, num: int) -> Repository:
        """A discussion's author changes it with a token that may write; anybody else needs write access.

        Reading comes first: whoever may not see the repo gets the answer of a missing repo, before
        anything about its discussions is looked up."""
        found = hosted.meta if hosted else None
        standing = self._standing(principal, found)
        policy.check_read(principal, ref, found, standing)
        assert hosted is not None
        if principal is None:
            raise Unauthorized("You must be authenticated to change a discussion")
        if self._author_of(hosted, num) == principal.name:
            policy.check_discuss(principal, ref)
        else:
            policy.check_write(principal, ref, found, standing)
        return hosted
