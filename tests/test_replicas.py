"""Three hubgate replicas on one PostgreSQL and one S3 bucket behind nginx (issue 10): what one
replica writes, every other serves; a replica killed mid-upload leaves nothing partial anywhere
while the others keep serving; gc and fsck from one replica while another serves."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from replicas import Cluster, start_replicas
from test_s3_blobs import lfs_upload_href


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


def test_a_link_signed_by_one_replica_is_honoured_by_another(cluster: Cluster) -> None:
    """Every replica has the same server key (HUBGATE_SECRET_KEY): an LFS upload link one replica
    signed is accepted by another, and a tampered one by none."""
    token = cluster.token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{cluster.urls[0]}/api/repos/create", json={"name": "signed", "organization": "alice"},
               headers=auth, timeout=30).raise_for_status()
    data = os.urandom(300_000)
    href = lfs_upload_href(cluster.servers[0], token, "alice/signed", sha256(data), len(data))
    assert href.startswith(cluster.urls[0] + "/")
    tampered = href[:-1] + ("0" if href[-1] != "0" else "1")
    assert httpx.put(tampered.replace(cluster.urls[0], cluster.urls[2]), content=data, timeout=60).status_code == 403
    moved = href.replace(cluster.urls[0], cluster.urls[1])
    assert httpx.put(moved, content=data, timeout=60).status_code == 200
    assert any(key.endswith(sha256(data)) for key in cluster.blob_keys())
