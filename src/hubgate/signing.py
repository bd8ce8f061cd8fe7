"""Presigned URLs: an HMAC over what the URL allows, so it needs no Authorization header."""

from __future__ import annotations

import hashlib
import hmac
import time


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, *parts: str, ttl: int) -> tuple[int, str]:
        expires = int(time.time()) + ttl
        return expires, self._mac(expires, parts)

    def verify(self, signature: str, expires: int, *parts: str) -> bool:
        if expires < time.time() or not signature.isascii():
            return False
        return hmac.compare_digest(signature, self._mac(expires, parts))

    def _mac(self, expires: int, parts: tuple[str, ...]) -> str:
        message = "\n".join([str(expires), *parts]).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
