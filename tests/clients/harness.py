"""Helpers shared by the client tests: a clean client environment, running the scenario script
in a venv, and reading which requests reached the server from its access log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

SCENARIO = Path(__file__).resolve().parent / "scenario.py"
RESULT_PREFIX = "SCENARIO-RESULT "
# Variables of the calling shell that would change what a client does or whom it talks to.
_DROP = ("HF_", "HUGGING_FACE_", "HUGGINGFACE_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE")
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def client_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a client process: this one's, minus any HF settings, plus a private HF_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    env.update(extra)
    return env


@dataclass
class ScenarioRun:
    returncode: int
    output: str
    result: dict | None

    def describe(self) -> str:
        return f"scenario exited with {self.returncode}; its output:\n{self.output}"


def run_scenario(
    python: Path, endpoint: str, owner_token: str, outsider_token: str, repo_name: str, work: Path, **extra_env: str
) -> ScenarioRun:
    env = client_env(
        endpoint,
        work / "hf-home",
        HUBGATE_URL=endpoint,
        HUBGATE_OWNER_TOKEN=owner_token,
        HUBGATE_OUTSIDER_TOKEN=outsider_token,
        **extra_env,
    )
    done = subprocess.run(
        [str(python), str(SCENARIO), repo_name, str(work)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=work,
    )
    output = done.stdout + ("\n--- stderr ---\n" + done.stderr if done.stderr.strip() else "")
    result = None
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    return ScenarioRun(done.returncode, output, result)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    status: int


def synced_log(server, since: int = 0) -> list[str]:  # type: ignore[no-untyped-def]
    """`server.log[since:]` once every line logged before this call is in it.

    The log is filled by a thread reading the server's output; a marker request is sent and the
    log is polled until its line arrives, so every earlier line has arrived too (with one worker;
    with several, each worker's earlier lines: call it once per worker that served).
    """
    marker = uuid.uuid4().hex
    assert httpx.get(f"{server.url}/healthz", params={"sync": marker}, timeout=30).status_code == 200
    deadline = time.monotonic() + 60  # only guards against a hang; the line normally arrives at once
    while not any(marker in line for line in server.log[since:]):
        assert server.process.poll() is None, "the server exited:\n" + "".join(server.log[-50:])
        assert time.monotonic() < deadline, "the marker request never showed up in the server log"
        time.sleep(0.01)
    return [line for line in server.log[since:] if marker not in line]


def synced_requests(server, since: int = 0) -> list[Request]:  # type: ignore[no-untyped-def]
    """The requests in `server.log[since:]`, once every request made before this call is in it."""
    found = []
    for line in synced_log(server, since):
        match = ACCESS_LINE.search(line)
        if match:
            found.append(Request(match["method"], match["target"], int(match["status"])))
    return found


def upload_paths(
    requests: list[Request], repo_id: str, lfs_oids: list[str], repo_type: str = "model"
) -> dict[str, list[Request]]:
    """The requests that reveal how a client uploaded the files of `repo_id`."""
    git_path = f"/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}.git/info/lfs/objects/"
    api_path = f"/api/{repo_type}s/{repo_id}/"
    return {
        "batch": [r for r in requests if r.target.startswith(git_path + "batch")],
        "put": [
            r
            for r in requests
            if r.target.startswith("/_hubgate/lfs/upload/") and any(oid in r.target for oid in lfs_oids)
        ],
        "verify": [r for r in requests if r.target.startswith(git_path + "verify")],
        "preupload": [r for r in requests if r.target.startswith(api_path + "preupload/")],
        "commit": [r for r in requests if r.target.startswith(api_path + "commit/")],
        "xet": [r for r in requests if r.target.startswith(api_path + "xet-")],
    }
