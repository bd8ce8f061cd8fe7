"""Nothing left behind (issue 6, item 10): `hubgate gc` collects deleted repos' objects and blobs,
failed commits' blobs and unused uploads, never what is in use (also under concurrent commits);
`hubgate fsck` finds damaged and missing content and quarantines it with --repair."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from conftest import Server, start_server
from ndjson_commit import commit_files


def blob_path(srv: Server, sha256: str) -> Path:
    return srv.data / "blobs" / sha256[:2] / sha256[2:4] / sha256


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def db_rows(srv: Server, query: str, *args: object) -> list[tuple[object, ...]]:
    """Rows from the server's database (SQLite or PostgreSQL); `?` placeholders take `args` in order."""
    for index in range(len(args)):
        query = query.replace("?", f":p{index}", 1)
    return srv.sql(query, **{f"p{index}": arg for index, arg in enumerate(args)})


def committed(srv: Server, token: str, repo: str, files: dict[str, bytes], **kwargs: object) -> None:
    response = commit_files(srv.url, token, repo, files, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text


def lfs_batch(srv: Server, token: str, repo: str, operation: str, data: bytes) -> dict[str, object]:
    response = httpx.post(
        f"{srv.url}/{repo}.git/info/lfs/objects/batch",
        json={"operation": operation, "transfers": ["basic"], "objects": [{"oid": sha256(data), "size": len(data)}]},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"},
    )
    assert response.status_code == 200, response.text
    return response.json()["objects"][0]  # type: ignore[no-any-return]


def backdate_blobs(srv: Server, seconds: float) -> None:
    """Age every stored blob, as if written `seconds` ago (so a grace period has passed for them)."""
    when = time.time() - seconds
    for path in (srv.data / "blobs").glob("*/*/*"):
        os.utime(path, (when, when))


def test_gc_collects_a_deleted_repo_and_keeps_what_others_use(fresh_server: Server) -> None:
    srv = fresh_server
    srv.add_user("alice")
    token = srv.token("alice")
    api = HfApi(endpoint=srv.url, token=token)
    api.create_repo("alice/gone", private=True)
    api.create_repo("alice/kept")
    weights, shared, small = os.urandom(5000), os.urandom(200_000), b"only in the deleted repo\n"
    committed(srv, token, "alice/gone", {"weights.bin": weights, "shared.txt": shared, "small.txt": small})
    committed(srv, token, "alice/kept", {"copy.txt": shared})
    uploaded = os.urandom(3000)  # sent to the repo's LFS storage, never committed
    upload = lfs_batch(srv, token, "alice/gone", "upload", uploaded)
    assert httpx.put(upload["actions"]["upload"]["href"], content=uploaded).status_code == 200  # type: ignore[index]
    link = lfs_batch(srv, token, "alice/gone", "download", weights)["actions"]["download"]["href"]  # type: ignore[index]
    assert httpx.get(link).content == weights
    for data in (weights, shared, uploaded):
        assert blob_path(srv, sha256(data)).is_file()
    assert db_rows(srv, "SELECT count(*) FROM git_objects WHERE sha1 = ?", git_blob_id(small)) == [(1,)]

    api.delete_repo("alice/gone")
    # At once: its links are gone and a download link handed out before answers nothing.
    assert db_rows(srv, "SELECT count(*) FROM repo_lfs_objects") == [(0,)]
    assert httpx.get(link).status_code == 404
    backdate_blobs(srv, 7200)
    result = srv.cli("gc")
    assert "blobs" in result.stdout, result.stdout
    assert not blob_path(srv, sha256(weights)).exists()
    assert not blob_path(srv, sha256(uploaded)).exists()
    assert blob_path(srv, sha256(shared)).is_file()  # alice/kept uses the same bytes
    assert db_rows(srv, "SELECT count(*) FROM git_objects WHERE sha1 = ?", git_blob_id(small)) == [(0,)]
    assert httpx.get(f"{srv.url}/alice/kept/resolve/main/copy.txt").content == shared
    fsck = srv.cli("fsck", check=False)
    assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout, fsck.stdout


def test_gc_spares_young_blobs_then_collects_a_failed_commits_blob(fresh_server: Server) -> None:
    srv = fresh_server
    srv.add_user("alice")
    token = srv.token("alice")
    HfApi(endpoint=srv.url, token=token).create_repo("alice/failed")
    weights = os.urandom(5000)
    # The LFS file is stored while the payload is read; the commit then fails on the deletion.
    failed = commit_files(srv.url, token, "alice/failed", {"weights.bin": weights},
                          extra=[{"key": "deletedFile", "value": {"path": "no-such-file.txt"}}])
    assert failed.status_code == 404
    assert blob_path(srv, sha256(weights)).is_file()
    fsck = srv.cli("fsck", check=False)
    assert fsck.returncode == 0, fsck.stdout  # garbage is not damage
    assert f"unreferenced {sha256(weights)}" in fsck.stdout
    srv.cli("gc")  # default grace: an hour, the blob is seconds old
    assert blob_path(srv, sha256(weights)).is_file()
    result = srv.cli("gc", "--grace", "0")
    assert "1 blobs" in result.stdout, result.stdout
    assert not blob_path(srv, sha256(weights)).exists()


def test_fsck_finds_damaged_and_missing_content_and_quarantines(fresh_server: Server) -> None:
    srv = fresh_server
    srv.add_user("alice")
    token = srv.token("alice")
    HfApi(endpoint=srv.url, token=token).create_repo("alice/checked")
    weights, big = os.urandom(5000), os.urandom(100_000)
    committed(srv, token, "alice/checked", {"weights.bin": weights, "big.txt": big, "small.txt": b"small\n"})
    clean = srv.cli("fsck", check=False)
    assert clean.returncode == 0 and "fsck: clean" in clean.stdout, clean.stdout

    damaged = blob_path(srv, sha256(weights))
    raw = bytearray(damaged.read_bytes())
    raw[100] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    found = srv.cli("fsck", check=False)
    assert found.returncode == 1, found.stdout
    assert f"damaged-blob {sha256(weights)}" in found.stdout
    assert "unclean" in found.stdout

    repaired = srv.cli("fsck", "--repair", check=False)
    assert f"damaged-blob {sha256(weights)}" in repaired.stdout and "(repaired)" in repaired.stdout
    assert not damaged.exists()
    assert list((srv.data / "quarantine").glob(f"{sha256(weights)}.*"))
    assert repaired.returncode == 1  # the repo still lacks the file: it must be uploaded again
    assert f"missing-content {sha256(weights)}" in repaired.stdout and "alice/checked" in repaired.stdout
    answer = httpx.get(f"{srv.url}/alice/checked/resolve/main/weights.bin")
    assert answer.status_code == 500 and "upload the file again" in answer.json()["error"]

    blob_path(srv, sha256(big)).unlink()
    missing = srv.cli("fsck", check=False)
    assert missing.returncode == 1
    assert f"missing-content {sha256(big)}" in missing.stdout and "big.txt" in missing.stdout

    committed(srv, token, "alice/checked", {"weights.bin": weights, "big.txt": big})  # uploaded again
    again = srv.cli("fsck", check=False)
    assert again.returncode == 0 and "fsck: clean" in again.stdout, again.stdout


def test_periodic_gc_in_the_server(tmp_path: Path) -> None:
    config = tmp_path / "hubgate.toml"
    config.write_text("[gc]\ninterval = 0.2\ngrace = 0\n")
    with start_server(tmp_path / "data", config=config) as srv:
        srv.add_user("alice")
        token = srv.token("alice")
        api = HfApi(endpoint=srv.url, token=token)
        api.create_repo("alice/periodic")
        weights = os.urandom(5000)
        committed(srv, token, "alice/periodic", {"weights.bin": weights})
        assert blob_path(srv, sha256(weights)).is_file()
        api.delete_repo("alice/periodic")
        deadline = time.monotonic() + 60
        while blob_path(srv, sha256(weights)).exists():  # polling the outcome, not sleeping for it
            assert time.monotonic() < deadline, "the server never collected the deleted repo's blob"
            time.sleep(0.05)
        report = db_rows(srv, "SELECT report, finished_at FROM maintenance WHERE name = 'gc'")
        assert report and report[0][1] is not None


def test_commits_between_marking_and_deleting_keep_what_they_reuse(fresh_server: Server,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic version of the race below: the collector (run here, in the test process) is
    interrupted right after its mark, and right before its first blob deletion, by commits that
    bring back the very objects and blobs it found unused."""
    from hubgate.config import Settings
    from hubgate.hub import Hub
    from hubgate.maintenance import gc as gc_module
    from hubgate.storage.blobs import LocalBlobStore

    srv = fresh_server
    srv.add_user("alice")
    token = srv.token("alice")
    api = HfApi(endpoint=srv.url, token=token)
    api.create_repo("alice/race")
    regular = {"small.txt": b"small and old\n", "big.txt": os.urandom(90_000)}
    lfs = {"weights.bin": os.urandom(6000)}
    api.create_branch("alice/race", branch="scratch")
    committed(srv, token, "alice/race", {**regular, **lfs}, branch="scratch")
    api.delete_branch("alice/race", branch="scratch")
    backdate_blobs(srv, 7200)
    marked, deleting = gc_module.walk, LocalBlobStore.delete_if_older
    interrupted: set[str] = set()

    def walk_then_commit(*args: object) -> None:
        marked(*args)  # type: ignore[arg-type]
        if "mark" not in interrupted:
            interrupted.add("mark")
            committed(srv, token, "alice/race", regular)

    def commit_then_delete(store: LocalBlobStore, sha: str, cutoff: float) -> bool:
        if "delete" not in interrupted:
            interrupted.add("delete")
            committed(srv, token, "alice/race", lfs)
        return deleting(store, sha, cutoff)

    monkeypatch.setattr(gc_module, "walk", walk_then_commit)
    monkeypatch.setattr(LocalBlobStore, "delete_if_older", commit_then_delete)
    hub = Hub(Settings.load(data=srv.data))
    try:
        report = hub.collector(upload_grace=0).run()
    finally:
        hub.close()
    assert interrupted == {"mark", "delete"}, report
    for name, data in {**regular, **lfs}.items():
        assert httpx.get(f"{srv.url}/alice/race/resolve/main/{name}").content == data, name
    fsck = srv.cli("fsck", check=False)
    assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout, fsck.stdout


def test_gc_during_commits_reusing_collectable_objects_loses_nothing(fresh_server: Server) -> None:
    srv = fresh_server
    srv.add_user("alice")
    token = srv.token("alice")
    api = HfApi(endpoint=srv.url, token=token)
    api.create_repo("alice/busy")
    old = {f"old-{i}.txt": os.urandom(100 + i) for i in range(4)}
    old |= {f"old-{i}.bin": os.urandom(3000 + i) for i in range(4)}
    old |= {f"old-big-{i}.txt": os.urandom(70_000 + i) for i in range(4)}
    api.create_branch("alice/busy", branch="scratch")
    committed(srv, token, "alice/busy", old, branch="scratch")
    api.delete_branch("alice/busy", branch="scratch")  # everything in `old` is now garbage...
    backdate_blobs(srv, 7200)
    expected: dict[str, bytes] = {}
    errors: list[str] = []

    def commit_loop() -> None:  # ...which these commits bring back, one file at a time
        try:
            for i, (name, data) in enumerate(old.items()):
                fresh = {f"new-{i}.txt": os.urandom(50)}
                response = commit_files(srv.url, token, "alice/busy", {name: data, **fresh})
                if response.status_code != 200:
                    errors.append(response.text)
                    return
                expected.update({name: data, **fresh})
        except Exception as exc:  # reported by the main thread
            errors.append(repr(exc))

    worker = threading.Thread(target=commit_loop)
    worker.start()
    runs = 0
    while worker.is_alive() or runs == 0:
        subprocess.run([sys.executable, "-m", "hubgate", "gc", "--data", str(srv.data)], env=srv.env,
                       check=True, capture_output=True, timeout=120)
        runs += 1
    worker.join()
    assert not errors, errors
    srv.cli("gc")
    for name, data in expected.items():
        assert httpx.get(f"{srv.url}/alice/busy/resolve/main/{name}").content == data, name
    fsck = srv.cli("fsck", check=False)
    assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout, fsck.stdout


@pytest.mark.parametrize("point", ["gc-swept", "gc-unlinking"])
def test_gc_killed_midway_leaves_a_consistent_store_and_the_next_run_finishes(fresh_server: Server, point: str) -> None:
    srv = fresh_server
    srv.add_user("alice")
    token = srv.token("alice")
    api = HfApi(endpoint=srv.url, token=token)
    for name in ("doomed", "alive"):
        api.create_repo(f"alice/{name}")
    doomed = {"weights.bin": os.urandom(5000), "big.txt": os.urandom(80_000), "small.txt": b"gone soon\n"}
    alive = {"weights.bin": os.urandom(5000), "big.txt": os.urandom(80_000)}
    committed(srv, token, "alice/doomed", doomed)
    committed(srv, token, "alice/alive", alive)
    api.delete_repo("alice/doomed")
    backdate_blobs(srv, 7200)
    killed = subprocess.run([sys.executable, "-m", "hubgate", "gc", "--data", str(srv.data)],
                            env={**srv.env, "HUBGATE_CRASH_AT": point}, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    for name, data in alive.items():
        assert httpx.get(f"{srv.url}/alice/alive/resolve/main/{name}").content == data
    fsck = srv.cli("fsck", check=False)
    assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout, fsck.stdout
    finished = srv.cli("gc")  # the dead collector's claim is taken over, its half-done work finished
    assert "skipped" not in finished.stdout, finished.stdout
    assert not list((srv.data / "tmp").glob("gc-*"))
    for data in (doomed["weights.bin"], doomed["big.txt"]):
        assert not blob_path(srv, sha256(data)).exists()
    for name, data in alive.items():
        assert httpx.get(f"{srv.url}/alice/alive/resolve/main/{name}").content == data
    fsck = srv.cli("fsck", check=False)
    assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout and "0 unreferenced" in fsck.stdout, fsck.stdout
