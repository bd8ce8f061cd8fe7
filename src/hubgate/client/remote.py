"""Talking to hubs (hubgate, huggingface.co, mirrors): endpoints, their tokens, the few API calls.

An endpoint is a base URL; `http://mirror:8000#MIRROR_TOKEN` reads that endpoint's token from the
environment variable named after `#` (the fragment never leaves this machine). Without one, the
token is `HF_TOKEN` or the token file huggingface_hub writes (`HF_TOKEN_PATH`, `$HF_HOME/token`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from hubgate.client.layout import hf_home
from hubgate.errors import BadRequest
from hubgate.ids import RepoRef, check_path, is_commit_id

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class RemoteError(BadRequest):
    """An endpoint refused or could not answer; `refused` when it was the token."""

    def __init__(self, endpoint: str, message: str, *, status: int = 0) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.status_code = status

    @property
    def refused(self) -> bool:
        return self.status_code in (401, 403)


def default_token() -> str | None:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token.strip()
    path = Path(os.environ.get("HF_TOKEN_PATH") or hf_home() / "token")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None

    @classmethod
    def parse(cls, text: str, fallback_token: str | None) -> Endpoint:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadRequest(f"not an endpoint URL: {text!r}")
        url = text.split("#", 1)[0].rstrip("/")
        if parts.fragment:
            token = os.environ.get(parts.fragment)
            if not token:
                raise BadRequest(f"endpoint {url}: environment variable {parts.fragment} is not set")
            return cls(url, token.strip())
        return cls(url, fallback_token)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def endpoints(given: Sequence[str], from_lock: Sequence[str] = ()) -> list[Endpoint]:
    """`--endpoint`s, else the lock's, else `HF_ENDPOINT`, else huggingface.co."""
    chosen = list(given) or list(from_lock) or [os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT]
    token = default_token()
    return [Endpoint.parse(text, token) for text in chosen]


def _error(endpoint: Endpoint, response: httpx.Response, what: str) -> RemoteError:
    message = response.headers.get("x-error-message") or ""
    if not message:
        try:
            body = response.json()
            message = body.get("error", "") if isinstance(body, dict) else ""
        except ValueError:
            message = ""
    if response.status_code in (401, 403):
        hint = "token refused" if endpoint.token else "no token sent (set HF_TOKEN or use URL#TOKEN_VAR)"
        status = response.status_code
        return RemoteError(endpoint.url, f"{what}: {hint}: {status} {message}".rstrip(), status=status)
    return RemoteError(endpoint.url, f"{what}: HTTP {response.status_code} {message}".rstrip(), status=response.status_code)


def file_url(endpoint: Endpoint, ref: RepoRef, commit: str, path: str) -> str:
    return f"{endpoint.url}/{ref.url_path}/resolve/{commit}/{quote(path)}"


class Hubs:
    """The endpoints, tried in order: the first that answers wins; unreachable ones sink."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        if not endpoints:
            raise BadRequest("no endpoint")
        self.endpoints = endpoints
        self.client = httpx.Client(timeout=TIMEOUT, follow_redirects=True,
                                   limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self._down: set[str] = set()

    def close(self) -> None:
        self.client.close()

    def ordered(self) -> list[Endpoint]:
        return sorted(self.endpoints, key=lambda e: e.url in self._down)

    def mark_down(self, endpoint: Endpoint) -> None:
        self._down.add(endpoint.url)

    def first(self, attempt: Callable[[Endpoint], T]) -> T:
        """`attempt` on each endpoint until one succeeds; the last error if none does.

        A 404 or 401/403 is an answer too, but another endpoint may still have the repo (a mirror
        with a token, the origin without): every endpoint is asked before giving up.
        """
        errors: list[RemoteError] = []
        for endpoint in self.ordered():
            try:
                return attempt(endpoint)
            except httpx.HTTPError as exc:
                self.mark_down(endpoint)
                errors.append(RemoteError(endpoint.url, f"unreachable: {exc.__class__.__name__}: {exc}"))
            except RemoteError as exc:
                errors.append(exc)
        refused = [e for e in errors if e.refused]
        raise (refused or errors)[0]

    def _get_json(self, endpoint: Endpoint, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = self.client.get(endpoint.url + path, headers=endpoint.headers(), params=params)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A kept-alive connection the server closed as this GET went out: asked once more, anew.
            response = self.client.get(endpoint.url + path, headers=endpoint.headers(), params=params)
        if response.status_code != 200:
            raise _error(endpoint, response, what)
        return response.json()

    def resolve(self, ref: RepoRef, revision: str) -> tuple[str, Endpoint]:
        """The commit a revision names now, and the endpoint that said so."""
        def attempt(endpoint: Endpoint) -> tuple[str, Endpoint]:
            path = f"/api/{ref.plural}/{ref.repo_id}/revision/{quote(revision, safe='')}"
            info = self._get_json(endpoint, path, f"{ref}@{revision}")
            sha = str(info.get("sha", "")) if isinstance(info, dict) else ""
            if not is_commit_id(sha):
                raise RemoteError(endpoint.url, f"{ref}@{revision}: no commit id in the answer")
            return sha, endpoint

        return self.first(attempt)

    def tree(self, endpoint: Endpoint, ref: RepoRef, commit: str) -> list[dict[str, Any]]:
        """Every file entry of a commit (recursive, all pages), checked."""
        entries: list[dict[str, Any]] = []
        url: str | None = f"{endpoint.url}/api/{ref.plural}/{ref.repo_id}/tree/{commit}"
        params: dict[str, str] | None = {"recursive": "true", "expand": "false"}
        while url:
            response = self.client.get(url, headers=endpoint.headers(), params=params)
            if response.status_code != 200:
                raise _error(endpoint, response, f"{ref}@{commit}: tree")
            for item in response.json():
                if item.get("type") == "file":
                    check_path(item["path"])
                    entries.append(item)
            url, params = response.links.get("next", {}).get("url"), None
            if url and not url.startswith(endpoint.url):
                raise RemoteError(endpoint.url, f"pagination leaves the endpoint: {url}")
        return entries

    @contextmanager
    def stream(self, endpoint: Endpoint, ref: RepoRef, commit: str, path: str,
               start: int = 0, end: int | None = None) -> Iterator[httpx.Response]:
        """GET a file (from byte `start`, to `end` inclusive); the answer is 200 or 206, else an error."""
        headers = {**endpoint.headers(), "Accept-Encoding": "identity"}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        with self.client.stream("GET", file_url(endpoint, ref, commit, path), headers=headers) as response:
            if response.status_code not in (200, 206):
                response.read()
                raise _error(endpoint, response, f"{ref}@{commit[:12]}/{path}")
            yield response
