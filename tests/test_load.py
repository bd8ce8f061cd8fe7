"""A bounded load of slow and never-reading clients (issue 6, item 7): RSS stays flat across waves, open
files stay under the limit and go back down, health checks keep answering, nothing answers 500.

The mix is bench/slowclients.py's (that script measures it bigger); HUBGATE_LONG_LOAD=1 runs a longer
variant here too.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from slowclients import MIB, run_mix, start_target  # noqa: E402

SHORT = {"addresses": 4, "per_address": 20, "rounds": 3, "hold": 2.0, "nofile": 100, "size": 16 * MIB}
LONG = {"addresses": 8, "per_address": 40, "rounds": 8, "hold": 6.0, "nofile": 512, "size": 64 * MIB}


@pytest.mark.parametrize("mix", [
    pytest.param(SHORT, id="short"),
    pytest.param(LONG, id="long", marks=pytest.mark.skipif(not os.environ.get("HUBGATE_LONG_LOAD"),
                                                          reason="set HUBGATE_LONG_LOAD=1 for the long load run")),
])
def test_slow_and_never_reading_clients(mix: dict) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hubgate-load-"))
    server = None
    try:
        server, big, small = start_target(folder / "data", timeout=1.5, nofile=mix["nofile"], size=mix["size"])
        figures = run_mix(server.url, server.process.pid, big, small, addresses=mix["addresses"],
                          per_address=mix["per_address"], rounds=mix["rounds"], hold=mix["hold"], settle=10)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nload run: {figures}")  # the counts, for the record (pytest -s)
    answers = figures.statuses
    assert figures.connections == mix["addresses"] * mix["per_address"] * mix["rounds"]
    assert not [k for k in answers if k.endswith(":500")], answers
    assert {k.split(":")[1] for k in answers if k.startswith("never_reading:")} <= {"200", "503"}, answers
    assert answers["slowloris:408"] > 0, answers  # heads that never end are timed out
    assert set(figures.checks) <= {200, 503} and figures.checks[200] > 0, figures.checks
    assert figures.check_errors == 0 and figures.slowest_check < 5, figures
    assert figures.files_peak <= mix["nofile"], figures
    assert figures.files_after <= figures.files_idle + 32, figures  # (the database pool: <= 15 connections x 2 files)
    assert figures.rss_rounds[-1] - figures.rss_rounds[0] < 16 * MIB, figures.rss_rounds  # flat across waves
    assert figures.rss_peak - figures.rss_idle < 128 * MIB, figures
