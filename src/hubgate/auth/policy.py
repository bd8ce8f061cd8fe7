"""The access rules, in one place: may this caller see, write, or create a repo?

A caller's rights are those of their user (namespace role, server admin) narrowed by their token's
scope. Refusals to someone who may not see a private repo never tell it exists (RepoNotFound);
to someone who may, a 403 says which permission is missing.
"""

from __future__ import annotations

from hubgate.auth.accounts import Principal
from hubgate.errors import Forbidden, GatedRepo, RepoNotFound, Unauthorized
from hubgate.ids import RepoRef
from hubgate.repos.access import Standing
from hubgate.repos.base import RepoMeta, Repository

WRITE_ORG_ROLES = ("write", "admin")


def namespace_role(principal: Principal | None, namespace: str) -> str | None:
    """The caller's user's role over a namespace: 'admin', 'write', 'read' or None."""
    if principal is None:
        return None
    if principal.is_admin or principal.name == namespace:
        return "admin"
    return principal.orgs.get(namespace)


def repo_role(principal: Principal | None, meta: RepoMeta, standing: Standing) -> str | None:
    """The caller's user's role on one hosted repo: their namespace role, else as a collaborator."""
    return namespace_role(principal, meta.ref.namespace) or standing.collaborator


def can_read(principal: Principal | None, meta: RepoMeta, standing: Standing) -> bool:
    """Whether the caller may see the repo at all (user rights and token scope)."""
    if not _user_can_read(principal, meta, standing):
        return False
    restricted = meta.private or (meta.source != "hosted" and meta.readers != "anyone")
    return principal is None or not restricted or principal.scope.allows(meta.ref, write=False)


def _user_can_read(principal: Principal | None, meta: RepoMeta, standing: Standing) -> bool:
    if meta.source != "hosted":
        # Mirrored: public upstream repos are open; private or gated ones (fetched with the
        # server's upstream token) follow the mirror's `restricted_access` setting.
        if meta.readers == "anyone":
            return True
        if principal is None:
            return False
        return principal.is_admin or meta.readers == "authenticated"
    return not meta.private or repo_role(principal, meta, standing) is not None


def check_read(principal: Principal | None, ref: RepoRef, meta: RepoMeta | None, standing: Standing) -> RepoMeta:
    """The repo's metadata if the caller may see it; RepoNotFound (§2) to whoever may not know it
    exists, a 403 naming the token's missing scope to a user who may."""
    if meta is None or not _user_can_read(principal, meta, standing):
        raise RepoNotFound(str(ref), anonymous=principal is None)
    if not can_read(principal, meta, standing):
        raise Forbidden(f"Token scope does not cover {ref}: this token may not read it")
    return meta


def check_download(principal: Principal | None, meta: RepoMeta, standing: Standing) -> None:
    """Files of a gated hosted repo are for its namespace's members, its collaborators, admins,
    and the users whose access request was accepted.

    Info, trees and refs stay visible (hub-protocol §2); a mirrored repo's gate is the upstream's.
    """
    if meta.source != "hosted" or not meta.gated or repo_role(principal, meta, standing) is not None:
        return
    if standing.request == "accepted":
        return
    ref = meta.ref
    raise GatedRepo.refused(ref.type, ref.repo_id, ref.url_path, anonymous=principal is None, request=standing.request)


def check_write(
    principal: Principal | None, ref: RepoRef, meta: RepoMeta | None, standing: Standing, *, manage: bool = False
) -> RepoMeta:
    """Writing (commits, branches, tags) is for the namespace's writers and write collaborators;
    managing (settings, deletion, moves, access requests, collaborators) for the namespace's only."""
    meta = check_read(principal, ref, meta, standing)
    if principal is None:
        raise Unauthorized("You must be authenticated to write to this repo")
    role = namespace_role(principal, ref.namespace)
    if role not in WRITE_ORG_ROLES:
        if manage and standing.collaborator == "write":
            raise Forbidden(f"Managing {ref} needs the write or admin role in {ref.namespace!r}; collaborators may only write")
        if not manage and standing.collaborator == "write":
            _check_token_writes(principal, ref)
            return meta
        raise Forbidden(f"You don't have the rights to write to the namespace {ref.namespace!r}")
    _check_token_writes(principal, ref)
    return meta


def check_discuss(principal: Principal | None, ref: RepoRef) -> None:
    """Opening discussions and pull requests, commenting: any reader, with a token that may write."""
    if principal is None:
        raise Unauthorized("You must be authenticated to open or join a discussion")
    _check_token_writes(principal, ref)


def _check_token_writes(principal: Principal, ref: RepoRef) -> None:
    if principal.scope.allows(ref, write=True):
        return
    if principal.scope.locked:
        raise Forbidden(f"This token is bound to a lock: it may only download the locked files, not write to {ref}")
    if principal.scope.fine_grained:
        raise Forbidden(f"Token scope does not cover writing to {ref}: this token may only read it")
    raise Forbidden(f"This token is read-only: writing to {ref} needs a write token")


def check_locked(principal: Principal, repo: Repository, download: tuple[str | None, str | None] | None) -> None:
    """A lock-bound token reads only its locked repos, and downloads (`download`: the revision and
    path asked for) only their locked files at their locked commits: a tag that moved since
    resolves to a commit the lock does not name."""
    ref, scope = repo.meta.ref, principal.scope
    if not scope.pinned(ref):
        raise Forbidden(f"This token is bound to a lock: {ref} is not in it")
    if download is None:
        return
    revision, path = download
    if revision is None or path is None:
        raise Forbidden("This token is bound to a lock: it downloads locked files by commit and path only")
    commit = repo.resolve(revision)
    if not scope.pinned(ref, commit, path):
        raise Forbidden(f"This token is bound to a lock: {path} at commit {commit} of {ref} is not in it")


def check_admin(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("You must be authenticated as a server administrator")
    if not principal.is_admin:
        raise Forbidden("Only server administrators may do this")
    return principal


def check_namespace_write(principal: Principal | None, namespace: str) -> Principal:
    if principal is None:
        raise Unauthorized("You must be authenticated to write to this repo")
    if namespace_role(principal, namespace) not in WRITE_ORG_ROLES:
        raise Forbidden(f"You don't have the rights to write to the namespace {namespace!r}")
    if not principal.scope.may_create_in(namespace):
        if principal.scope.locked:
            raise Forbidden(f"This token is bound to a lock: it may not create repos in {namespace!r}")
        if principal.scope.fine_grained:
            raise Forbidden(f"Token scope does not cover creating repos in {namespace!r}")
        raise Forbidden(f"This token is read-only: creating repos in {namespace!r} needs a write token")
    return principal


def check_token_management(principal: Principal | None, owner: str | None) -> Principal:
    """Users manage their own tokens, administrators everybody's; never with a narrower token
    than a write one (a read token must not mint a write token)."""
    if principal is None:
        raise Unauthorized("Invalid credentials in Authorization header")
    if principal.scope.role != "write":
        raise Forbidden("Managing tokens needs a write token that is not fine-grained")
    if owner != principal.name and not principal.is_admin:
        raise Forbidden("Only administrators manage other users' tokens")
    return principal
