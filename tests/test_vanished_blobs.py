"""A file whose blob is removed between its lookup and its opening (evicted from the mirror's cache,
collected, quarantined) gets a clean answer, not a 500: 404 for a stored file, 503 (try again:
it is fetched anew) for a cached copy of an upstream file. The window is too narrow to hit
through a server, so the response is driven directly as the ASGI server would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from hubgate.http.responses import ContentResponse
from hubgate.repos.base import Content


def answer(response: ContentResponse) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(response, {"type": "http", "method": "GET", "headers": []}, receive, send)
    head = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return head["status"], {k.decode(): v.decode() for k, v in head["headers"]}, body


@pytest.mark.parametrize(("refetchable", "status"), [(False, 404), (True, 503)])
def test_a_blob_gone_before_it_is_opened_gets_a_clean_answer(tmp_path: Path, refetchable: bool, status: int) -> None:
    gone = tmp_path / "blob"  # looked up a moment ago, removed since
    got_status, headers, body = answer(ContentResponse(Content(10, opener=gone.open, refetchable=refetchable), {}, None))
    assert got_status == status and json.loads(body)["error"]
    assert ("retry-after" in headers) == refetchable
