"""Every error the API can answer, and how it maps to an HF-style response.

Clients read `X-Error-Code`, `X-Error-Message` and a JSON body `{"error": ...}`; the table of
hub-protocol §2 is encoded here and nowhere else.
"""

from __future__ import annotations


class HubError(Exception):
    """An error with an HTTP status and, where clients key on it, an `X-Error-Code`."""

    status: int = 400
    code: str | None = None

    def __init__(self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def response_headers(self) -> dict[str, str]:
        headers = {"X-Error-Message": _header_safe(self.message)}
        if self.code:
            headers["X-Error-Code"] = self.code
        headers.update(self.headers)
        return headers


def _header_safe(text: str) -> str:
    """The message as an ASCII header value of bounded length (`http.headers` makes every value
    valid just before it is sent)."""
    if len(text) > MAX_HEADER_MESSAGE:  # a message quoting a huge input must not make a huge header
        text = text[: MAX_HEADER_MESSAGE - 3] + "..."
    return text.encode("ascii", "replace").decode("ascii")


MAX_HEADER_MESSAGE = 1000


class BadRequest(HubError):
    status = 400


class InvalidCredentials(HubError):
    status = 401

    def __init__(self) -> None:
        super().__init__("Invalid credentials in Authorization header")


class Unauthorized(HubError):
    status = 401


class Forbidden(HubError):
    status = 403


class NotFound(HubError):
    status = 404


class RepoNotFound(HubError):
    """Missing, or private and not visible: 401 for anonymous callers, 404 otherwise."""

    code = "RepoNotFound"

    def __init__(self, repo: str, *, anonymous: bool) -> None:
        super().__init__(f"Repository Not Found for url: {repo}.", status=401 if anonymous else 404)


class RepoNotCached(RepoNotFound):
    """Offline, a mirrored repo the cache does not hold: answered as a missing repo (same status and
    X-Error-Code, which clients key on) and said as what it is, as for revisions (NotCached)."""

    def __init__(self, repo: str, *, anonymous: bool) -> None:
        HubError.__init__(self, f"Repository {repo} is not cached (hubgate runs offline)",
                          status=401 if anonymous else 404)


class GatedRepo(HubError):
    """A gated repo's files, asked for by someone not granted access: 401 anonymous, 403 otherwise.

    `refused` says it in the Hub's words, which huggingface_hub shows after its own `Cannot access
    gated repo for url ...`; a refusal that invites the caller to ask for access ends with the
    repo's page, completed by `visit` (the server's address is known only to the HTTP layer).
    """

    code = "GatedRepo"

    def __init__(self, message: str, *, anonymous: bool, page: str | None = None) -> None:
        super().__init__(message, status=401 if anonymous else 403)
        self.page = page

    @classmethod
    def refused(cls, kind: str, repo_id: str, page: str | None, *, anonymous: bool, request: str | None = None) -> GatedRepo:
        """`kind` model, dataset or space; `page` where access is asked for here (None: not here);
        `request` the caller's access request (pending, rejected)."""
        what = f"{kind} {repo_id}"
        if anonymous:
            return cls(f"Access to {what} is restricted. You must have access to it and be authenticated to access it. "
                       "Please log in.", anonymous=True)
        if request == "pending":
            return cls(f"Your request to access {what} is awaiting a review from the repo authors.", anonymous=False)
        if request == "rejected":
            return cls(f"Your request to access {what} has been rejected by the repo's authors.", anonymous=False)
        return cls(f"Access to {what} is restricted and you are not in the authorized list.", anonymous=False, page=page)

    def visit(self, base_url: str) -> None:
        """End the message with where access is asked for, as the Hub does."""
        if self.page is not None:
            self.message += f" Visit {base_url}/{self.page} to ask for access."
            self.page = None


class RepoDisabled(HubError):
    """A repo disabled on the Hub: huggingface_hub raises DisabledRepoError on exactly this message."""

    status = 403
    MESSAGE = "Access to this resource is disabled."

    def __init__(self, *, status: int | None = None) -> None:
        super().__init__(self.MESSAGE, status=status)


class RevisionNotFound(HubError):
    status = 404
    code = "RevisionNotFound"

    def __init__(self, revision: str) -> None:
        super().__init__(f"Invalid rev id: {revision}")


class EntryNotFound(HubError):
    status = 404
    code = "EntryNotFound"

    def __init__(self, path: str, *, commit: str | None = None, message: str | None = None) -> None:
        headers = {"X-Repo-Commit": commit} if commit else None
        super().__init__(message or f"Entry not found: {path}", headers=headers)


class Conflict(HubError):
    status = 409


class InvalidPath(HubError):
    """A path that a commit or an upload names and no repo may hold: 422, as the Hub answers."""

    status = 422


class PreconditionFailed(HubError):
    status = 412


class RangeNotSatisfiable(HubError):
    status = 416


class PayloadTooLarge(HubError):
    status = 413


class TooManyRequests(HubError):
    """The Hub's 429: too many requests (here, failed authentications) from this address."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(HubError):
    """The server ran out of something (open files, database connections): try again shortly."""

    status = 503

    def __init__(self, message: str = "Server busy, try again shortly", *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class RepoMoved(HubError):
    """A repo asked for by a former name: a redirect to the same address under its current one."""

    status = 307

    def __init__(self, old_id: str, new_id: str) -> None:
        super().__init__(f"Repository moved to {new_id}")
        self.old_id, self.new_id = old_id, new_id

    def point(self, raw_path: str, query: str) -> None:
        """Set `Location` (relative, as the Hub sends it) for the request at `raw_path`."""
        old, new = f"/{self.old_id}", f"/{self.new_id}"
        start = raw_path.lower().find(old.lower() + "/")
        if start < 0 and raw_path.lower().endswith(old.lower()):
            start = len(raw_path) - len(old)
        location = raw_path[:start] + new + raw_path[start + len(old):] if start >= 0 else raw_path
        self.headers["Location"] = location + (f"?{query}" if query else "")
