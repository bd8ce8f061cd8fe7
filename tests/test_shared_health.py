"""Upstream health is one record shared by every process, merged field by field: a process that
sees only failures does not erase another's successes, and the other way round."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from hubgate.cli import app as cli_app

OBSERVER = textwrap.dedent("""
    import sys
    from hubgate.config import Settings
    from hubgate.hub import Hub

    hub = Hub(Settings.load(data=sys.argv[1], config=sys.argv[2]))
    health = hub.mirror.upstreams.all[0].health
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "ok":
            health.ok(0.05)
        else:
            health.failed("ConnectError: refused by " + line.strip())
        print("done", flush=True)
    hub.close()
""")


def test_two_processes_interleaved_successes_and_failures_both_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "hubgate.toml"
    config.write_text("[[upstream]]\nname = 'hub'\nurl = 'http://127.0.0.1:9'\n")
    assert CliRunner().invoke(cli_app, ["user", "add", "ops", "--data", str(data)]).exit_code == 0  # the instance
    server, cli = (subprocess.Popen([sys.executable, "-c", OBSERVER, str(data), str(config)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True) for _ in range(2))
    try:
        for process in (server, cli):
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"

        def tell(process: subprocess.Popen[str], command: str) -> None:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(command + "\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "done"  # recorded before the other one goes

        for round_ in range(3):  # the "server" only succeeds, the "CLI" only fails, taking turns
            tell(server, "ok")
            tell(cli, f"cli-{round_}")
        status = _status(data, config)
        assert status["lastSuccess"] is not None  # the failures did not erase the successes
        assert status["lastError"] == "ConnectError: refused by cli-2"
        assert status["latencyMs"] == 50.0
        assert status["healthy"] is False  # the newest observation is a failure
    finally:
        for process in (server, cli):
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=60)


def _status(data: Path, config: Path) -> dict:
    result = CliRunner().invoke(cli_app, ["mirror", "status", "--data", str(data), "--config", str(config)])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["upstreams"][0]
