"""Access tokens: created (shown once, stored as a SHA-256 hash), listed, revoked, rotated, and
checked on every request against the database, so that a revocation or an expiry holds on the
very next request in every worker process."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from hubgate import constants
from hubgate.auth.scopes import FINE_GRAINED, LOCKED, ROLES, Grant, Pin, Scope, parse_expiry
from hubgate.errors import BadRequest, Conflict, Forbidden, InvalidCredentials, NotFound
from hubgate.storage.metadata import MetadataStore, Token, User, utcnow

log = logging.getLogger("hubgate.auth")

# Last-used time and address are written at most this often per token (seconds): a download
# must not cost a database write.
LAST_USED_RESOLUTION = 60


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_secret() -> str:
    return constants.TOKEN_PREFIX + secrets.token_urlsafe(30).replace("-", "A").replace("_", "B")


@dataclass(frozen=True)
class TokenRow:
    """A token as lists show it (never its secret)."""

    id: int
    user: str
    name: str
    scope: Scope
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    last_used_from: str | None

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: dt.datetime) -> dict[str, object]:
        return {
            "id": self.id, "user": self.user, "name": self.name, "role": self.scope.role,
            "grants": [g.to_json() for g in self.scope.grants], "prefix": self.prefix, "state": self.state(now),
            "createdAt": utc_text(self.created_at), "expiresAt": utc_text(self.expires_at),
            "revokedAt": utc_text(self.revoked_at), "lastUsedAt": utc_text(self.last_used_at),
            "lastUsedFrom": self.last_used_from,
        }


def utc_text(moment: dt.datetime | None) -> str | None:
    """ISO 8601 with the zone spelled out (`...+00:00`); stored times are naive UTC."""
    return moment.replace(tzinfo=dt.UTC).isoformat(timespec="seconds") if moment else None


@dataclass(frozen=True)
class Issued:
    """A token just created or rotated: the only moment its secret exists outside the client."""

    row: TokenRow
    secret: str


@dataclass(frozen=True)
class Authenticated:
    user_id: int
    token_id: int
    token_name: str
    scope: Scope
    expires_at: dt.datetime | None = None


class Tokens:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def create(
        self, user_name: str, *, role: str = "read", grants: tuple[Grant, ...] = (), name: str = "",
        expires: str | None = None, pins: tuple[Pin, ...] = (), not_after: dt.datetime | None = None,
    ) -> Issued:
        """A new token. With grants it is fine-grained, with pins bound to a lock (`role` is then ignored).

        `not_after`: the expiry of the token creating this one over HTTP, which the new token may not
        outlive (it gets that expiry when it asks for none)."""
        if role not in ROLES:
            raise BadRequest(f"Token role must be one of {', '.join(ROLES)}")
        if len(name) > 200:
            raise BadRequest("The token name is longer than 200 characters")
        if grants and pins:
            raise BadRequest("A token is either fine-grained or bound to a lock, not both")
        scope = Scope(LOCKED, pins=pins) if pins else Scope(FINE_GRAINED, grants) if grants else Scope(role)
        now = utcnow()
        expires_at = _within(parse_expiry(expires, now) if expires else None, not_after)
        secret = _new_secret()
        with self.metadata.session() as session:
            user = session.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise NotFound(f"No user named {user_name!r}")
            token = Token(
                user_id=user.id, name=name or f"{scope.role} token", role=scope.role, grants=scope.dump(),
                token_hash=hash_token(secret), prefix=secret[:7], created_at=now, expires_at=expires_at,
            )
            session.add(token)
            session.flush()
            row = _row(token, user.name)
        log.info("token %d (%s) created for %s", row.id, row.name, user_name)
        return Issued(row, secret)

    def list(self, user_name: str | None = None) -> list[TokenRow]:
        with self.metadata.session() as session:
            query = select(Token, User.name).join(User).order_by(Token.id)
            if user_name:
                query = query.where(User.name == user_name)
            return [_row(t, u) for t, u in session.execute(query)]

    def find(self, ident: str | int, user_name: str | None = None) -> TokenRow:
        """A token by id, or by name (which must then name exactly one token)."""
        with self.metadata.session() as session:
            query = select(Token, User.name).join(User)
            if isinstance(ident, int) or ident.isdigit():
                query = query.where(Token.id == int(ident))
            else:
                query = query.where(Token.name == ident)
            if user_name:
                query = query.where(User.name == user_name)
            found = [_row(t, u) for t, u in session.execute(query)]
        if not found:
            raise NotFound(f"No token {'with id' if str(ident).isdigit() else 'named'} {ident}")
        if len(found) > 1:
            raise Conflict(f"{len(found)} tokens are named {ident!r}; give the id instead (hubgate token list)")
        return found[0]

    def active(self, token_id: int) -> bool:
        """Whether the token exists, unrevoked and unexpired (Xet CAS tokens issued through it live as long)."""
        with self.metadata.session() as session:
            found = session.execute(select(Token.revoked_at, Token.expires_at).where(Token.id == token_id)).first()
        if found is None or found[0] is not None:
            return False
        return found[1] is None or found[1] > utcnow()

    def revoke(self, token_id: int) -> TokenRow:
        with self.metadata.session() as session:
            token = session.get(Token, token_id)
            if token is None:
                raise NotFound(f"No token with id {token_id}")
            if token.revoked_at is not None:
                raise Conflict(f"Token {token_id} was already revoked at {utc_text(token.revoked_at)}")
            token.revoked_at = utcnow()
            row = _row(token, token.user.name)
        log.info("token %d (%s) of %s revoked", row.id, row.name, row.user)
        return row

    def rotate(self, token_id: int, not_after: dt.datetime | None = None) -> Issued:
        """A new secret for the same token (same id, name, grants, expiry); the old one stops working.

        `not_after` as for `create`: a token living longer than the caller's is not rotated by it."""
        secret = _new_secret()
        with self.metadata.session() as session:
            token = session.get(Token, token_id)
            if token is None:
                raise NotFound(f"No token with id {token_id}")
            state = _row(token, token.user.name).state(utcnow())
            if state != "active":
                raise Conflict(f"Token {token_id} is {state}; create a new one instead")
            if not_after is not None and (token.expires_at is None or token.expires_at > not_after):
                raise Forbidden(f"Token {token_id} would outlive the token rotating it (which expires at {utc_text(not_after)})")
            token.token_hash, token.prefix = hash_token(secret), secret[:7]
            row = _row(token, token.user.name)
        log.info("token %d (%s) of %s rotated", row.id, row.name, row.user)
        return Issued(row, secret)

    def authenticate(self, secret: str, client: str | None) -> Authenticated:
        """Who a token stands for; InvalidCredentials if unknown, revoked or expired (the reason is
        logged, never the token)."""
        now = utcnow()
        with self.metadata.session() as session:
            token = session.scalar(select(Token).where(Token.token_hash == hash_token(secret)))
            if token is None:
                log.info("refused a token: unknown")
                raise InvalidCredentials()
            if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
                log.info("refused token %d: %s", token.id, "revoked" if token.revoked_at else "expired")
                raise InvalidCredentials()
            stale = token.last_used_at is None or (now - token.last_used_at).total_seconds() >= LAST_USED_RESOLUTION
            if stale or token.last_used_from != client:
                token.last_used_at, token.last_used_from = now, (client or "")[:64] or None
            return Authenticated(token.user_id, token.id, token.name, Scope.load(token.role, token.grants), token.expires_at)


def _within(expires_at: dt.datetime | None, not_after: dt.datetime | None) -> dt.datetime | None:
    """The expiry of a token made by one expiring at `not_after`: no later (and none: that one)."""
    if not_after is None:
        return expires_at
    if expires_at is None:
        return not_after
    if expires_at > not_after:
        raise Forbidden(f"A token cannot outlive the token creating it (which expires at {utc_text(not_after)})")
    return expires_at


def _row(token: Token, user: str) -> TokenRow:
    return TokenRow(
        token.id, user, token.name, Scope.load(token.role, token.grants), token.prefix, token.created_at,
        token.expires_at, token.revoked_at, token.last_used_at, token.last_used_from,
    )
