"""Users, organisations, memberships and access tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hubgate.auth.scopes import Scope
from hubgate.auth.throttle import FailureThrottle
from hubgate.auth.tokens import Tokens
from hubgate.errors import BadRequest, Conflict, InvalidCredentials, NotFound
from hubgate.repos.ids import check_new_namespace
from hubgate.storage.metadata import Membership, MetadataStore, Org, User

ORG_ROLES = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user acting through one token."""

    name: str
    fullname: str
    email: str | None
    is_admin: bool
    token_name: str
    scope: Scope
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> role
    token_id: int | None = None


class Accounts:
    def __init__(self, metadata: MetadataStore, throttle: FailureThrottle) -> None:
        self.metadata = metadata
        self.tokens = Tokens(metadata)
        self.throttle = throttle

    def _namespace_taken(self, session: Session, name: str) -> bool:
        lowered = name.lower()
        users = session.scalars(select(User.name)).all()
        orgs = session.scalars(select(Org.name)).all()
        return any(n.lower() == lowered for n in [*users, *orgs])

    def add_user(self, name: str, *, admin: bool = False, fullname: str = "", email: str | None = None) -> None:
        check_new_namespace(name, "user name")
        with self.metadata.session() as session:
            if self._namespace_taken(session, name):
                raise Conflict(f"The name {name!r} is already taken by a user or organisation")
            session.add(User(name=name, is_admin=admin, fullname=fullname or name, email=email))

    def add_org(self, name: str, owner: str) -> None:
        check_new_namespace(name, "organisation name")
        with self.metadata.session() as session:
            user = self._user(session, owner)
            if self._namespace_taken(session, name):
                raise Conflict(f"The name {name!r} is already taken by a user or organisation")
            org = Org(name=name, fullname=name)
            session.add(org)
            session.flush()
            session.add(Membership(org_id=org.id, user_id=user.id, role="admin"))

    def set_member(self, org_name: str, user_name: str, role: str) -> None:
        if role not in ORG_ROLES:
            raise BadRequest(f"Role must be one of {', '.join(ORG_ROLES)}")
        with self.metadata.session() as session:
            org = session.scalar(select(Org).where(Org.name == org_name))
            if org is None:
                raise NotFound(f"No organisation named {org_name!r}")
            user = self._user(session, user_name)
            membership = session.get(Membership, (org.id, user.id))
            if membership is None:
                session.add(Membership(org_id=org.id, user_id=user.id, role=role))
            else:
                membership.role = role

    def remove_member(self, org_name: str, user_name: str) -> None:
        with self.metadata.session() as session:
            org = session.scalar(select(Org).where(Org.name == org_name))
            user = self._user(session, user_name)
            membership = session.get(Membership, (org.id, user.id)) if org else None
            if membership is None:
                raise NotFound(f"{user_name} is not a member of {org_name}")
            session.delete(membership)

    def _user(self, session: Session, name: str) -> User:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"No user named {name!r}")
        return user

    def namespace_kind(self, name: str) -> str | None:
        """'user', 'org', or None when no local account owns this namespace (in any letter case)."""
        lowered = name.lower()
        with self.metadata.session() as session:
            if session.scalar(select(User.id).where(func.lower(User.name) == lowered)) is not None:
                return "user"
            if session.scalar(select(Org.id).where(func.lower(Org.name) == lowered)) is not None:
                return "org"
        return None

    def principal(self, secret: str, client: str | None) -> Principal:
        """The caller behind a token: InvalidCredentials if it is unknown, revoked or expired,
        TooManyRequests once the client address failed too often."""
        self.throttle.check(client)
        try:
            token = self.tokens.authenticate(secret, client)
        except InvalidCredentials:
            self.throttle.failed(client)
            raise
        with self.metadata.session() as session:
            user = session.get(User, token.user_id)
            assert user is not None  # tokens are deleted with their user
            orgs = {m.org.name: m.role for m in user.memberships}
            return Principal(
                user.name, user.fullname, user.email, user.is_admin, token.token_name, token.scope, orgs, token.token_id
            )
