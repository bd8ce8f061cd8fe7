"""A mirrored repo's discussions and pull requests: its upstream's, read-only.

Asked for on each call, not cached (they change all the time, and a stale list would hide new
comments), with the credentials of every other upstream call: the server's token only to its own
upstream, a client's own token only where that upstream takes it. Offline, or with no upstream
answering, the caller learns that clearly (503); writes are refused by the routes.
"""

from __future__ import annotations

from typing import Any

from hubgate.errors import HubError, NotFound
from hubgate.mirror.repository import MirroredRepository, NotCached, UpstreamUnavailable, missing_to_error
from hubgate.mirror.upstream import Upstream, UpstreamError, UpstreamMissing, raise_for_missing

# What huggingface_hub sends to list discussions; nothing else is passed on.
LIST_PARAMS = ("p", "type", "status", "author", "search", "sort")


def upstream_discussions(repo: MirroredRepository, query: dict[str, str]) -> dict[str, Any]:
    """A page of the upstream's discussions of `repo` (`query`: the client's filters and page)."""
    params = {k: v for k, v in query.items() if k in LIST_PARAMS and len(v) <= 200}
    return _ask(repo, "", params, "The discussion list")


def upstream_discussion(repo: MirroredRepository, num: int, diff: bool) -> dict[str, Any]:
    """One discussion or pull request of `repo` as its upstream details it (with the diff if asked)."""
    return _ask(repo, f"/{num}", {"diff": "1"} if diff else {}, f"Discussion {num}")


def _ask(repo: MirroredRepository, suffix: str, params: dict[str, str], what: str) -> dict[str, Any]:
    ref = repo.ref
    if repo.mirror.offline:
        raise NotCached(f"{what} of {ref}")
    path = f"/api/{ref.plural}/{ref.repo_id}/discussions{suffix}"

    def attempt(upstream: Upstream) -> dict[str, Any]:
        response = upstream.request("GET", path, token=repo.token_for(upstream), params=params)
        raise_for_missing(upstream, response)
        answer = response.json()
        if not isinstance(answer, dict):
            raise ValueError(f"{path} answered {type(answer).__name__}, not an object")
        return answer

    try:
        return repo.mirror.upstreams.first(attempt)[0]
    except UpstreamMissing as exc:
        if exc.code:  # the repo is missing, gated, disabled...: as for its other calls
            raise missing_to_error(ref, exc, what) from exc
        if exc.status == 404:
            raise NotFound(exc.message or f"{what} of {ref} not found upstream") from exc
        raise HubError(exc.message or f"{what} of {ref}: refused upstream", status=exc.status) from exc
    except UpstreamError as exc:
        raise UpstreamUnavailable(f"{what.lower()} of {ref}", exc) from exc
