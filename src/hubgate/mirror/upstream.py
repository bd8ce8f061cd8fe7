"""Talking to upstream hubs: failover in order, health, redirects, and where credentials go.

A credential is only ever sent to the origin of the upstream it belongs to: redirects to another
host (the Hub's CDN, presigned storage URLs) are followed without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from hubgate.config import UpstreamConfig

log = logging.getLogger("hubgate.mirror")

MAX_REDIRECTS = 5
T = TypeVar("T")


class UpstreamError(Exception):
    """An upstream could not answer (down, 5xx, timeout, redirect loop, bad bytes)."""

    def __init__(self, upstream: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream = upstream
        self.status = status


class UpstreamMissing(Exception):
    """An upstream answered definitively: this repo, revision or file does not exist (or is denied)."""

    def __init__(self, upstream: str, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{upstream}: {status} {code or ''} {message}".strip())
        self.upstream = upstream
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Health:
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    latency_ms: float | None = None
    saved_at: float = 0.0
    # Told each observation worth sharing: (succeeded, this health); the shared record merges them.
    on_change: Callable[[bool, Health], None] | None = None

    def ok(self, seconds: float) -> None:
        recovered = self.last_success is None or (self.last_error_at or 0) > self.last_success
        self.last_success = time.time()
        ms = seconds * 1000
        self.latency_ms = ms if self.latency_ms is None else 0.8 * self.latency_ms + 0.2 * ms
        if recovered or self.last_success - self.saved_at > 5:
            self._changed(True)

    def failed(self, message: str) -> None:
        self.last_error, self.last_error_at = message[:500], time.time()
        self._changed(False)

    def _changed(self, succeeded: bool) -> None:
        self.saved_at = time.time()
        if self.on_change:
            self.on_change(succeeded, self)


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


@dataclass
class Upstream:
    config: UpstreamConfig
    client: httpx.Client
    health: Health = field(default_factory=Health)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base(self) -> str:
        return self.config.url.rstrip("/")

    def auth_headers(self, url: str, token: str | None) -> dict[str, str]:
        """Authorization for `url`, only if it is this upstream's own origin."""
        if token and origin(url) == origin(self.base):
            return {"Authorization": f"Bearer {token}"}
        return {}

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        params: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        follow_foreign: bool = True,
    ) -> httpx.Response:
        """Send a request, following redirects by hand; the caller closes a streamed response."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        started = time.monotonic()
        for _hop in range(MAX_REDIRECTS + 1):
            request = self.client.build_request(
                method, url, params=params, data=data, headers={**(headers or {}), **self.auth_headers(url, token)}
            )
            try:
                response = self.client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                self.health.failed(f"{type(exc).__name__}: {exc}")
                raise UpstreamError(self.name, f"{type(exc).__name__}: {exc}") from exc
            if response.is_redirect and "location" in response.headers:
                target = urljoin(url, response.headers["location"])
                same = origin(target) == origin(self.base)
                if not same and not follow_foreign:
                    self.health.ok(time.monotonic() - started)
                    return response
                response.close()
                # A redirect that drops the query (`tree/{rev}` -> `tree/{rev}/`) keeps our parameters.
                url, params = target, (params if not urlsplit(target).query else None)
                continue
            if response.status_code >= 500 or response.status_code in (408, 429):
                response.close()
                message = f"HTTP {response.status_code} for {method} {url}"
                self.health.failed(message)
                raise UpstreamError(self.name, message, response.status_code)
            if token is not None and token == self.config.token and self.auth_headers(url, token):
                self._check_server_token(response)
            self.health.ok(time.monotonic() - started)
            return response
        message = f"too many redirects for {method} {path}"
        self.health.failed(message)
        raise UpstreamError(self.name, message)


    def _check_server_token(self, response: httpx.Response) -> None:
        """An upstream that rejects hubgate's own token is misconfigured here, not missing a repo:
        the admin is told (log, mirror status) and clients get 'Upstream unavailable' (503), not a
        misleading 401/404 RepoNotFound; the next upstream, if any, is asked instead."""
        if response.status_code != 401 or response.headers.get("x-error-code"):
            return
        if "invalid credentials" not in response.headers.get("x-error-message", "").lower():
            return
        response.close()
        message = f"rejects the configured token (401 Invalid credentials): check ${self.config.token_env}"
        log.error("upstream %s %s", self.name, message)
        self.health.failed(message)
        raise UpstreamError(self.name, message, 401)


def raise_for_missing(upstream: Upstream, response: httpx.Response) -> None:
    """Turn a definitive 4xx into UpstreamMissing (carrying the Hub's error code)."""
    if response.status_code < 400:
        return
    code = response.headers.get("x-error-code")
    message = response.headers.get("x-error-message", "")
    if not message:
        try:
            message = str(response.json().get("error", ""))
        except Exception:  # noqa: BLE001 - any non-JSON body
            message = ""
    response.close()
    raise UpstreamMissing(upstream.name, response.status_code, code, message)


class Upstreams:
    """The configured upstreams, tried in order; a definitive answer wins over errors."""

    def __init__(self, configs: list[UpstreamConfig], *, offline: bool = False) -> None:
        timeout = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=30.0)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, limits=httpx.Limits(max_connections=64))
        self.all = [Upstream(c, self._client) for c in configs]
        self.offline = offline
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.all)

    def by_name(self, name: str) -> Upstream | None:
        return next((u for u in self.all if u.name == name), None)

    def first(self, attempt: Callable[[Upstream], T], skip: set[str] | None = None) -> tuple[T, Upstream]:
        """The first upstream's answer to `attempt`; UpstreamMissing if one says 'no such thing'.

        Errors move on to the next upstream. A 'missing' answer also moves on (a mirror may
        lag behind), but is what the caller gets when no upstream has the thing.
        """
        if self.offline:
            raise UpstreamError("offline", "hubgate runs offline")
        missing: UpstreamMissing | None = None
        error: UpstreamError | None = None
        for upstream in self.all:
            if skip and upstream.name in skip:
                continue
            try:
                return attempt(upstream), upstream
            except UpstreamMissing as exc:
                missing = missing or exc
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # an answer of the wrong shape
                message = f"malformed answer: {type(exc).__name__}: {exc}"
                upstream.health.failed(message)
                log.warning("upstream %s failed: %s", upstream.name, message)
                error = UpstreamError(upstream.name, message)
            except UpstreamError as exc:
                log.warning("upstream %s failed: %s", upstream.name, exc)
                error = exc
        if missing is not None:
            raise missing
        raise error or UpstreamError("none", "no upstream configured")

    @contextmanager
    def stream(self, upstream: Upstream, url: str, token: str | None, headers: dict[str, str]) -> Iterator[httpx.Response]:
        response = upstream.request("GET", url, token=token, headers=headers, stream=True)
        try:
            yield response
        finally:
            response.close()

    def close(self) -> None:
        self._client.close()
