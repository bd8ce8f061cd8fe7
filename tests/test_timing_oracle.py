"""A private repo the caller may not see costs what a missing one does (issue 6, item 3).

Timing itself is measured by bench/timing.py (interleaved pairs; docs/benchmarks.md); here the
work is compared: the same database statements, in the same order, whether the repo exists or
not, for anonymous callers and for authenticated outsiders, with and without a mirror.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from hubgate.auth.accounts import Principal
from hubgate.auth.gate import Action, Subject
from hubgate.config import Settings, UpstreamConfig
from hubgate.errors import RepoNotFound
from hubgate.hub import Hub
from hubgate.ids import RepoRef
from hubgate.repos.service import Author


@pytest.fixture(params=["hosted only", "with a mirror"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    # the upstream is never contacted: the namespace is a local user's
    upstream = [UpstreamConfig(name="up", url="http://127.0.0.1:9")] if request.param == "with a mirror" else []
    hub = Hub(Settings.load(data=tmp_path / "data", upstream=upstream))
    try:
        hub.accounts.add_user("owner")
        hub.accounts.add_user("outsider")
        hub.repos.create(RepoRef("model", "owner", "private-model"), private=True, author=Author("owner", "o@x"))
        yield hub
    finally:
        hub.close()


def _statements(hub: Hub, principal: Principal | None, name: str) -> list[str]:
    seen: list[str] = []

    def record(_conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        seen.append(re.sub(r"\s+", " ", statement))

    event.listen(hub.metadata.engine, "before_cursor_execute", record)
    try:
        for action in (Action.READ_REPO, Action.DOWNLOAD, Action.WRITE_REPO):
            with pytest.raises(RepoNotFound):
                hub.gate.authorize(principal, action, Subject(ref=RepoRef("model", "owner", name)))
    finally:
        event.remove(hub.metadata.engine, "before_cursor_execute", record)
    return seen


def test_private_and_missing_repos_do_the_same_work(hub: Hub) -> None:
    secret = hub.accounts.tokens.create("outsider", role="write").secret
    outsider = hub.accounts.principal(secret, None)
    for principal in (None, outsider):
        private = _statements(hub, principal, "private-model")
        missing = _statements(hub, principal, "missing-model")
        assert private and private == missing
