"""`hubgate pull` against misbehaving hubs (two fake huggingface.co with the same repo)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakehub import FakeHub, start_fakehub
from test_client_lock import hubgate

BIG = os.urandom(8 * 1024 * 1024)
FILES = {"config.json": '{"a": 1}', "tokenizer.json": '{"t": 2}', "model.safetensors": BIG}
CACHE_BLOB = f"models--hub--model/blobs/{hashlib.sha256(BIG).hexdigest()}"


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeHub, FakeHub]]:
    with start_fakehub(tmp_path_factory.mktemp("primary")) as primary, \
            start_fakehub(tmp_path_factory.mktemp("secondary")) as secondary:  # stopped even if the set-up fails
        commits = {fake.add_repo("hub/model", FILES, tags=["v1"]).sha for fake in (primary, secondary)}
        assert len(commits) == 1  # the same commit on both: either may serve any file
        yield primary, secondary


@pytest.fixture()
def locked(fakes: tuple[FakeHub, FakeHub], tmp_path: Path) -> Path:
    for fake in fakes:
        fake.reset()
    done = hubgate("lock", "hub/model@v1", "--endpoint", fakes[0].url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for fake in fakes:
        fake.clear_requests()
    return tmp_path


def resolved(fake: FakeHub) -> set[str]:
    return {r["path"].rsplit("/", 1)[-1] for r in fake.requests() if r["kind"] == "resolve" and r["status"] < 400}


def test_per_file_failover(fakes: tuple[FakeHub, FakeHub], locked: Path) -> None:
    primary, secondary = fakes
    primary.fault("not_found", on=["resolve"], file="config.json")
    done = hubgate("pull", "--endpoint", primary.url, "--endpoint", secondary.url, "--cache-dir", locked / "c", cwd=locked)
    assert done.returncode == 0, done.stderr
    assert resolved(primary) == {".gitattributes", "tokenizer.json", "model.safetensors"}
    assert resolved(secondary) == {"config.json"}
    assert hubgate("verify", "--cache-dir", locked / "c", cwd=locked).returncode == 0


def test_cut_transfer_resumes_in_the_same_run_and_the_next(fakes: tuple[FakeHub, FakeHub], locked: Path) -> None:
    primary, _ = fakes
    primary.fault("drop", on=["cdn"], after_bytes=1_000_000, count=1)
    done = hubgate("pull", "--endpoint", primary.url, "--cache-dir", locked / "c", "-q", cwd=locked)
    assert done.returncode == 0, done.stderr
    assert [r["range"] for r in primary.requests(server="cdn")] == [None, "bytes=1000000-"]

    primary.reset()
    primary.fault("drop", on=["cdn"], after_bytes=1_000_000, count=3)  # every try of the run is cut
    failed = hubgate("pull", "--endpoint", primary.url, "--cache-dir", locked / "d", "-q", cwd=locked)
    assert failed.returncode == 1 and "model.safetensors" in failed.stderr
    assert not (locked / "d" / CACHE_BLOB).exists()
    assert (locked / "d" / (CACHE_BLOB + ".hubgate-part")).stat().st_size == 3_000_000
    primary.clear_requests()
    resumed = hubgate("pull", "--endpoint", primary.url, "--cache-dir", locked / "d", "-q", cwd=locked)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["range"] for r in primary.requests(server="cdn")] == ["bytes=3000000-"]
    assert (locked / "d" / CACHE_BLOB).read_bytes() == BIG


def test_corrupted_bytes_never_become_visible(fakes: tuple[FakeHub, FakeHub], locked: Path) -> None:
    primary, secondary = fakes
    primary.fault("corrupt", on=["cdn"])
    failed = hubgate("pull", "--endpoint", primary.url, "--cache-dir", locked / "c", "-q", cwd=locked)
    assert failed.returncode == 1 and "sha256 mismatch" in failed.stderr and "model.safetensors" in failed.stderr
    assert not (locked / "c" / CACHE_BLOB).exists()
    assert not (locked / "c" / "models--hub--model" / "refs").exists()
    done = hubgate("pull", "--endpoint", primary.url, "--endpoint", secondary.url, "--cache-dir", locked / "c", "-q", cwd=locked)
    assert done.returncode == 0, done.stderr
    assert (locked / "c" / CACHE_BLOB).read_bytes() == BIG


def test_large_files_come_in_parallel_ranges(fakes: tuple[FakeHub, FakeHub], locked: Path) -> None:
    primary, _ = fakes
    primary.fault("drop", on=["cdn"], after_bytes=500_000, count=1)
    done = hubgate("pull", "--endpoint", primary.url, "--cache-dir", locked / "c", "--range-size", str(1 << 20), "-q", cwd=locked)
    assert done.returncode == 0, done.stderr
    ranges = [r["range"] for r in primary.requests(server="cdn")]
    assert {f"bytes={i << 20}-{((i + 1) << 20) - 1}" for i in range(8)} <= set(ranges)
    assert len(ranges) == 9  # one range was cut and resumed where it stopped
    assert (locked / "c" / CACHE_BLOB).read_bytes() == BIG


def test_a_file_no_endpoint_has_fails_the_pull_by_name(fakes: tuple[FakeHub, FakeHub], locked: Path) -> None:
    for fake in fakes:
        fake.fault("not_found", on=["resolve"], file="tokenizer.json")
    done = hubgate("pull", "--endpoint", fakes[0].url, "--endpoint", fakes[1].url, "--cache-dir", locked / "c", "-q", cwd=locked)
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "tokenizer.json" in line and "HTTP 404" in line and fakes[0].url in line and fakes[1].url in line, line
    snapshot = next((locked / "c" / "models--hub--model" / "snapshots").iterdir())
    assert (snapshot / "config.json").is_file() and not (snapshot / "tokenizer.json").exists()
    assert not (locked / "c" / "models--hub--model" / "refs").exists()  # the revision is not recorded half-pulled


def test_bad_ranges_fall_back_to_one_good_endpoint(fakes: tuple[FakeHub, FakeHub], locked: Path) -> None:
    primary, secondary = fakes
    primary.fault("corrupt", on=["cdn"], offsets=[3 << 20])
    done = hubgate("pull", "--endpoint", primary.url, "--endpoint", secondary.url, "--cache-dir", locked / "c",
                   "--range-size", str(1 << 20), "-q", cwd=locked)
    assert done.returncode == 0, done.stderr
    assert (locked / "c" / CACHE_BLOB).read_bytes() == BIG
    assert any(r["range"] is None for r in secondary.requests(server="cdn"))  # the whole file, from the good one
