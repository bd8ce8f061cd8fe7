"""What the audit log hears of one request: who, which action on what, and how it ended.

The record is written after the answer was sent (or broke off): `bytes` is what was sent and
`complete` whether the whole answer went out, so nothing is logged as done that was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Send

from hubgate.audit import AuditLog
from hubgate.auth.accounts import Principal
from hubgate.auth.gate import Action, Subject

# Reads of metadata are not recorded (their volume would drown the rest); everything else is, and
# so is a request refused before its action was known (a route choosing it from a malformed body).
RECORDED = frozenset({
    Action.DOWNLOAD, Action.REQUEST_ACCESS, Action.DISCUSS, Action.AUTHOR, Action.WRITE_REPO, Action.MANAGE_REPO,
    Action.CREATE_REPO, Action.MANAGE_TOKENS, Action.ADMIN, Action.CAS_WRITE,
})
KINDS = {Action.DOWNLOAD: "download", Action.WRITE_REPO: "upload", Action.CREATE_REPO: "repo",
         Action.MANAGE_REPO: "repo", Action.MANAGE_TOKENS: "token", Action.REQUEST_ACCESS: "access",
         Action.DISCUSS: "discussion", Action.AUTHOR: "discussion", Action.ADMIN: "admin", Action.CAS_WRITE: "upload"}
UNDECIDED = "refused"  # the kind of a request refused while its action was being chosen


@dataclass
class RequestTrail:
    request: Request
    principal: Principal | None = None
    action: Action | None = None
    subject: Subject | None = None
    params: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # set by handlers: commit id, cache status, ...
    on_behalf_of: tuple[str | None, int | None] = (None, None)  # user and token id behind a Xet CAS token
    auth_failed: bool = False
    undecided: bool = False  # refused while its route chose the action
    status: int = 0
    sent: int = 0
    complete: bool = False
    declared_length: int | None = None

    def counting(self, send: Send) -> Send:
        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                for name, value in message.get("headers", []):
                    if name == b"content-length":
                        self.declared_length = int(value)
                    elif name == b"x-repo-commit":
                        self.details.setdefault("commit", value.decode("latin-1"))
            elif message["type"] == "http.response.body":
                self.sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    self.complete = True
            await send(message)

        counted.__wrapped__ = send  # type: ignore[attr-defined]  # responses.py finds uvicorn's sender for sendfile()
        return counted

    def record(self, audit: AuditLog) -> None:
        if self.auth_failed:
            audit.record("auth_failure", status=401, **self._origin())
            return
        if self.request.method == "HEAD" or (self.action not in RECORDED and not self.undecided and "kind" not in self.details):
            return  # (a handler naming the kind asks for its record: a Xet reconstruction is a download)
        sent = self.sent
        if self.complete and self.declared_length is not None and sent < self.declared_length:
            sent = self.declared_length  # the body went out with sendfile, past this counter
        who = self.principal
        audit.record(
            self.details.pop("kind", None) or (KINDS[self.action] if self.action is not None else UNDECIDED),
            action=self.action.value if self.action is not None else None, status=self.status, complete=self.complete, bytes=sent,
            user=who.name if who else self.on_behalf_of[0], token_id=who.token_id if who else self.on_behalf_of[1],
            token_name=who.token_name if who else None, repo=self._repo(),
            revision=self.params.get("rev"), **self.details, **self._origin(),
        )

    def _repo(self) -> str | None:
        if self.subject is None:
            return self.params.get("repo_id")
        if self.subject.ref is not None:
            return str(self.subject.ref)
        return self.subject.namespace or self.subject.user

    def _origin(self) -> dict[str, Any]:
        request = self.request
        return {
            "method": request.method, "path": request.url.path,
            "client": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent", "")[:300] or None,
        }
