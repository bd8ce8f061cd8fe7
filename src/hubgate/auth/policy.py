"""The access rules, in one place: may this caller see, write, or create a repo?"""

from __future__ import annotations

from hubgate.auth.accounts import Principal
from hubgate.errors import Forbidden, GatedRepo, RepoNotFound, Unauthorized
from hubgate.repos.base import RepoMeta
from hubgate.repos.ids import RepoRef

WRITE_ORG_ROLES = ("write", "admin")


def namespace_role(principal: Principal | None, namespace: str) -> str | None:
    """The caller's role over a namespace: 'admin', 'write', 'read' or None."""
    if principal is None:
        return None
    if principal.is_admin or principal.name == namespace:
        return "admin"
    return principal.orgs.get(namespace)


def can_read(principal: Principal | None, meta: RepoMeta) -> bool:
    if meta.source != "hosted":
        # Mirrored: public upstream repos are open; private or gated ones (fetched with the
        # server's upstream token) follow the mirror's `restricted_access` setting.
        if meta.readers == "anyone":
            return True
        if principal is None:
            return False
        return principal.is_admin or meta.readers == "authenticated"
    return not meta.private or namespace_role(principal, meta.ref.namespace) is not None


def check_read(principal: Principal | None, ref: RepoRef, meta: RepoMeta | None) -> RepoMeta:
    """The repo's metadata if the caller may see it; otherwise RepoNotFound as §2 prescribes."""
    if meta is None or not can_read(principal, meta):
        raise RepoNotFound(str(ref), anonymous=principal is None)
    return meta


def check_download(principal: Principal | None, meta: RepoMeta) -> None:
    """Files of a gated hosted repo are for its namespace's members (and admins) only.

    Info, trees and refs stay visible (hub-protocol §2); a mirrored repo's gate is the upstream's.
    """
    if meta.source == "hosted" and meta.gated and namespace_role(principal, meta.ref.namespace) is None:
        raise GatedRepo(str(meta.ref), anonymous=principal is None)


def check_write(principal: Principal | None, ref: RepoRef, meta: RepoMeta | None) -> RepoMeta:
    meta = check_read(principal, ref, meta)
    check_namespace_write(principal, ref.namespace)
    return meta


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
    if principal.token_role != "write":
        raise Forbidden("Your token has the read role; a write token is needed for this action")
    return principal
