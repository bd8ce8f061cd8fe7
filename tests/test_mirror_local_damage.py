"""Damage to a part file on local disk is not the upstream's fault (issue 6, item 12): after a kill -9
mid-fetch and a flipped byte, a restarted server discards the part file it cannot verify, and the
first request gets the right file from the upstream."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from clients.harness import synced_log
from conftest import start_server
from fakehub import FakeHub
from test_crash_safety import BIG_SHA, upstream  # noqa: F401 - the fixture: hub/model with a 6 MiB file

URL = "/hub/model/resolve/main/model.safetensors"


def part_files(data: Path) -> list[Path]:
    return list((data / "tmp").glob("fetch-*.part"))


def fetch(url: str) -> tuple[int, bytes] | None:
    """(status, body) of a complete answer; None when the answer broke off."""
    try:
        response = httpx.get(url, timeout=60)
    except httpx.HTTPError:
        return None
    return response.status_code, response.content


def test_damaged_part_file_is_not_blamed_on_the_upstream(upstream: tuple[FakeHub, Path], tmp_path: Path) -> None:
    fake, config = upstream
    data = tmp_path / "data"
    fake.fault("throttle", on=["cdn"], bytes_per_second=1_000_000)
    with start_server(data, config=config) as srv:
        reader = threading.Thread(target=lambda: fetch(srv.url + URL), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size >= 2 * 1024 * 1024 for p in part_files(data)):
            assert time.monotonic() < deadline, "the part file never filled"
            time.sleep(0.05)
        os.killpg(srv.process.pid, signal.SIGKILL)
        srv.process.wait(timeout=30)
        reader.join(timeout=60)
    [part] = part_files(data)
    with part.open("r+b") as handle:  # local damage: one byte flipped
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    fake.reset()
    with start_server(data, config=config) as again:
        assert part_files(data) == []  # it could not be verified: discarded at start
        first = fetch(again.url + URL)  # the upstream serves the file fine: so must we, at once
        assert first is not None, "the answer broke off"
        status, body = first
        assert status == 200 and hashlib.sha256(body).hexdigest() == BIG_SHA, (status, len(body))
        log = "".join(synced_log(again))
        assert "Traceback" not in log, log[-4000:]


def test_blamed_upstream_gets_an_error_answer_not_an_empty_200(upstream: tuple[FakeHub, Path], tmp_path: Path) -> None:
    fake, config = upstream
    fake.fault("corrupt", on=["cdn"], sha256=BIG_SHA)  # the only upstream sends bad bytes: it is blamed
    with start_server(tmp_path / "data", config=config) as srv:
        assert fetch(srv.url + URL) is None  # the bad transfer breaks off
        answer = fetch(srv.url + URL)  # nobody is left to send the file: say so, promise no length
        assert answer is not None, "the answer broke off"
        assert 500 <= answer[0] < 600 and answer[0] != 500, answer[0]
        log = "".join(synced_log(srv))
        assert "Traceback" not in log, log[-3000:]
