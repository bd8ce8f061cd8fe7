"""Xet CAS access tokens: opaque to clients, signed with the server key, bound to one repo, a scope
(read or write) and an expiry. The hub hands them out (xet-read-token / xet-write-token); every CAS
call presents one, and the gate checks it (`Gate.authorize_cas`).

A token is `xetcas_` + base64url("repo pk, repo type, repo id, scope, expiry") + `.` + an HMAC over
the same: nothing is stored, so a token lives until its expiry (keep the lifetime short).
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from hubgate.ids import RepoRef
from hubgate.signing import Signer

PREFIX = "xetcas_"
SCOPES = ("read", "write")
_PURPOSE = "xet-cas-token"  # signed along, so no other signature of the server key passes for a token
MAX_TOKEN = 2000  # characters; longer is not a token of ours


@dataclass(frozen=True)
class CasGrant:
    """What a valid token allows: `scope` ("read" or "write", which includes read) on one repo, and
    who asked the hub for it (the user and the hubgate token used; None when anonymous)."""

    repo_pk: int
    repo_type: str
    repo_id: str
    scope: str
    expires: int  # seconds since the epoch
    user: str | None = None
    token_id: int | None = None

    @property
    def writes(self) -> bool:
        return self.scope == "write"


class TokenRefused(Exception):
    """Why a presented token is not accepted (the message is safe to show its client)."""


def is_cas_token(token: str) -> bool:
    return token.startswith(PREFIX)


class CasTokens:
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def mint(self, repo_pk: int, ref: RepoRef, scope: str, ttl: int, user: str | None = None,
             token_id: int | None = None) -> tuple[str, int]:
        """A token for `scope` on the hosted repo `repo_pk` (named `ref`), asked for by `user`
        through the hubgate token `token_id`, and when it expires."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be read or write, not {scope!r}")
        parts = (str(repo_pk), ref.type, ref.repo_id, scope, user or "", "" if token_id is None else str(token_id))
        expires, signature = self._signer.sign(_PURPOSE, *parts, ttl=ttl)
        payload = "\n".join([*parts, str(expires)]).encode()
        return f"{PREFIX}{base64.urlsafe_b64encode(payload).decode().rstrip('=')}.{signature}", expires

    def verify(self, token: str) -> CasGrant:
        """The grant of a token this server minted and that has not expired; TokenRefused otherwise."""
        body, _, signature = token.removeprefix(PREFIX).partition(".")
        if not is_cas_token(token) or len(token) > MAX_TOKEN or not signature:
            raise TokenRefused("Invalid Xet access token")
        try:
            fields = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\n")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise TokenRefused("Invalid Xet access token") from None
        if (len(fields) != 7 or not fields[0].isdigit() or not fields[6].isdigit() or fields[3] not in SCOPES
                or not (fields[5] == "" or fields[5].isdigit())):
            raise TokenRefused("Invalid Xet access token")
        pk, repo_type, repo_id, scope, user, token_id, expires = fields
        if int(expires) < time.time():
            raise TokenRefused("Xet access token expired: ask the hub for a new one")
        if not self._signer.verify(signature, int(expires), _PURPOSE, pk, repo_type, repo_id, scope, user, token_id):
            raise TokenRefused("Invalid Xet access token")
        return CasGrant(int(pk), repo_type, repo_id, scope, int(expires), user or None,
                        int(token_id) if token_id else None)
