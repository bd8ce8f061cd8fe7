"""The LFS batch API takes at most 1,000 objects per request, as the Hub caps a request's
parameters (issue 6, item 9); huggingface_hub sends 256 at a time."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from huggingface_hub import HfApi

from conftest import Server

http = httpx.Client(timeout=60)


def _objects(n: int) -> list[dict[str, object]]:
    return [{"oid": hashlib.sha256(str(i).encode()).hexdigest(), "size": i} for i in range(n)]


@pytest.fixture(scope="module")
def public_repo(server: Server, alice_token: str) -> str:
    repo_id = f"alice/batch-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.url, token=alice_token).create_repo(repo_id)
    return repo_id


@pytest.mark.parametrize("operation", ["download", "upload"])
def test_batch_object_count_is_capped(server: Server, alice_token: str, public_repo: str, operation: str) -> None:
    url = f"{server.url}/{public_repo}.git/info/lfs/objects/batch"
    headers = {"Authorization": f"Bearer {alice_token}"}
    at_limit = http.post(url, json={"operation": operation, "objects": _objects(1000)}, headers=headers)
    assert at_limit.status_code == 200 and len(at_limit.json()["objects"]) == 1000
    for count in (1001, 150_000):
        over = http.post(url, json={"operation": operation, "objects": _objects(count)}, headers=headers)
        assert over.status_code == 413, over.text[:200]
        assert "at most 1000" in over.json()["error"] and len(over.content) < 1000


def test_anonymous_download_batch_is_capped(server: Server, public_repo: str) -> None:
    url = f"{server.url}/{public_repo}.git/info/lfs/objects/batch"
    response = http.post(url, json={"operation": "download", "objects": _objects(100_000)})
    assert response.status_code == 413 and len(response.content) < 1000
