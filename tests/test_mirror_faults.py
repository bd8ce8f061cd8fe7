"""The mirror against fake huggingface.co upstreams: CDN redirects, Xet headers, faults, credentials."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from clients.harness import synced_log
from conftest import Server, start_server
from fakehub import FakeHub, start_fakehub
from processes import until

BIG = os.urandom(8 * 1024 * 1024)
BIG_SHA = hashlib.sha256(BIG).hexdigest()
TEXT = ("x" * 60 + "\n") * 100  # gzip-able: the fake compresses it for clients that accept gzip
FILES = {"config.json": '{"a": 1}', "notes.txt": TEXT, "model.safetensors": BIG}


def fill(fake: FakeHub) -> None:
    fake.add_repo("hub/model", FILES, tags=["v1"])
    fake.add_repo("hub/private", {"secret.txt": "top secret"}, private=True)
    fake.add_repo("hub/gated", {"weights.bin": BIG[:2_000_000]}, gated=True, granted=["alice"])
    fake.add_repo("hub/many", {f"dir/file{i:03d}.txt": f"{i}" for i in range(120)})
    for version in range(3):  # three commits
        fake.add_repo("hub/history", {"version.txt": str(version)})


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeHub, FakeHub]]:
    with start_fakehub(tmp_path_factory.mktemp("primary")) as primary, \
            start_fakehub(tmp_path_factory.mktemp("secondary")) as secondary:
        for fake in (primary, secondary):
            fill(fake)
        yield primary, secondary


@pytest.fixture(autouse=True)
def clean_faults(fakes: tuple[FakeHub, FakeHub]) -> Iterator[None]:
    for fake in fakes:
        fake.reset()
    yield
    for fake in fakes:
        fake.reset()


def mirror_of(tmp: Path, *fakes: FakeHub, token: str | None = "hf_good", extra: str = "", args: tuple[str, ...] = (),
              passthrough: bool = False) -> Server:
    lines = []
    for index, fake in enumerate(fakes):
        lines += ["[[upstream]]", f'name = "up{index}"', f'url = "{fake.url}"']
        lines += ['token_env = "FAKE_HF_TOKEN"'] if token else []  # no server token: no token_env
        lines += ["passthrough = true"] if passthrough else []
    lines += ["[mirror]", "revision_ttl = 0", extra]
    config = tmp / "hubgate.toml"
    config.write_text("\n".join(lines) + "\n")
    env = {"FAKE_HF_TOKEN": token} if token else {}
    return start_server(tmp / "data", *args, config=config, env=env)


@pytest.fixture()
def mirror(tmp_path: Path, fakes: tuple[FakeHub, FakeHub]) -> Iterator[Server]:
    with mirror_of(tmp_path, *fakes) as srv:
        yield srv


def test_follows_cdn_redirects_without_leaking_credentials_or_xet(mirror: Server, fakes) -> None:
    primary, _ = fakes
    response = httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors")
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == BIG_SHA
    assert response.headers["x-linked-etag"] == f'"{BIG_SHA}"'
    assert response.headers["content-length"] == str(len(BIG))
    assert not [h for h in response.headers if h.lower().startswith("x-xet")]
    assert "xet" not in response.headers.get("link", "")
    assert primary.state()["cdn_authorization_seen"] == 0
    cdn = [r for r in primary.requests(server="cdn") if r["kind"] == "cdn"]
    assert cdn and not any(r["authorization"] for r in cdn)
    tree = httpx.get(f"{mirror.url}/api/models/hub/model/tree/main").json()
    assert tree and not any("xetHash" in entry for entry in tree)


def test_text_files_arrive_byte_exact_despite_upstream_gzip(mirror: Server) -> None:
    response = httpx.get(f"{mirror.url}/hub/model/resolve/main/notes.txt", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.text == TEXT
    assert response.headers.get("content-encoding") is None
    assert response.headers["content-length"] == str(len(TEXT))


def test_upstream_pagination_is_followed_and_links_point_here(mirror: Server, fakes) -> None:
    tree = httpx.get(f"{mirror.url}/api/models/hub/many/tree/main", params={"recursive": "true"}).json()
    assert len([e for e in tree if e["type"] == "file"]) == 121  # 120 + .gitattributes, over 3 upstream pages
    primary, _ = fakes
    history = [c["id"] for c in httpx.get(f"{primary.url}/api/models/hub/history/commits/main").json()]
    assert len(history) == 3
    primary.configure(page_size=2)  # the upstream sends its history in pages of two
    ids, pages = [], 0
    url: str | None = f"{mirror.url}/api/models/hub/history/commits/main?limit=1"
    while url:
        page = httpx.get(url)
        assert page.status_code == 200 and len(page.json()) == 1
        ids += [c["id"] for c in page.json()]
        url = page.links.get("next", {}).get("url")
        assert url is None or url.startswith(f"{mirror.url}/"), url
        pages += 1
    assert ids == history and pages == 3  # two Link headers followed, every commit once, in order
    asked = [r["query"] for r in primary.requests() if r["path"].startswith("/api/models/hub/history/commits/")]
    assert any("p=1" in query for query in asked), asked  # the upstream's second page was followed


def test_fails_over_to_the_next_upstream_on_5xx(mirror: Server, fakes) -> None:
    primary, secondary = fakes
    primary.fault("status", status=503)
    response = httpx.get(f"{mirror.url}/hub/model/resolve/main/config.json")
    assert response.status_code == 200 and response.content == b'{"a": 1}'
    assert any(r["kind"] == "resolve" for r in secondary.requests())
    status = httpx.get(f"{mirror.url}/api/mirror/status", headers=mirror.admin_headers()).json()
    assert status["upstreams"][0]["healthy"] is False and "503" in status["upstreams"][0]["lastError"]
    assert status["upstreams"][1]["healthy"] is True


def test_fails_over_on_redirect_loops(mirror: Server, fakes) -> None:
    primary, _ = fakes
    primary.fault("redirect_loop", on=["resolve"])
    response = httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors")
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == BIG_SHA


def test_broken_transfer_resumes_with_range(mirror: Server, fakes) -> None:
    primary, _ = fakes
    primary.fault("drop", on=["cdn"], after_bytes=3_000_000, count=1)
    response = httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors")
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == BIG_SHA
    ranges = [r["range"] for r in primary.requests(server="cdn") if r["kind"] == "cdn"]
    assert any(r and r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges


def test_corrupted_bytes_are_never_served_as_success(mirror: Server, fakes) -> None:
    primary, secondary = fakes
    primary.fault("corrupt", on=["cdn"], sha256=BIG_SHA)
    url = f"{mirror.url}/hub/model/resolve/main/model.safetensors"
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", url) as response:
        for _ in response.iter_raw():
            pass
    again = httpx.get(url)  # the next request goes to the next upstream
    assert again.status_code == 200 and hashlib.sha256(again.content).hexdigest() == BIG_SHA
    assert any(r["kind"] == "cdn" for r in secondary.requests(server="cdn"))
    status = httpx.get(f"{mirror.url}/api/mirror/status", headers=mirror.admin_headers()).json()
    assert status["cache"]["integrityErrors"] == 1
    assert any("integrity error" in line and "up0" in line for line in synced_log(mirror))


def test_client_disconnect_leaves_a_complete_cache_and_no_open_files(mirror: Server, fakes) -> None:
    primary, _ = fakes
    primary.fault("throttle", on=["cdn"], bytes_per_second=4_000_000)
    fds = Path(f"/proc/{mirror.process.pid}/fd")

    def open_files() -> int:
        """The process's open files but its database's: a connection the pool opens when two
        threads use the database at once stays pooled, for reuse, and is no leak."""
        count = 0
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                count += "hubgate.db" not in os.readlink(fd)
        return count

    baseline = open_files()
    with httpx.stream("GET", f"{mirror.url}/hub/model/resolve/main/model.safetensors") as response:
        next(response.iter_raw())  # read a little, then hang up
    primary.reset()
    done = httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors")  # waits for the shared transfer
    assert hashlib.sha256(done.content).hexdigest() == BIG_SHA
    assert len([r for r in primary.requests(server="cdn") if r["kind"] == "cdn" and r["method"] == "GET"]) <= 2
    # the hung-up connection is closed when the server next writes to it: wait for that, bounded
    until(lambda: open_files() <= baseline + 2, "the hung-up connection's files to be closed")


def test_a_slow_upstream_does_not_stall_other_clients(mirror: Server, fakes) -> None:
    primary, _ = fakes
    assert httpx.get(f"{mirror.url}/hub/model/resolve/main/config.json").status_code == 200  # cached now
    hold = primary.fault("hold", on=["cdn"])  # the CDN keeps the big file's transfer waiting
    slow: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: slow.append(
        httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors", timeout=120)), daemon=True)
    worker.start()
    until(lambda: primary.state()["held"] == 1, "the slow transfer to reach the upstream")
    commit = httpx.head(f"{mirror.url}/hub/model/resolve/main/config.json").headers["x-repo-commit"]
    fast = httpx.get(f"{mirror.url}/hub/model/resolve/{commit}/config.json", timeout=60)
    assert fast.status_code == 200 and fast.content == b'{"a": 1}'
    assert primary.state()["held"] == 1 and not slow  # the slow one was still in flight meanwhile
    primary.release(hold)
    worker.join(timeout=120)
    assert slow and hashlib.sha256(slow[0].content).hexdigest() == BIG_SHA


def worker_pids(server: Server) -> list[int]:
    """The uvicorn worker processes of `server` (children running multiprocessing's spawn_main)."""
    pids = []
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
    return pids


def connections_held(pids: list[int], port: int) -> dict[int, int]:
    """{pid: established TCP connections to 127.0.0.1:`port` it holds}, read from /proc."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
            inodes.add(fields[9])
    held = {}
    for pid in pids:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        held[pid] = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
    return held


def singleflight_waits(srv: Server) -> float:
    text = httpx.get(f"{srv.url}/metrics", headers=srv.admin_headers()).text
    found = [line for line in text.splitlines() if line.startswith("hubgate_mirror_singleflight_waits_total ")]
    return float(found[0].split()[1]) if found else 0.0


def test_file_is_fetched_once_for_concurrent_clients_of_two_workers(tmp_path: Path, fakes) -> None:
    primary, _ = fakes
    hold = primary.fault("hold", on=["cdn"], sha256=BIG_SHA)  # the transfer waits until released
    with mirror_of(tmp_path, primary, args=("--workers", "2")) as srv:
        workers = worker_pids(srv)
        assert len(workers) == 2, workers
        port = int(srv.url.rsplit(":", 1)[1])
        url = f"{srv.url}/hub/model/resolve/main/model.safetensors"
        digests: list[str] = []

        def fetch(barrier: threading.Barrier) -> None:
            barrier.wait()
            response = httpx.get(url, timeout=120)
            assert response.status_code == 200
            digests.append(hashlib.sha256(response.content).hexdigest())

        clients: list[threading.Thread] = []
        for _ in range(4):  # batches of 8 until both workers hold requests (the kernel picks who accepts)
            barrier = threading.Barrier(8)
            batch = [threading.Thread(target=fetch, args=(barrier,), daemon=True) for _ in range(8)]
            for thread in batch:
                thread.start()
            clients += batch
            wanted = len(clients)
            until(lambda n=wanted: sum(connections_held(workers, port).values()) == n, "every client to connect")
            held = connections_held(workers, port)
            if all(held.values()):
                break
        assert all(held.values()), held  # both workers are serving requests for the file at once
        until(lambda: primary.state()["held"] >= 1, "the transfer to reach the upstream")
        assert primary.state()["held"] == 1 and not digests  # one upstream transfer, nothing served yet
        # Every other request joined the one download: /metrics counts them as single-flight waits.
        until(lambda: singleflight_waits(srv) == len(clients) - 1, "every other request to join the download")
        primary.release(hold)
        for thread in clients:
            thread.join(timeout=120)
    assert digests == [BIG_SHA] * len(clients)
    assert len(primary.fetches(sha256=BIG_SHA)) == 1  # the upstream's own count of transfers


def test_private_upstream_content_is_only_for_local_users(mirror: Server) -> None:
    anonymous = httpx.get(f"{mirror.url}/hub/private/resolve/main/secret.txt")
    assert anonymous.status_code == 401 and anonymous.headers["x-error-code"] == "RepoNotFound"
    mirror.add_user("erin")
    token = mirror.token("erin", "read")
    allowed = httpx.get(f"{mirror.url}/hub/private/resolve/main/secret.txt", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and allowed.content == b"top secret"
    assert httpx.get(f"{mirror.url}/hub/private/resolve/main/secret.txt").status_code == 401


def test_token_passthrough_is_checked_upstream(tmp_path: Path, fakes) -> None:
    primary, _ = fakes
    srv = mirror_of(tmp_path, primary, token=None, passthrough=True)
    try:
        url = f"{srv.url}/hub/gated/resolve/main/weights.bin"
        granted = httpx.get(url, headers={"Authorization": "Bearer hf_good"})
        assert granted.status_code == 200 and granted.content == BIG[:2_000_000]
        refused = httpx.get(url, headers={"Authorization": "Bearer hf_other"})
        assert refused.status_code in (401, 403, 404) and refused.content != BIG[:2_000_000]
        assert httpx.get(url).status_code in (401, 403, 404)
    finally:
        srv.stop()


def test_a_stored_upstream_token_falls_back_to_the_cache_when_upstreams_fail(mirror: Server, fakes) -> None:
    """A user's own upstream token is checked upstream for a gated repo; with every upstream failing,
    the copy the server's credential cached is served to them as to any local user."""
    mirror.add_user("erin")
    erin = {"Authorization": f"Bearer {mirror.token('erin', 'write')}"}
    assert httpx.put(f"{mirror.url}/api/upstream-tokens/up0", headers=erin, json={"token": "hf_good"}).status_code == 200
    url = f"{mirror.url}/hub/private/resolve/main/secret.txt"
    assert httpx.get(url, headers=erin).content == b"top secret"
    for fake in fakes:
        fake.fault("status", status=503)
    again = httpx.get(url, headers=erin)
    assert (again.status_code, again.content) == (200, b"top secret")


def test_upstream_404s_are_remembered_briefly(tmp_path: Path, fakes) -> None:
    primary, _ = fakes
    srv = mirror_of(tmp_path, primary, extra="negative_ttl = 600")
    try:
        for _ in range(3):
            assert httpx.get(f"{srv.url}/api/models/hub/does-not-exist").status_code in (401, 404)
        asked = [r["path"] for r in primary.requests() if "does-not-exist" in r["path"]]
        # Once: its info, then (for mirrors that answer info only with a revision) at revision main.
        assert asked == ["/api/models/hub/does-not-exist", "/api/models/hub/does-not-exist/revision/main"]
    finally:
        srv.stop()


def test_cold_range_starts_at_once_and_ends_once_the_file_verifies(mirror: Server, fakes) -> None:
    primary, secondary = fakes
    for fake in fakes:
        fake.fault("throttle", on=["cdn"], bytes_per_second=1_000_000)  # the whole file takes ~8 s
    start = len(BIG) - 2_500_000
    cache, admin = f"{mirror.url}/api/mirror/status", mirror.admin_headers()
    with httpx.stream("GET", f"{mirror.url}/hub/model/resolve/main/model.safetensors",
                      headers={"Range": f"bytes={start}-"}, timeout=60) as response:
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {start}-{len(BIG) - 1}/{len(BIG)}"
        pieces = response.iter_raw()
        body = bytearray(next(pieces))
        # The first bytes came straight from upstream while the whole file is still on its way...
        assert httpx.get(cache, headers=admin).json()["cache"]["files"] == 0
        for piece in pieces:
            body += piece
    # ... and the last ones only once it verified.
    assert body == BIG[start:]
    assert httpx.get(cache, headers=admin).json()["cache"]["files"] == 1
    ranges = [r["range"] for r in primary.requests(server="cdn") + secondary.requests(server="cdn")]
    assert f"bytes={start}-{len(BIG) - 1}" in ranges


def test_corrupted_regular_file_is_caught_by_its_git_blob_id(mirror: Server, fakes) -> None:
    primary, _ = fakes
    primary.fault("corrupt", on=["resolve"], file="config.json", offsets=[2])
    url = f"{mirror.url}/hub/model/resolve/main/config.json"
    with pytest.raises(httpx.HTTPError):
        httpx.get(url)
    again = httpx.get(url)
    assert again.status_code == 200 and again.content == b'{"a": 1}'


def test_a_client_token_goes_only_to_passthrough_upstreams_and_stays_theirs(tmp_path: Path, fakes) -> None:
    primary, secondary = fakes
    config = tmp_path / "hubgate.toml"
    config.write_text(f'[[upstream]]\nname = "mirror"\nurl = "{primary.url}"\n\n'
                      f'[[upstream]]\nname = "hub"\nurl = "{secondary.url}"\npassthrough = true\n')
    srv = start_server(tmp_path / "data", config=config)
    try:
        url = f"{srv.url}/hub/gated/resolve/main/weights.bin"
        granted = httpx.get(url, headers={"Authorization": "Bearer hf_good"})
        assert granted.status_code == 200 and granted.content == BIG[:2_000_000]
        assert not [r for r in primary.requests() if r["token"] == "hf_good"]
        assert [r for r in secondary.requests() if r["token"] == "hf_good"]
        # What that client's token fetched is not for local users without it, nor for anonymous callers.
        srv.add_user("frank")
        local = httpx.get(url, headers={"Authorization": f"Bearer {srv.token('frank', 'read')}"})
        assert local.status_code in (401, 403, 404) and local.content != BIG[:2_000_000]
        assert httpx.get(url).status_code in (401, 403, 404)
        assert httpx.get(f"{srv.url}/api/mirror/status").status_code == 401  # operators only
    finally:
        srv.stop()


def test_each_upstream_gets_its_own_token(tmp_path: Path, fakes) -> None:
    primary, secondary = fakes
    config = tmp_path / "hubgate.toml"
    config.write_text(f'[[upstream]]\nname = "a"\nurl = "{primary.url}"\ntoken_env = "TOKEN_A"\n\n'
                      f'[[upstream]]\nname = "b"\nurl = "{secondary.url}"\ntoken_env = "TOKEN_B"\n')
    primary.fault("status", status=503)  # asked first, fails: the file comes from b
    with start_server(tmp_path / "data", config=config, env={"TOKEN_A": "hf_good", "TOKEN_B": "hf_other"}) as srv:
        srv.add_user("erin")
        response = httpx.get(f"{srv.url}/hub/private/resolve/main/secret.txt",
                             headers={"Authorization": f"Bearer {srv.token('erin', 'read')}"})
        assert response.status_code == 200 and response.content == b"top secret"
    seen_by_a = {r["token"] for r in primary.requests()}
    seen_by_b = {r["token"] for r in secondary.requests()}
    assert "hf_good" in seen_by_a and "hf_other" not in seen_by_a, seen_by_a
    assert "hf_other" in seen_by_b and "hf_good" not in seen_by_b, seen_by_b


@pytest.mark.parametrize("body", ["<html>an error page</html>", "[]", '{"id": 7, "siblings": "none"}'])
def test_malformed_upstream_answers_fail_over(mirror: Server, fakes, body: str) -> None:
    primary, secondary = fakes
    primary.fault("status", status=200, body=body, on=["api"], path=r"^/api/models/hub/model(/revision/[^/]+)?$",
                  headers={"Content-Type": "application/json"})  # the repo's info, malformed
    info = httpx.get(f"{mirror.url}/api/models/hub/model")
    assert info.status_code == 200 and info.json()["id"] == "hub/model"
    assert {s["rfilename"] for s in info.json()["siblings"]} == {".gitattributes", *FILES}
    assert any(r["kind"] == "api" for r in primary.requests()) and any(r["kind"] == "api" for r in secondary.requests())


def test_status_shows_no_signed_urls(mirror: Server, fakes) -> None:
    for fake in fakes:
        fake.fault("status", status=503, on=["cdn"])  # the presigned CDN url fails everywhere
    response = httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors")
    assert response.status_code >= 500
    redirected = [r for r in fakes[0].requests(server="cdn") if r["kind"] == "cdn"]
    assert redirected and "X-Amz-Signature" in redirected[0]["query"]  # what must not leak
    status = httpx.get(f"{mirror.url}/api/mirror/status", headers=mirror.admin_headers())
    assert status.json()["upstreams"][0]["lastError"]  # the failure is reported...
    assert "Signature" not in status.text and "Expires" not in status.text  # ...without the signed url


def test_log_shows_no_signed_urls(mirror: Server, fakes) -> None:
    for fake in fakes:
        fake.fault("status", status=503, on=["cdn"])
    assert httpx.get(f"{mirror.url}/hub/model/resolve/main/model.safetensors").status_code >= 500
    log = synced_log(mirror)
    assert [line for line in log if "X-Amz-Signature=REDACTED" in line]  # the failure is logged...
    assert not [line for line in log if re.search(r"(?i)signature=(?!REDACTED)", line)]  # ...without its signature


def test_eviction_spares_what_hosted_repos_hold(tmp_path: Path, fakes) -> None:
    primary, _ = fakes
    table = os.urandom(200_000)  # a regular file above the inline limit: kept in the blob store too
    extra = os.urandom(len(BIG) + len(table))
    primary.add_repo("hub/shared", {"weights.safetensors": BIG, "table.dat": table, "extra.safetensors": extra})
    # evict_grace: on S3 (HUBGATE_TEST_BLOBS=s3) a file used in the last 900 s is kept by default.
    with mirror_of(tmp_path, primary, extra=f"cache_max_bytes = {len(BIG) + len(table) + 100}\nevict_grace = 0") as srv:
        mirrored = f"{srv.url}/hub/shared/resolve/main"
        assert httpx.get(f"{mirrored}/weights.safetensors").content == BIG
        assert httpx.get(f"{mirrored}/table.dat").content == table
        srv.add_user("alice")
        api = HfApi(endpoint=srv.url, token=srv.token("alice"))
        api.create_repo("alice/own")
        for name, data in (("weights.safetensors", BIG), ("table.dat", table)):  # the same bytes, hosted here
            api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id="alice/own")
        assert httpx.get(f"{mirrored}/extra.safetensors").content == extra  # pushes both out of the cache
        cache = httpx.get(f"{srv.url}/api/mirror/status", headers=srv.admin_headers()).json()["cache"]
        assert cache["evictions"] == 2 and cache["files"] == 1
        hosted = f"{srv.url}/alice/own/resolve/main"
        auth = {"Authorization": f"Bearer {srv.token('alice', 'read')}"}
        assert httpx.get(f"{hosted}/weights.safetensors", headers=auth).content == BIG
        assert httpx.get(f"{hosted}/table.dat", headers=auth).content == table
