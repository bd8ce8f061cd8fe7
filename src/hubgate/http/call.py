"""What a handler receives: the request, the hub, the caller and the parsed parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from hubgate import constants
from hubgate.auth.accounts import Principal
from hubgate.auth.castokens import CasGrant
from hubgate.config import Settings
from hubgate.hub import Hub
from hubgate.ids import RepoRef, check_repo_type
from hubgate.repos.base import Repository
from hubgate.repos.hosted import HostedRepository


def base_url(request: Request, settings: Settings) -> str:
    """The server's address as clients reach it: `public_url` if set, else what the request names."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


@dataclass
class Call:
    request: Request
    hub: Hub
    params: dict[str, str]
    principal: Principal | None
    body: Any = None
    upstream_token: str | None = None  # a client's own upstream token (passthrough), never a hubgate one
    authorized: Repository | None = None  # the repo of a repo action, opened and checked by the gate
    audit: dict[str, Any] = field(default_factory=dict)  # details for this request's audit record
    cas_token: str | None = None  # a Xet CAS token presented as the bearer token (checked by the gate)
    cas_grant: CasGrant | None = None  # what that token allows, once the gate accepted it (CAS actions)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def query(self):  # type: ignore[no-untyped-def]
        return self.request.query_params

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true", "yes")

    @property
    def base_url(self) -> str:
        return base_url(self.request, self.hub.settings)

    @property
    def repo_ref(self) -> RepoRef:
        """The repo named by the path: `/api/{plural}/{id}` or `/{prefix}{id}`."""
        if "plural" in self.params:
            repo_type = constants.PLURAL_TO_REPO_TYPE[self.params["plural"]]
        else:
            repo_type = {"": "model", "datasets/": "dataset", "spaces/": "space"}[self.params.get("prefix", "")]
        repo_id = self.params["repo_id"]
        if "/" not in repo_id:  # a legacy one-segment id (`gpt2`): only an upstream can resolve it
            return RepoRef.legacy(repo_type, repo_id)
        return RepoRef.parse(check_repo_type(repo_type), repo_id)

    @property
    def cas(self) -> CasGrant:
        """The Xet CAS token's grant of a CAS action, already checked."""
        assert self.cas_grant is not None, "a CAS action's handler runs only with its grant"
        return self.cas_grant

    @property
    def repo(self) -> Repository:
        """The repo this call's action is about, already authorised."""
        assert self.authorized is not None, "a repo action's handler runs only with its repo"
        return self.authorized

    @property
    def hosted_repo(self) -> HostedRepository:
        """The repo of a write or manage action, which is always a hosted one."""
        assert isinstance(self.authorized, HostedRepository)
        return self.authorized
