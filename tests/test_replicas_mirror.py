"""The mirror on replicas sharing one PostgreSQL database and one S3 bucket (SeaweedFS), each with
a data folder of its own (caches safe to lose) and the same server key (issue 10, items 1 and 3),
started by tests/replicas.py:

- 16 cold clients spread over three replicas by nginx: the upstream sends the file once (one lease
  per file in the database; clients of other replicas stream it from the replica fetching it);
- kill -9 of the replica fetching a file mid-transfer: another one takes over, every client ends
  with the right bytes or a broken download (never a complete wrong one), and the bucket and the
  database hold only the verified object;
- a cached file served from the bucket by any replica: whole and by Range (proxy), or by a
  presigned redirect for LFS files (redirect);
- eviction: one replica at a time (a lease in the database), least recently used first;
- upstream health seen by one replica, shown by another; `hubgate mirror pull` next to replicas.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import Server
from fakehub import FakeHub, make_large_file, start_fakehub
from processes import until
from replicas import Cluster, start_replicas

SIZE = 24 * 1024 * 1024
REPO = "hub/big"
CLIENTS = 16


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = make_large_file(tmp_path_factory.mktemp("weights") / "model.safetensors", SIZE, seed=11)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, weights: tuple[Path, str]) -> Iterator[FakeHub]:
    hub = start_fakehub(tmp_path_factory.mktemp("fake"), xet=False)
    hub.add_repo(REPO, {"model.safetensors": weights[0], "config.json": '{"layers": 2}'}, xet=False)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, fake: FakeHub) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
    """Two more 24 MiB files, in the repo `hub/pair`."""
    folder = tmp_path_factory.mktemp("pair")
    paths = [make_large_file(folder / f"part{i}.bin", SIZE, seed=20 + i) for i in range(2)]
    fake.add_repo("hub/pair", {p.name: p for p in paths}, xet=False)
    return tuple((p.read_bytes(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths)  # type: ignore[return-value]


@contextmanager
def mirror_replicas(tmp: Path, fake: FakeHub, count: int = 3, extra: str = "", serve: str = "proxy",
                    balancer: bool = False) -> Iterator[Cluster]:
    """`count` mirror replicas of `fake` (tests/replicas.py); their logs are printed when the test fails."""
    fake.reset()
    with start_replicas(tmp, count, serve=serve, upstreams=[fake.url], balancer=balancer,
                        config=f"[mirror]\nrevision_ttl = 0\n{extra}\n") as cluster:
        try:
            yield cluster
        finally:
            for index, server in enumerate(cluster.servers):
                print(f"--- replica {index} ---\n" + "".join(server.log[-40:]))
            fake.reset()


def blob_key(sha: str) -> str:
    return f"blobs/{sha[:2]}/{sha[2:4]}/{sha}"


def execute(database: str, statement: str, **params: object) -> None:
    engine = create_engine(database)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


def file_url(base: str, path: str = "model.safetensors", repo: str = REPO) -> str:
    return f"{base}/{repo}/resolve/main/{path}"


def download(url: str) -> bytes | None:
    """The whole file, or None when the download broke (a clean error: never a short 200)."""
    try:
        response = httpx.get(url, timeout=120)
    except httpx.HTTPError:
        return None
    assert response.status_code == 200, response.text
    assert len(response.content) == int(response.headers["content-length"])
    return response.content


def in_threads(urls: list[str]) -> list[bytes | None]:
    results: list[bytes | None] = [None] * len(urls)
    barrier = threading.Barrier(len(urls))

    def client(index: int) -> None:
        barrier.wait()
        results[index] = download(urls[index])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def upstream_bytes(fake: FakeHub, sha: str) -> int:
    return sum(entry["bytes"] for entry in fake.fetches(sha))


def test_sixteen_cold_clients_on_three_replicas_get_one_upstream_copy(
    tmp_path: Path, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    good, sha = weights[0].read_bytes(), weights[1]
    with mirror_replicas(tmp_path, fake, balancer=True) as cluster:
        # Slow enough that the clients of every replica arrive while the one transfer is under way.
        fake.fault("throttle", on=["cdn"], sha256=sha, bytes_per_second=8 * 1024 * 1024)
        results = in_threads([file_url(cluster.url) for _ in range(CLIENTS)])  # nginx: round robin
        assert all(result == good for result in results)
        assert len(set(cluster.served_by())) == 3  # every replica had clients
        assert len(fake.fetches(sha)) == 1
        assert upstream_bytes(fake, sha) <= 1.1 * SIZE
        assert cluster.blob_keys() == [blob_key(sha)]  # nothing else, nothing temporary
        # The clients that joined the one download are counted (shared counters: any replica tells).
        metrics = httpx.get(f"{cluster.urls[1]}/metrics", headers=cluster.servers[1].admin_headers()).text
        waits = [line for line in metrics.splitlines() if line.startswith("hubgate_mirror_singleflight_waits_total ")]
        assert waits and float(waits[0].split()[1]) >= CLIENTS // 2, waits
        # Served from the bucket by every replica, whole and by Range, with the Hub's headers.
        for url in cluster.urls:
            ranged = httpx.get(file_url(url), headers={"Range": "bytes=100-199"}, timeout=60)
            assert ranged.status_code == 206 and ranged.content == good[100:200]
            assert ranged.headers["x-linked-etag"] == f'"{sha}"'
        assert len(fake.fetches(sha)) == 1


def test_kill_9_of_the_fetching_replica_another_takes_over(tmp_path: Path, fake: FakeHub, weights: tuple[Path, str]) -> None:
    good, sha = weights[0].read_bytes(), weights[1]
    with mirror_replicas(tmp_path, fake) as cluster:
        fault = fake.fault("throttle", on=["cdn"], sha256=sha, bytes_per_second=2 * 1024 * 1024)
        results: list[bytes | None] = []
        threads = [threading.Thread(target=lambda i=i: results.append(download(file_url(cluster.urls[i % 3]))))
                   for i in range(6)]
        for thread in threads:
            thread.start()

        def parts(server: Server) -> list[Path]:
            return list((server.data / "tmp").glob("fetch-*.part"))

        # The fetching replica holds the lease and its part file grows: kill it well before the end.
        until(lambda: any(p.stat().st_size >= 2 * 1024 * 1024 for s in cluster.servers for p in parts(s)),
              "a replica's transfer under way")
        [(address,)] = cluster.servers[0].sql("SELECT url FROM mirror_leases")
        holder = cluster.urls.index(address)
        assert 0 < sum(p.stat().st_size for p in parts(cluster.servers[holder])) < SIZE
        cluster.kill(holder)
        fake.clear_fault(fault)
        for thread in threads:
            thread.join()
        assert all(result is None or result == good for result in results)  # never a complete wrong file
        others = [url for index, url in enumerate(cluster.urls) if index != holder]
        for url in others:  # a client trying again gets the file, fetched by a survivor
            assert download(file_url(url)) == good
        assert cluster.blob_keys() == [blob_key(sha)]  # nothing partial, nothing temporary
        # What the dead holder sent was never verified: a resume past byte 0 gets the whole file.
        resumed = httpx.get(file_url(others[0]), headers={"Range": f"bytes={SIZE // 2}-"}, timeout=60)
        assert resumed.status_code == 200 and resumed.content == good
        survivor = cluster.servers[(holder + 1) % 3]
        assert survivor.sql("SELECT sha256, size FROM mirror_files WHERE oid = :oid", oid=sha) == [(sha, SIZE)]
        assert survivor.sql("SELECT count(*) FROM mirror_leases") == [(0,)]


def test_eviction_one_replica_at_a_time_least_recently_used_first(
    tmp_path: Path, fake: FakeHub, pair: tuple[tuple[bytes, str], tuple[bytes, str]],
) -> None:
    (first, first_sha), (second, second_sha) = pair
    with mirror_replicas(tmp_path, fake, extra="cache_max_bytes = 40000000\nevict_grace = 0") as cluster:
        r0, r1, r2 = cluster.urls

        def stored() -> set[str]:
            return {key.rsplit("/", 1)[-1] for key in cluster.blob_keys()}

        assert download(file_url(r0, "part0.bin", "hub/pair")) == first
        assert download(file_url(r1, "part1.bin", "hub/pair")) == second  # over the limit: the older one goes
        until(lambda: stored() == {second_sha}, "the least recently used file evicted from the bucket")
        assert cluster.servers[2].sql("SELECT oid FROM mirror_files") == [(second_sha,)]
        # Another replica evicting now: nobody else does.
        execute(cluster.database_url, "INSERT INTO mirror_leases (name, holder, url, expires_at, streaming) "
                "VALUES ('evict', 'elsewhere', '', :until, false)", until=time.time() + 3600)
        assert download(file_url(r2, "part0.bin", "hub/pair")) == first  # fetched again, published
        assert stored() == {first_sha, second_sha}
        execute(cluster.database_url, "DELETE FROM mirror_leases WHERE name = 'evict'")
        assert download(file_url(r0, "config.json")) is not None  # the next publication evicts
        until(lambda: stored() & {first_sha, second_sha} == {first_sha}, "the least recently used file evicted")
        assert len(fake.fetches(first_sha)) == 2 and len(fake.fetches(second_sha)) == 1


def test_upstream_health_is_one_record_across_replicas(tmp_path: Path, fake: FakeHub) -> None:
    with mirror_replicas(tmp_path, fake) as cluster:
        r0, r1, r2 = cluster.urls
        def status(url: str) -> dict:  # one administrator, in the shared database
            answer = httpx.get(f"{url}/api/mirror/status", headers=cluster.servers[2].admin_headers(), timeout=30)
            assert answer.status_code == 200, answer.text
            return answer.json()["upstreams"][0]

        fault = fake.fault("status", on=["api"], status=502)
        assert httpx.get(f"{r0}/api/models/hub/never-seen", timeout=30).status_code == 503
        seen = status(r2)  # a replica that never asked: the failure r0 saw
        assert seen["healthy"] is False and "HTTP 502" in seen["lastError"]
        fake.clear_fault(fault)
        assert httpx.get(f"{r1}/api/models/{REPO}", timeout=30).status_code == 200
        assert status(r0)["healthy"] is True  # r1's success, seen from r0


def test_a_cached_file_redirects_to_the_bucket_from_any_replica(
    tmp_path: Path, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    good, sha = weights[0].read_bytes(), weights[1]
    with mirror_replicas(tmp_path, fake, count=2, serve="redirect") as cluster:
        assert download(file_url(cluster.urls[0])) == good  # cold: streamed while it arrives
        for url in cluster.urls:
            answer = httpx.get(file_url(url), timeout=60)
            assert answer.status_code == 302 and answer.headers["location"].startswith(cluster.store.endpoint)
            assert answer.headers["x-linked-etag"] == f'"{sha}"'
            assert answer.headers["x-linked-size"] == str(SIZE)
            ranged = httpx.get(answer.headers["location"], headers={"Range": "bytes=5-9"}, timeout=60)
            assert ranged.status_code == 206 and ranged.content == good[5:10]
        small = httpx.get(file_url(cluster.urls[1], "config.json"), timeout=60)  # not LFS: no redirect, as the Hub does
        assert small.status_code == 200 and small.json() == {"layers": 2}
        assert len(fake.fetches(sha)) == 1


def test_mirror_pull_holds_the_lease_and_fills_the_shared_bucket(
    tmp_path: Path, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    with mirror_replicas(tmp_path, fake, count=2) as cluster:
        cluster.cli("mirror", "pull", REPO)  # fails the test unless it succeeds
        assert blob_key(weights[1]) in cluster.blob_keys()
        assert download(file_url(cluster.urls[1])) == weights[0].read_bytes()  # from the bucket: no second copy
        assert len(fake.fetches(weights[1])) == 1
        assert cluster.servers[1].sql("SELECT count(*) FROM mirror_leases") == [(0,)]
