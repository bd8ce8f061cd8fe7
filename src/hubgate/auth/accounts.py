"""Users, organisations, memberships and access tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hubgate import constants
from hubgate.errors import BadRequest, Conflict, InvalidCredentials, NotFound
from hubgate.repos.ids import check_new_namespace
from hubgate.storage.metadata import Membership, MetadataStore, Org, Token, User, utcnow

ORG_ROLES = ("read", "write", "admin")
TOKEN_ROLES = ("read", "write")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user acting through one token."""

    name: str
    fullname: str
    email: str | None
    is_admin: bool
    token_name: str
    token_role: str
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> role


@dataclass(frozen=True)
class TokenRow:
    id: int
    user: str
    name: str
    role: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

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

    # -- tokens ----------------------------------------------------------------------------
    def create_token(self, user_name: str, *, role: str = "read", name: str = "", expires_days: float | None = None) -> str:
        """Create a token and return it; only its hash is stored, so this is the only time it is seen."""
        if role not in TOKEN_ROLES:
            raise BadRequest(f"Token role must be one of {', '.join(TOKEN_ROLES)}")
        if expires_days is not None and not expires_days > 0:  # 0 would mean "never", a negative value "already"
            raise BadRequest("The expiry must be a positive number of days")
        token = constants.TOKEN_PREFIX + secrets.token_urlsafe(30).replace("-", "A").replace("_", "B")
        try:
            expires = utcnow() + dt.timedelta(days=expires_days) if expires_days else None
        except OverflowError as exc:
            raise BadRequest("The expiry is too far in the future") from exc
        with self.metadata.session() as session:
            user = self._user(session, user_name)
            session.add(
                Token(
                    user_id=user.id,
                    name=name or f"{role} token",
                    role=role,
                    token_hash=hash_token(token),
                    prefix=token[:7],
                    expires_at=expires,
                )
            )
        return token

    def list_tokens(self, user_name: str | None = None) -> list[TokenRow]:
        with self.metadata.session() as session:
            query = select(Token, User.name).join(User).order_by(Token.id)
            if user_name:
                query = query.where(User.name == user_name)
            return [
                TokenRow(t.id, u, t.name, t.role, t.prefix, t.created_at, t.expires_at, t.revoked_at is not None)
                for t, u in session.execute(query)
            ]

    def revoke_token(self, token_id: int) -> None:
        with self.metadata.session() as session:
            token = session.get(Token, token_id)
            if token is None:
                raise NotFound(f"No token with id {token_id}")
            token.revoked_at = token.revoked_at or utcnow()

    def authenticate(self, token: str) -> Principal:
        """The principal behind `token`; InvalidCredentials if it is unknown, revoked or expired."""
        with self.metadata.session() as session:
            row = session.scalar(select(Token).where(Token.token_hash == hash_token(token)))
            if row is None or row.revoked_at is not None:
                raise InvalidCredentials()
            if row.expires_at is not None and row.expires_at <= utcnow():
                raise InvalidCredentials()
            user = row.user
            orgs = {m.org.name: m.role for m in user.memberships}
            return Principal(user.name, user.fullname, user.email, user.is_admin, row.name, row.role, orgs)
