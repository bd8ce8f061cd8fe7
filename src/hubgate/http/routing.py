"""Routing on the raw request path.

Clients send revisions as `quote(rev, safe="")`, so `refs/pr/1` arrives as `refs%2Fpr%2F1`;
matching the decoded path would make `resolve/{rev}/{file}` ambiguous. Patterns here match the
raw path and each captured value is percent-decoded afterwards.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from hubgate.auth.gate import Action, Subject
from hubgate.errors import BadRequest

if TYPE_CHECKING:
    from hubgate.http.call import Call

# Fragments shared by the patterns of every route module.
API_TYPE = r"(?P<plural>models|datasets|spaces)"
REPO_ID = r"(?P<repo_id>[^/]+(?:/[^/]+)?)"
FILE_PREFIX = r"(?P<prefix>datasets/|spaces/)?"
REV = r"(?P<rev>[^/]+)"
PATH = r"(?P<path>.+)"

Handler = Callable[..., Any]
# What a route does: declared once, or (one route, two uses) chosen from the parsed call.
Declared = Action | Callable[["Call"], Action]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler
    body: str | None  # None | "json" | "form" | "stream"
    action: Declared
    # The repo / namespace acted on, from the body; None: the repo named by the path.
    subject: Callable[[Call], Subject] | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


class RouteTable:
    """Routes in declaration order; each module of `http.routes` fills one."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        methods: str,
        pattern: str,
        *,
        action: Declared,
        body: str | None = None,
        subject: Callable[[Call], Subject] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler; `action` is what the single authorisation point checks first."""

        def register(handler: Handler) -> Handler:
            compiled = re.compile(f"^{pattern}$")
            self.routes.append(Route(frozenset(methods.split()), compiled, handler, body, action, subject))
            return handler

        return register


def match(routes: list[Route], method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None | bool:
    """The route and decoded parameters; False when the path exists for other methods only."""
    path_matched = False
    for route in routes:
        found = route.pattern.match(raw_path)
        if not found:
            continue
        path_matched = True
        if method in route.methods or (method == "HEAD" and "GET" in route.methods):
            try:
                params = {k: unquote(v, errors="strict") for k, v in found.groupdict().items() if v is not None}
            except UnicodeDecodeError as exc:
                raise BadRequest("The URL holds a percent-encoded sequence that is not UTF-8") from exc
            return route, params
    return False if path_matched else None

