"""Each user's own token for an upstream hub, encrypted at rest (Fernet, with a key derived from
the server's secret key) and used only for that upstream, on that user's requests.

It is handed to the mirror as a client's own token (`UpstreamIdentity`, a str that also names
its one upstream): the mirror checks it upstream, and what it fetches of a private or gated repo
stays for callers whose own upstream identity upstream vouches for.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from hubgate.errors import BadRequest, NotFound
from hubgate.storage.metadata import MetadataStore, UpstreamToken, User, utcnow


class UpstreamIdentity(str):
    """A user's upstream token, bound to the one upstream it belongs to."""

    upstream: str

    def __new__(cls, secret: str, upstream: str) -> UpstreamIdentity:
        made = super().__new__(cls, secret)
        made.upstream = upstream
        return made

    def __repr__(self) -> str:  # never the secret, even in a traceback
        return f"UpstreamIdentity(upstream={self.upstream!r})"


def _fernet(server_key: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hubgate upstream tokens").derive(server_key)
    return Fernet(base64.urlsafe_b64encode(key))


class UpstreamTokens:
    def __init__(self, metadata: MetadataStore, server_key: bytes, upstreams: list[str]) -> None:
        self.metadata = metadata
        self._fernet = _fernet(server_key)
        self.upstreams = upstreams  # configured names, in the order the mirror tries them

    def set(self, user_name: str, upstream: str, secret: str) -> None:
        secret = secret.strip()
        if self.upstreams and upstream not in self.upstreams:
            raise BadRequest(f"No upstream named {upstream!r}; configured: {', '.join(self.upstreams)}")
        if not secret or len(secret) > 4096 or not secret.isprintable():
            raise BadRequest("The upstream token must be one line of printable characters")
        sealed = self._fernet.encrypt(secret.encode())
        with self.metadata.session() as session:
            user = _user(session, user_name)
            found = session.get(UpstreamToken, (user.id, upstream))
            if found is None:
                session.add(UpstreamToken(user_id=user.id, upstream=upstream, sealed=sealed, updated_at=utcnow()))
            else:
                found.sealed, found.updated_at = sealed, utcnow()

    def remove(self, user_name: str, upstream: str) -> None:
        with self.metadata.session() as session:
            found = session.get(UpstreamToken, (_user(session, user_name).id, upstream))
            if found is None:
                raise NotFound(f"{user_name} has no token for the upstream {upstream!r}")
            session.delete(found)

    def names(self, user_name: str) -> list[str]:
        with self.metadata.session() as session:
            query = select(UpstreamToken.upstream).join(User).where(User.name == user_name).order_by(UpstreamToken.upstream)
            return list(session.scalars(query))

    def identity(self, user_name: str) -> UpstreamIdentity | None:
        """The user's token for the first configured upstream they have one for."""
        with self.metadata.session() as session:
            query = select(UpstreamToken).join(User).where(User.name == user_name)
            stored = {t.upstream: t.sealed for t in session.scalars(query)}
        for name in self.upstreams:
            if name in stored:
                try:
                    return UpstreamIdentity(self._fernet.decrypt(stored[name]).decode(), name)
                except InvalidToken:  # sealed with another server key: as good as absent
                    return None
        return None


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No user named {name!r}")
    return user
