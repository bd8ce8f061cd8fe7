"""What the server log says: a start-up summary, one access line per request (time, request id,
user), a reason for every refusal, JSON lines on request - and no secret, ever: not a token, not a
presigned signature, not an upstream token or password."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clients.harness import synced_log
from conftest import Server, start_server
from hubgate import __version__, logs
from hubgate.config import Settings

UPSTREAM_TOKEN = "hf_UpstreamServerTokenThatMustNeverBeLogged"
UPSTREAM_PASSWORD = "upstreamPassw0rdNeverLogged"
DATA = b"private weights " * 100


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("logs")
    config = tmp / "hubgate.toml"
    config.write_text(f"[[upstream]]\nname = 'hub'\nurl = 'http://mirror:{UPSTREAM_PASSWORD}@127.0.0.1:9'\n"
                      "token_env = 'LOGS_UPSTREAM_TOKEN'\n")
    with start_server(tmp / "data", "--workers", "2", config=config,
                      env={"LOGS_UPSTREAM_TOKEN": UPSTREAM_TOKEN, "HUBGATE_LFS_THRESHOLD": "100"}) as srv:
        yield srv


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_secret_in_the_log_after_uploads_downloads_and_failed_logins(server: Server) -> None:
    server.add_user("alice")
    token, reader = server.token("alice", "write"), server.token("alice", "read")
    revoked, expired = server.token("alice", "read"), server.token("alice", "read")
    server.cli("token", "revoke", next(line.split()[0] for line in server.cli("token", "list").stdout.splitlines()
                                       if revoked[:7] in line))
    with sqlite3.connect(server.data / "hubgate.db") as db:
        db.execute("UPDATE tokens SET expires_at = '2000-01-01 00:00:00' WHERE prefix = ?", (expired[:7],))
    secrets = [token, reader, revoked, expired, UPSTREAM_TOKEN, UPSTREAM_PASSWORD]

    # an upload, inline and as LFS, and downloads through a presigned URL and with the token
    assert httpx.post(f"{server.url}/api/repos/create", json={"name": "secret", "private": True},
                      headers=auth(token)).status_code == 200
    lines = [{"key": "header", "value": {"summary": "add"}},
             {"key": "file", "value": {"path": "w.bin", "content": base64.b64encode(DATA).decode(), "encoding": "base64"}}]
    committed = httpx.post(f"{server.url}/api/models/alice/secret/commit/main",
                           content="\n".join(json.dumps(line) for line in lines).encode(),
                           headers={**auth(token), "Content-Type": "application/x-ndjson"})
    assert committed.status_code == 200, committed.text
    batch = httpx.post(f"{server.url}/alice/secret.git/info/lfs/objects/batch", headers=auth(token),
                       json={"operation": "download", "objects": [{"oid": hashlib.sha256(DATA).hexdigest(), "size": len(DATA)}]})
    href = batch.json()["objects"][0]["actions"]["download"]["href"]
    signature = re.search(r"[?&]sig=([0-9a-f]+)", href).group(1)  # type: ignore[union-attr]
    secrets.append(signature)
    assert httpx.get(href).content == DATA
    assert httpx.get(f"{server.url}/alice/secret/resolve/main/w.bin", headers=auth(reader)).content == DATA
    # failed logins: unknown, revoked and expired tokens, in the header, as Basic auth and in a query
    for bad in ("hg_UnknownTokenNeverLogged0123456789", revoked, expired):
        assert httpx.get(f"{server.url}/api/whoami-v2", headers=auth(bad)).status_code == 401
    unknown_basic = base64.b64encode(b"git:hg_BasicAuthTokenNeverLogged99").decode()
    assert httpx.get(f"{server.url}/api/whoami-v2", headers={"Authorization": f"Basic {unknown_basic}"}).status_code == 401
    httpx.get(f"{server.url}/api/models/alice/secret?token={token}&access_token={reader}")
    secrets += ["hg_UnknownTokenNeverLogged0123456789", "hg_BasicAuthTokenNeverLogged99", unknown_basic]
    # a refusal for a missing permission: writing with a read token
    assert httpx.post(f"{server.url}/api/repos/create", json={"name": "other"}, headers=auth(reader)).status_code == 403

    log = "".join(synced_log(server)) + "".join(synced_log(server))  # once per worker
    for secret in secrets:
        assert secret not in log
        assert secret[3:] not in log  # not even without its prefix
    # ...yet the log explains: who did what, and why each refusal happened
    access = [line for line in log.splitlines() if " hubgate.access: " in line]
    assert any("user=alice" in line and "/commit/main" in line and '" 200 ' in line for line in access)
    assert all(re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO hubgate.access: \S+ req=\w+ user=", line)
               for line in access), access[:3]
    assert "refused a token: unknown" in log
    # a line logged on a request's behalf carries its id, so it can be matched with the access line
    traced = re.search(r"hubgate.auth: refused a token: unknown req=(\w+)", log)
    assert traced and re.search(rf'req={traced[1]} user=- "GET /api/whoami-v2 HTTP/1.1" 401', log)
    assert re.search(r"refused token \d+: revoked", log) and re.search(r"refused token \d+: expired", log)
    assert re.search(r'user=alice "POST /api/repos/create HTTP/1.1" 403 .* refused="This token is read-only', log)
    assert 'refused="Invalid credentials in Authorization header"' in log


def test_start_up_summary(server: Server) -> None:
    summary = next(line for line in server.log if "starting hubgate" in line)
    s3 = json.loads(server.env.get("HUBGATE_BLOBS", "{}"))  # the run's SeaweedFS (HUBGATE_TEST_BLOBS=s3)
    blob_store = (f"blob store s3://{s3['bucket']}/{s3.get('prefix', '')} at {s3['endpoint_url']}" if s3
                  else f"blob store {server.data}/blobs")
    assert "blobs" not in blob_store or "s3://" not in summary
    for part in (f"version {__version__}", f"data {server.data}", f"database sqlite:///{server.data.resolve()}/hubgate.db",
                 blob_store, f"server key {server.data.absolute()}/secret.key", "config /", "upstreams hub=http://mirror:***@127.0.0.1:9 "
                 "(token from $LOGS_UPSTREAM_TOKEN)", "offline no", "workers 2", "listen 127.0.0.1:0"):
        assert part in summary, (part, summary)


def test_request_ids(server: Server) -> None:
    mine = httpx.get(f"{server.url}/healthz", headers={"X-Request-Id": "client-abc-123"})
    assert mine.headers["X-Request-Id"] == "client-abc-123"
    generated = httpx.get(f"{server.url}/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    # an id the log would not take is not echoed either: the answer names the id the log uses
    odd = httpx.get(f"{server.url}/healthz", headers={"X-Request-Id": "not an id <script>"}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", odd)
    both = httpx.get(f"{server.url}/healthz", headers={"X-Request-Id": "id-one", "X-Amzn-Trace-Id": "Root=1-2-3"})
    assert both.headers["X-Request-Id"] == "id-one"
    log = "".join(synced_log(server)) + "".join(synced_log(server))
    assert "req=client-abc-123 " in log and f"req={generated} " in log and f"req={odd} " in log
    assert "req=id-one " in log


def test_json_logs_and_level(tmp_path: Path) -> None:
    with start_server(tmp_path / "data", "--log-format", "json") as srv:
        assert httpx.get(f"{srv.url}/api/whoami-v2", headers=auth("hg_nope")).status_code == 401
        lines = synced_log(srv)
    records = [json.loads(line) for line in lines if line.strip()]  # every line is a JSON object
    startup = next(r for r in records if r["logger"] == "hubgate.server")
    assert startup["startup"]["version"] == __version__ and startup["startup"]["workers"] == 1
    refused = next(r for r in records if r["logger"] == "hubgate.access" and r.get("status") == 401)
    reason = next(r for r in records if r["message"] == "refused a token: unknown")
    assert reason["request_id"] == refused["request_id"]
    assert refused["refused"] == "Invalid credentials in Authorization header"
    assert refused["time"].endswith("Z") and refused["request_id"] and refused["user"] is None


def test_log_level_applies_to_every_logger(tmp_path: Path) -> None:
    settings = Settings.load(data=tmp_path / "data", log_level="warning")
    config = logs.config_dict(settings)
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.error"]["level"] == "WARNING"
    assert logs.config_dict(Settings.load(data=tmp_path / "data", log_level="trace"))["root"]["level"] == logs.TRACE


def test_front_page(server: Server) -> None:
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"hubgate {__version__}" in page.text and 'href="/healthz"' in page.text


def test_upstream_failures_are_for_the_log_not_the_client(server: Server) -> None:
    answer = httpx.get(f"{server.url}/api/models/some-org/some-model")  # the only upstream refuses connections
    assert answer.status_code == 503
    assert answer.json() == {"error": "Upstream unavailable: cannot get some-org/some-model"}
    for detail in ("127.0.0.1:9", "mirror", "Connect", "refused", "hub:"):
        assert detail not in answer.text and detail not in answer.headers.get("X-Error-Message", "")
    log = "".join(synced_log(server)) + "".join(synced_log(server))
    assert re.search(r"WARNING hubgate.mirror: upstream unavailable for some-org/some-model: hub", log)


SIGNED = "https://cdn.example/blob?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=0123abcdSecretSig&sig=ffeeSecret"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_logger_is_scrubbed_even_of_exception_objects(tmp_path: Path, log_format: str) -> None:
    """Any logger (not only uvicorn's), exception objects as arguments, tracebacks and extra fields."""
    script = f"""
import logging
from hubgate import logs
from hubgate.config import Settings
logs.configure(Settings.load(data={str(tmp_path / "data")!r}, log_format={log_format!r}))
failure = OSError("fetch of {SIGNED} failed")
logging.getLogger("hubgate.mirror").warning("fetch broke: %s", failure)
logging.getLogger("hubgate.http").warning("upstream %s failed: %r", "up0", failure, extra={{"url": {SIGNED!r}}})
try:
    raise failure
except OSError:
    logging.getLogger("somewhere.else").exception("unexpected")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr.count("X-Amz-Signature=REDACTED") >= 3, done.stderr  # logged, and scrubbed
    for secret in ("0123abcdSecretSig", "AKIAEXAMPLE", "ffeeSecret"):
        assert secret not in done.stderr, done.stderr
