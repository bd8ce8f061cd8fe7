"""/readyz answers 200 while the database and the blob store answer, and 503 naming the one that
does not (so a load balancer takes the replica out), and 200 again once it is back."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import psycopg

from conftest import start_server
from databases import DATABASES, HOST, PORT, USER


def test_readyz_fails_while_the_blob_store_cannot_take_writes(tmp_path: Path) -> None:
    with start_server(tmp_path / "data") as server:
        ready = httpx.get(f"{server.url}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {"database": "ok", "blobs": "ok"}})
        tmp = server.data / "tmp"
        shutil.rmtree(tmp)
        tmp.write_bytes(b"")  # a file where the blob store's temporary folder was
        try:
            failing = httpx.get(f"{server.url}/readyz")
            assert failing.status_code == 503
            assert failing.json() == {"error": "Not ready: blobs failing", "checks": {"database": "ok", "blobs": "failing"}}
            assert failing.headers["Retry-After"] == "5"
            assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive, only not ready
        finally:
            tmp.unlink()
            tmp.mkdir(mode=0o700)
        assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_readyz_fails_while_the_database_refuses_connections(tmp_path: Path) -> None:
    with start_server(tmp_path / "data", database="postgresql") as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        name = DATABASES.urls[(tmp_path / "data").resolve()].rsplit("/", 1)[1]
        with psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                failing = httpx.get(f"{server.url}/readyz", timeout=60)
                assert failing.status_code == 503
                assert failing.json()["checks"] == {"database": "failing", "blobs": "ok"}
            finally:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        assert httpx.get(f"{server.url}/readyz").status_code == 200
