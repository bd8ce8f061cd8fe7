"""No mixed files: after the mirror finds that bytes it streamed were bad, every way a real client
continues ends with the correct file or a clear failure.

The fake primary upstream flips one byte early in a 24 MiB LFS file (its headers still advertise
the true SHA-256); the secondary serves it intact. Client behaviours checked here:
- huggingface_hub 1.33.0 and 2.4.0 resume a broken download in the same run with
  `Range: bytes=N-` (N a multiple of their 10 MiB write chunk); 0.36.2 resumes only after
  connection errors, so a body cut short ends its run and the next run continues the
  `.incomplete` file with `Range`. All three start over from zero when answered 200 (read in
  their `http_get`) and never hash what they downloaded (1.x and 2.4.0 download to a file unique
  to the run and delete it on failure; 0.36 keeps `.incomplete` files between runs);
- `curl -C -` resumes with `Range: bytes=N-` and stops with exit code 33 when answered 200;
- aria2c 1.36 (as hfd runs it: `-x 4 -s 4`, a `.aria2` control file) reads its first request (no
  Range) as the first segment and keeps every piece any of its answers delivered, even from an
  answer that then breaks; it ignores `Accept-Ranges`, aborts a connection whose Range is answered
  200 (exit code 8 when none is left), and retries a broken segment from where it stopped. So it
  finishes only if some answer covering the last pieces completes: none may, once the file was
  found bad while that answer ran.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clients.harness import client_env
from conftest import Server
from fakehub import FakeHub, make_large_file, start_fakehub
from test_client_matrix import client_venvs, venv_for  # noqa: F401 - fixture reuse
from test_mirror_faults import mirror_of

SIZE = 24 * 1024 * 1024
BAD_AT = 1_000_000  # the byte the primary flips: inside every client's first write chunk
REPO = "hub/big"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = make_large_file(tmp_path_factory.mktemp("weights") / "model.safetensors", SIZE, seed=7)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory, weights: tuple[Path, str]) -> Iterator[tuple[FakeHub, FakeHub]]:
    primary = start_fakehub(tmp_path_factory.mktemp("primary"), xet=False)
    secondary = start_fakehub(tmp_path_factory.mktemp("secondary"), xet=False)
    for fake in (primary, secondary):
        fake.add_repo(REPO, {"model.safetensors": weights[0], "config.json": '{"layers": 2}'}, xet=False)
    yield primary, secondary
    primary.stop()
    secondary.stop()


@pytest.fixture()
def mirror(tmp_path: Path, fakes: tuple[FakeHub, FakeHub], weights: tuple[Path, str]) -> Iterator[Server]:
    for fake in fakes:
        fake.reset()
    fakes[0].fault("corrupt", on=["cdn"], sha256=weights[1], offsets=[BAD_AT])
    srv = mirror_of(tmp_path, *fakes)
    yield srv
    srv.stop()
    for fake in fakes:
        fake.reset()


def url(mirror: Server, path: str = "model.safetensors") -> str:
    return f"{mirror.url}/{REPO}/resolve/main/{path}"


def broken_download(mirror: Server) -> bytes:
    """What a client gets from the first, corrupted transfer: a prefix, then a broken connection."""
    got = bytearray()
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("GET", url(mirror), timeout=60) as response:
            assert response.status_code == 200
            for piece in response.iter_raw():
                got += piece
    return bytes(got)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_resume_after_bad_bytes_gets_the_whole_file(mirror: Server, weights: tuple[Path, str]) -> None:
    good = weights[0].read_bytes()
    prefix = broken_download(mirror)
    assert len(prefix) > BAD_AT and prefix[BAD_AT] != good[BAD_AT]  # bad bytes did reach the client
    resumed = httpx.get(url(mirror), headers={"Range": f"bytes={len(prefix)}-"}, timeout=60)
    assert resumed.status_code == 200 and resumed.content == good  # start over, never append
    assert "content-range" not in resumed.headers
    # The mirror cannot tell whose prefix a Range continues: only a range from byte 0 is honoured.
    head = httpx.get(url(mirror), headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and head.content == good[:100]
    later = httpx.get(url(mirror), headers={"Range": f"bytes={SIZE - 10}-"})
    assert later.status_code == 200 and later.content == good
    status = httpx.get(f"{mirror.url}/api/mirror/status", headers=mirror.admin_headers()).json()
    assert status["cache"]["integrityErrors"] == 1


def test_if_range_with_another_validator_gets_the_whole_file(mirror: Server) -> None:
    first = httpx.get(url(mirror, "config.json"))
    etag = first.headers["etag"]
    same = httpx.get(url(mirror, "config.json"), headers={"Range": "bytes=2-", "If-Range": etag})
    assert same.status_code == 206 and same.content == first.content[2:]
    for validator in ('"0000000000000000000000000000000000000000"', "Tue, 01 Dec 2026 10:00:00 GMT"):
        other = httpx.get(url(mirror, "config.json"), headers={"Range": "bytes=2-", "If-Range": validator})
        assert other.status_code == 200 and other.content == first.content


def test_a_range_from_a_bad_transfer_never_completes(mirror: Server, weights: tuple[Path, str]) -> None:
    """A closed range (as parallel downloaders ask) holds its last bytes until the whole file verifies."""
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("GET", url(mirror), headers={"Range": f"bytes=0-{2 * BAD_AT}"}, timeout=60) as response:
            assert response.status_code == 206
            for _ in response.iter_raw():
                pass
    good = weights[0].read_bytes()
    again = httpx.get(url(mirror), headers={"Range": f"bytes=0-{2 * BAD_AT}"}, timeout=60)
    assert again.status_code == 206 and again.content == good[: 2 * BAD_AT + 1]


HF_DOWNLOAD = """
import hashlib, sys
from huggingface_hub import hf_hub_download
try:
    path = hf_hub_download(sys.argv[1], sys.argv[2])
except Exception as exc:
    print("DOWNLOAD-FAILED", type(exc).__name__, exc)
    sys.exit(3)
print("SHA256", hashlib.sha256(open(path, "rb").read()).hexdigest())
"""


def hf_download(python: Path, mirror: Server, home: Path) -> tuple[int, str, str | None]:
    done = subprocess.run([str(python), "-c", HF_DOWNLOAD, REPO, "model.safetensors"], capture_output=True, text=True,
                          env=client_env(mirror.url, home, HF_HUB_DISABLE_XET="1"), timeout=300, check=False)
    output = done.stdout + done.stderr
    sha = next((line.split()[1] for line in done.stdout.splitlines() if line.startswith("SHA256 ")), None)
    return done.returncode, output, sha


def incomplete_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*.incomplete") if p.stat().st_size > 0]


@pytest.mark.clients
@pytest.mark.parametrize("version", ["0.36.2", "1.33.0", "2.4.0"])
def test_hf_clients_resuming_a_bad_transfer_end_with_the_right_file(
    version: str, client_venvs, mirror: Server, weights: tuple[Path, str], tmp_path: Path  # noqa: F811
) -> None:
    python, home = venv_for(client_venvs, version).python, tmp_path / "home"
    code, output, sha = hf_download(python, mirror, home)
    if version == "0.36.2":
        # 0.36 resumes only after connection errors, not after a body cut short (ChunkedEncodingError):
        # the run fails and its .incomplete file is continued by the next run.
        assert code != 0 and "ChunkedEncodingError" in output, output
        assert incomplete_files(home), output
        code, output, sha = hf_download(python, mirror, home)
    else:
        assert "Trying to resume" in output, output  # the same run continued after the broken transfer
    assert code == 0 and sha == weights[1], output


@pytest.mark.clients
def test_a_run_that_cannot_finish_fails_clearly_and_the_next_one_is_right(
    client_venvs, mirror: Server, fakes, weights: tuple[Path, str], tmp_path: Path  # noqa: F811
) -> None:
    _, secondary = fakes
    secondary.fault("status", status=503, on=["cdn"])  # after the bad transfer, no upstream can send the file
    python = venv_for(client_venvs, "2.4.0").python
    code, output, _ = hf_download(python, mirror, tmp_path / "home")
    # The resume is answered with the upstream's refusal (a 503 before any byte), not a 200 that breaks.
    assert code != 0 and "503" in output and "Trying to resume" in output, output
    assert "X-Amz-Signature" not in output  # presigned upstream URLs never reach clients
    assert not [p for p in (tmp_path / "home").rglob("blobs/*") if not p.name.endswith(".incomplete")]
    secondary.reset()
    code, output, sha = hf_download(python, mirror, tmp_path / "home")
    assert code == 0 and sha == weights[1], output


def test_curl_resume_of_a_bad_transfer_fails_clearly(mirror: Server, weights: tuple[Path, str], tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    out = tmp_path / "model.safetensors"
    first = subprocess.run([curl, "-sS", "-o", str(out), url(mirror)], capture_output=True, timeout=120, check=False)
    assert first.returncode != 0 and 0 < out.stat().st_size < SIZE
    resumed = subprocess.run([curl, "-sS", "-C", "-", "-o", str(out), url(mirror)], capture_output=True, timeout=120, check=False)
    assert resumed.returncode == 33, resumed.stderr  # "HTTP server doesn't seem to support byte ranges"
    assert sha256_of(out) != weights[1] and out.stat().st_size < SIZE  # nothing was appended
    out.unlink()
    fresh = subprocess.run([curl, "-sS", "-o", str(out), url(mirror)], capture_output=True, timeout=120, check=False)
    assert fresh.returncode == 0 and sha256_of(out) == weights[1]


def test_aria2c_parallel_ranges_end_with_the_right_file_or_fail(mirror: Server, weights: tuple[Path, str], tmp_path: Path) -> None:
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.skip("aria2c is not installed (apt-get install aria2)")
    command = [aria2c, "-x", "4", "-s", "4", "-k", "1M", "-c", "--max-tries=2", "--retry-wait=1",
               "--console-log-level=error", "--summary-interval=0", "-d", str(tmp_path), "-o", "model.safetensors", url(mirror)]
    out = tmp_path / "model.safetensors"
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode != 0 or sha256_of(out) == weights[1], first.stdout  # never a mixed file reported as done
    if first.returncode != 0:
        # Run again, as hfd does: aria2c continues from its control file with Range requests,
        # which the mirror answers with the whole file; aria2c refuses that (exit code 8).
        again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 8 and "resume" in again.stdout.lower(), again.stdout
        for leftover in tmp_path.glob("model.safetensors*"):
            leftover.unlink()
        fresh = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert fresh.returncode == 0 and sha256_of(out) == weights[1], fresh.stdout
