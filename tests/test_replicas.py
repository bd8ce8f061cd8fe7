"""Three hubgate replicas on one PostgreSQL and one S3 bucket behind nginx (issue 10): what one
replica writes, every other serves; a replica killed mid-upload leaves nothing partial anywhere
while the others keep serving; gc and fsck from one replica while another serves."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from replicas import Cluster, start_replicas


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_replicas(tmp_path_factory.mktemp("replicas")) as started:
        yield started


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_balancer_spreads_requests_and_passes_over_a_killed_replica(cluster: Cluster) -> None:
    before = len(cluster.served_by())
    for _ in range(6):
        assert httpx.get(f"{cluster.url}/healthz", timeout=30).status_code == 200
    assert {address.rsplit(":", 1)[1] for address in cluster.served_by()[before:]} == {str(p) for p in cluster.ports}
    cluster.kill(1)
    for _ in range(6):
        assert httpx.get(f"{cluster.url}/api/models", timeout=30).status_code == 200
    restarted = cluster.restart(1)
    assert httpx.get(f"{restarted.url}/readyz", timeout=30).status_code == 200
    assert restarted.url == cluster.urls[1]
