"""Users, organisations, memberships and access tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hubgate.auth.scopes import Scope
from hubgate.auth.throttle import FailureThrottle
from hubgate.auth.tokens import Tokens, utc_text
from hubgate.errors import BadRequest, Conflict, InvalidCredentials, NotFound
from hubgate.ids import check_new_namespace
from hubgate.storage.metadata import Membership, MetadataStore, Org, Repo, User

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
    token_expires: dt.datetime | None = None  # when the token in use expires (None: never)


@dataclass(frozen=True)
class UserRow:
    name: str
    admin: bool
    email: str | None
    orgs: list[str]
    created: str | None


@dataclass(frozen=True)
class OrgRow:
    name: str
    admins: list[str]
    members: int
    created: str | None


@dataclass(frozen=True, order=True)
class MemberRow:
    user: str
    role: str


def _check_role(role: str) -> None:
    if role not in ORG_ROLES:
        raise BadRequest(f"Role must be one of {', '.join(ORG_ROLES)}")


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

    def list_users(self) -> list[UserRow]:
        with self.metadata.session() as session:
            return [
                UserRow(u.name, u.is_admin, u.email, sorted(m.org.name for m in u.memberships), utc_text(u.created_at))
                for u in session.scalars(select(User).order_by(User.name))
            ]

    def remove_user(self, name: str) -> None:
        """Remove a user and their tokens; refused while they own repos or are an org's last admin."""
        with self.metadata.session() as session:
            user = self._user(session, name)
            self._refuse_if_owner(session, name, "user")
            for membership in user.memberships:
                if membership.role == "admin" and self._admins(session, membership.org) == [name]:
                    raise Conflict(f"{name} is the last admin of {membership.org.name}: name another admin first")
            session.delete(user)

    def set_admin(self, name: str, admin: bool) -> None:
        with self.metadata.session() as session:
            self._user(session, name).is_admin = admin

    def list_orgs(self) -> list[OrgRow]:
        with self.metadata.session() as session:
            return [
                OrgRow(o.name, self._admins(session, o), len(o.memberships), utc_text(o.created_at))
                for o in session.scalars(select(Org).order_by(Org.name))
            ]

    def remove_org(self, name: str) -> None:
        """Remove an organisation and its memberships; refused while it owns repos."""
        with self.metadata.session() as session:
            org = self._org(session, name)
            self._refuse_if_owner(session, name, "organisation")
            session.delete(org)

    def list_members(self, org_name: str) -> list[MemberRow]:
        with self.metadata.session() as session:
            org = self._org(session, org_name)
            return sorted(MemberRow(m.user.name, m.role) for m in org.memberships)

    def add_member(self, org_name: str, user_name: str, role: str) -> None:
        _check_role(role)
        with self.metadata.session() as session:
            org, user = self._org(session, org_name), self._user(session, user_name)
            existing = session.get(Membership, (org.id, user.id))
            if existing is not None:
                raise Conflict(f"{user_name} is already a {existing.role} member of {org_name}: use set-role to change it")
            session.add(Membership(org_id=org.id, user_id=user.id, role=role))

    def set_member(self, org_name: str, user_name: str, role: str) -> None:
        """Change a member's role; an organisation never loses its last admin."""
        _check_role(role)
        with self.metadata.session() as session:
            membership = self._membership(session, org_name, user_name)
            if membership.role == "admin" and role != "admin" and self._admins(session, membership.org) == [user_name]:
                raise Conflict(f"{user_name} is the last admin of {org_name}: name another admin first")
            membership.role = role

    def remove_member(self, org_name: str, user_name: str) -> None:
        with self.metadata.session() as session:
            membership = self._membership(session, org_name, user_name)
            if membership.role == "admin" and self._admins(session, membership.org) == [user_name]:
                raise Conflict(f"{user_name} is the last admin of {org_name}: name another admin first")
            session.delete(membership)

    def _membership(self, session: Session, org_name: str, user_name: str) -> Membership:
        org, user = self._org(session, org_name), self._user(session, user_name)
        membership = session.get(Membership, (org.id, user.id))
        if membership is None:
            raise NotFound(f"{user_name} is not a member of {org_name}")
        return membership

    @staticmethod
    def _admins(session: Session, org: Org) -> list[str]:
        return sorted(m.user.name for m in org.memberships if m.role == "admin")

    @staticmethod
    def _refuse_if_owner(session: Session, namespace: str, what: str) -> None:
        owned = session.scalar(select(func.count()).where(func.lower(Repo.namespace) == namespace.lower())) or 0
        if owned:
            raise Conflict(f"The {what} {namespace} owns {owned} repo(s): delete or move them first")

    def _org(self, session: Session, name: str) -> Org:
        org = session.scalar(select(Org).where(Org.name == name))
        if org is None:
            raise NotFound(f"No organisation named {name!r}")
        return org

    def _user(self, session: Session, name: str) -> User:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"No user named {name!r}")
        return user

    def namespace_kind(self, name: str) -> str | None:
        """'user', 'org', or None when no local account owns this namespace (in any letter case)."""
        lowered = name.lower()
        with self.metadata.session() as session:  # one statement: every mirrored request asks it
            user, org = session.execute(select(
                select(User.id).where(func.lower(User.name) == lowered).exists(),
                select(Org.id).where(func.lower(Org.name) == lowered).exists(),
            )).one()
        return "user" if user else "org" if org else None

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
                user.name, user.fullname, user.email, user.is_admin, token.token_name, token.scope, orgs, token.token_id,
                token.expires_at,
            )
