"""The mirror on three replicas sharing one PostgreSQL database and one S3 bucket (SeaweedFS),
each with a data folder of its own (caches safe to lose) and the same server key (issue 10, item 3).

- 16 cold clients spread over the replicas: the upstream sends the file about once (one lease per
  file in the database; clients of other replicas stream it from the replica fetching it);
- kill -9 of the replica fetching a file mid-transfer: another one takes over, every client ends
  with the right bytes or a broken download (never a complete wrong one), and the bucket and the
  database hold only the verified object;
- a cached file served from the bucket by a replica that never fetched it, whole and by Range;
- eviction: one replica at a time (a lease in the database), least recently used first, whichever
  replica published the file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import Server, start_server
from databases import DATABASES
from fakehub import FakeHub, make_large_file, start_fakehub
from processes import until
from test_s3_blobs import BUCKET, ENV, PART, Seaweed, seaweed  # noqa: F401 - fixture reuse

SIZE = 24 * 1024 * 1024
REPO = "hub/big"
CLIENTS = 16


@dataclass
class Replicas:
    servers: list[Server]
    prefix: str
    database: str

    def stop(self) -> None:
        for index, server in enumerate(self.servers):
            server.stop()
            print(f"--- replica {index} ---\n" + "".join(server.log[-40:]))  # shown when the test fails


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


def start_replicas(tmp: Path, seaweed: Seaweed, fake: FakeHub, count: int = 3, extra: str = "",
                   serve: str = "proxy") -> Replicas:
    prefix = f"{tmp.name}/"
    database = DATABASES.fresh()
    key = secrets.token_hex(32)
    config = tmp / "hubgate.toml"
    config.write_text(f"""
[blobs]
backend = "s3"
endpoint_url = "{seaweed.endpoint}"
bucket = "{BUCKET}"
prefix = "{prefix}"
part_size = {PART}
serve = "{serve}"

[[upstream]]
name = "hub"
url = "{fake.url}"

[mirror]
revision_ttl = 0
{extra}
""")
    replicas = Replicas([], prefix, database)
    try:
        for index in range(count):
            data = tmp / f"replica{index}"
            data.mkdir(mode=0o700)
            (data / "secret.key").write_text(key)  # the one server key every replica shares
            replicas.servers.append(start_server(data, config=config, env={**ENV, "HUBGATE_DATABASE_URL": database}))
    except BaseException:
        replicas.stop()
        raise
    return replicas


def execute(database: str, statement: str, **params: object) -> None:
    engine = create_engine(database)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


def file_url(server: Server, path: str = "model.safetensors", repo: str = REPO) -> str:
    return f"{server.url}/{repo}/resolve/main/{path}"


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
    tmp_path: Path, seaweed: Seaweed, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    fake.reset()
    good = weights[0].read_bytes()
    # Slow enough that the clients of every replica arrive while the one transfer is under way.
    fake.fault("throttle", on=["cdn"], sha256=weights[1], bytes_per_second=8 * 1024 * 1024)
    replicas = start_replicas(tmp_path, seaweed, fake)
    try:
        results = in_threads([file_url(replicas.servers[i % 3]) for i in range(CLIENTS)])
        assert all(result == good for result in results)
        assert len(fake.fetches(weights[1])) == 1
        assert upstream_bytes(fake, weights[1]) <= 1.1 * SIZE
        assert seaweed.keys(f"{replicas.prefix}blobs/") == [f"{replicas.prefix}blobs/{weights[1][:2]}/{weights[1][2:4]}/{weights[1]}"]
        assert seaweed.keys(f"{replicas.prefix}tmp/") == []
        # Served from the bucket by every replica, whole and by Range, with the Hub's headers.
        for server in replicas.servers:
            ranged = httpx.get(file_url(server), headers={"Range": "bytes=100-199"}, timeout=60)
            assert ranged.status_code == 206 and ranged.content == good[100:200]
            assert ranged.headers["x-linked-etag"] == f'"{weights[1]}"'
        assert len(fake.fetches(weights[1])) == 1
    finally:
        replicas.stop()
        fake.reset()


def test_kill_9_of_the_fetching_replica_another_takes_over(
    tmp_path: Path, seaweed: Seaweed, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    fake.reset()
    good = weights[0].read_bytes()
    fault = fake.fault("throttle", on=["cdn"], sha256=weights[1], bytes_per_second=2 * 1024 * 1024)
    replicas = start_replicas(tmp_path, seaweed, fake)
    try:
        results: list[bytes | None] = []
        threads = [threading.Thread(target=lambda i=i: results.append(download(file_url(replicas.servers[i % 3]))))
                   for i in range(6)]
        for thread in threads:
            thread.start()

        def parts(server: Server) -> list[Path]:
            return list((server.data / "tmp").glob("fetch-*.part"))

        # The fetching replica holds the lease and its part file grows: kill it well before the end.
        until(lambda: any(p.stat().st_size >= 2 * 1024 * 1024 for s in replicas.servers for p in parts(s)),
              "a replica's transfer under way")
        [(address,)] = replicas.servers[0].sql("SELECT url FROM mirror_leases")
        holder = next(s for s in replicas.servers if s.url == address)
        assert 0 < sum(p.stat().st_size for p in parts(holder)) < SIZE
        os.killpg(holder.process.pid, signal.SIGKILL)
        holder.process.wait(timeout=30)
        fake.clear_fault(fault)
        for thread in threads:
            thread.join()
        assert all(result is None or result == good for result in results)  # never a complete wrong file
        others = [s for s in replicas.servers if s is not holder]
        for server in others:  # a client trying again gets the file, fetched by a survivor
            assert download(file_url(server)) == good
        assert seaweed.keys(f"{replicas.prefix}blobs/") == [f"{replicas.prefix}blobs/{weights[1][:2]}/{weights[1][2:4]}/{weights[1]}"]
        assert seaweed.keys(f"{replicas.prefix}tmp/") == []
        # What the dead holder sent was never verified: a resume past byte 0 gets the whole file.
        resumed = httpx.get(file_url(others[0]), headers={"Range": f"bytes={SIZE // 2}-"}, timeout=60)
        assert resumed.status_code == 200 and resumed.content == good
        rows = others[0].sql("SELECT sha256, size FROM mirror_files WHERE oid = :oid", oid=weights[1])
        assert rows == [(weights[1], SIZE)]
        assert others[0].sql("SELECT count(*) FROM mirror_leases") == [(0,)]
    finally:
        replicas.stop()
        fake.reset()


def test_eviction_one_replica_at_a_time_least_recently_used_first(
    tmp_path: Path, seaweed: Seaweed, fake: FakeHub, pair: tuple[tuple[bytes, str], tuple[bytes, str]],
) -> None:
    fake.reset()
    (first, first_sha), (second, second_sha) = pair
    replicas = start_replicas(tmp_path, seaweed, fake, extra="cache_max_bytes = 40000000\nevict_grace = 0")
    r0, r1, r2 = replicas.servers

    def stored() -> set[str]:
        return {key.rsplit("/", 1)[-1] for key in seaweed.keys(f"{replicas.prefix}blobs/")}

    try:
        assert download(file_url(r0, "part0.bin", "hub/pair")) == first
        assert download(file_url(r1, "part1.bin", "hub/pair")) == second  # over the limit: the older one goes
        until(lambda: stored() == {second_sha}, "the least recently used file evicted from the bucket")
        assert r2.sql("SELECT oid FROM mirror_files") == [(second_sha,)]
        # Another replica evicting now: nobody else does.
        execute(replicas.database, "INSERT INTO mirror_leases (name, holder, url, expires_at, streaming) "
                "VALUES ('evict', 'elsewhere', '', :until, false)", until=time.time() + 3600)
        assert download(file_url(r2, "part0.bin", "hub/pair")) == first  # fetched again, published
        assert stored() == {first_sha, second_sha}
        execute(replicas.database, "DELETE FROM mirror_leases WHERE name = 'evict'")
        assert download(file_url(r0, "config.json")) is not None  # the next publication evicts
        until(lambda: stored() & {first_sha, second_sha} == {first_sha}, "the least recently used file evicted")
        assert len(fake.fetches(first_sha)) == 2 and len(fake.fetches(second_sha)) == 1
    finally:
        replicas.stop()


def test_upstream_health_is_one_record_across_replicas(tmp_path: Path, seaweed: Seaweed, fake: FakeHub) -> None:
    fake.reset()
    replicas = start_replicas(tmp_path, seaweed, fake)
    r0, r1, r2 = replicas.servers

    def status(server: Server) -> dict:  # one administrator, in the shared database
        answer = httpx.get(f"{server.url}/api/mirror/status", headers=r2.admin_headers(), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["upstreams"][0]

    try:
        fault = fake.fault("status", on=["api"], status=502)
        assert httpx.get(f"{r0.url}/api/models/hub/never-seen", timeout=30).status_code == 503
        seen = status(r2)  # a replica that never asked: the failure r0 saw
        assert seen["healthy"] is False and "HTTP 502" in seen["lastError"]
        fake.clear_fault(fault)
        assert httpx.get(f"{r1.url}/api/models/{REPO}", timeout=30).status_code == 200
        assert status(r0)["healthy"] is True  # r1's success, seen from r0
    finally:
        replicas.stop()
        fake.reset()


def test_a_cached_file_redirects_to_the_bucket_from_any_replica(
    tmp_path: Path, seaweed: Seaweed, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    fake.reset()
    good = weights[0].read_bytes()
    replicas = start_replicas(tmp_path, seaweed, fake, count=2, serve="redirect")
    r0, r1 = replicas.servers
    try:
        assert download(file_url(r0)) == good  # cold: streamed while it arrives
        for server in (r0, r1):
            answer = httpx.get(file_url(server), timeout=60)
            assert answer.status_code == 302 and answer.headers["location"].startswith(seaweed.endpoint)
            assert answer.headers["x-linked-etag"] == f'"{weights[1]}"'
            assert answer.headers["x-linked-size"] == str(SIZE)
            ranged = httpx.get(answer.headers["location"], headers={"Range": "bytes=5-9"}, timeout=60)
            assert ranged.status_code == 206 and ranged.content == good[5:10]
        small = httpx.get(file_url(r1, "config.json"), timeout=60)  # not an LFS file: no redirect, as the Hub does
        assert small.status_code == 200 and small.json() == {"layers": 2}
        assert len(fake.fetches(weights[1])) == 1
    finally:
        replicas.stop()


def test_mirror_pull_holds_the_lease_and_fills_the_shared_bucket(
    tmp_path: Path, seaweed: Seaweed, fake: FakeHub, weights: tuple[Path, str],
) -> None:
    fake.reset()
    replicas = start_replicas(tmp_path, seaweed, fake, count=2)
    r0, r1 = replicas.servers
    try:
        r0.cli("mirror", "pull", REPO, "--config", str(tmp_path / "hubgate.toml"))  # fails the test unless it succeeds
        assert f"{replicas.prefix}blobs/{weights[1][:2]}/{weights[1][2:4]}/{weights[1]}" in seaweed.keys(f"{replicas.prefix}blobs/")
        assert download(file_url(r1)) == weights[0].read_bytes()  # from the bucket: no second upstream copy
        assert len(fake.fetches(weights[1])) == 1
        assert r1.sql("SELECT count(*) FROM mirror_leases") == [(0,)]
    finally:
        replicas.stop()
