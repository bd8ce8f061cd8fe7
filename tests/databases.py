"""PostgreSQL databases for test servers: one fresh database per data folder, dropped at the end
of the run, on the PostgreSQL answering on 127.0.0.1:5432 (trust authentication, user postgres).

`HUBGATE_TEST_DATABASE=postgresql` makes every server `start_server` starts use one; a test may
also ask for it (`start_server(..., database="postgresql")`). The hubgate CLI run inside the test
process (`CliRunner`) finds the same database for the same data folder (`route_in_process_cli`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

from hubgate.config import BlobSettings, Settings
from hubgate.config_sources import Layers
from seaweed import KEY, SECRET, server_env
from seaweed import SHARED as SEAWEED

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
KINDS = ("sqlite", "postgresql")


def wanted(database: str | None) -> str:
    """The database kind a server gets: `database`, else HUBGATE_TEST_DATABASE, else sqlite."""
    kind = database or os.environ.get("HUBGATE_TEST_DATABASE") or "sqlite"
    if kind not in KINDS:
        raise ValueError(f"HUBGATE_TEST_DATABASE={kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def _admin() -> psycopg.Connection:
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True, connect_timeout=3)


def unavailable() -> str | None:
    """Why no test can use PostgreSQL here, or None when it answers."""
    try:
        with _admin() as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"no PostgreSQL answers on {HOST}:{PORT} as user {USER} ({str(error).strip().splitlines()[0]})"
    return None


def cli_env(data: Path, database: str | None = None) -> dict[str, str]:
    """What a `hubgate ... --data DATA` subprocess run outside `Server.cli` adds to its environment
    to reach the database and blob store a server on DATA uses (nothing for SQLite and local blobs)."""
    env = {"HUBGATE_DATABASE_URL": DATABASES.url_for(data)} if wanted(database) == "postgresql" else {}
    return {**env, **server_env(data)}


class Databases:
    """The databases this run created, by data folder."""

    def __init__(self) -> None:
        self.urls: dict[Path, str] = {}

    def url_for(self, data: Path) -> str:
        """The database of the data folder `data` (created on first use); skips the test when
        PostgreSQL does not answer."""
        key = data.resolve()
        if key not in self.urls:
            reason = unavailable()
            if reason:
                pytest.skip(reason)
            name = f"hubgate_test_{uuid.uuid4().hex[:12]}"
            with _admin() as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            self.urls[key] = f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{name}"
        return self.urls[key]

    def fresh(self) -> str:
        """A new database tied to no data folder (dropped at the end of the run too)."""
        return self.url_for(Path(f"/nonexistent/{uuid.uuid4().hex}"))

    def drop_all(self) -> None:
        if not self.urls:
            return
        with _admin() as connection:
            for url in self.urls.values():
                connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        self.urls.clear()

    def route_in_process_cli(self) -> None:
        """Make `Settings` read in this process default to the database (and S3 blob store) of their
        data folder, as the servers' environment (HUBGATE_DATABASE_URL, HUBGATE_BLOBS) does for
        their processes."""
        original = Settings.from_layers.__func__  # type: ignore[attr-defined]
        urls, prefixes = self.urls, SEAWEED.prefixes

        def from_layers(cls: type[Settings], layers: Layers) -> Settings:
            settings: Settings = original(cls, layers)
            data = settings.data.resolve()
            if urls.get(data) and not settings.database_url:
                settings = settings.model_copy(update={"database_url": urls[data]})
            if data in prefixes and settings.blobs.backend == "local":
                table = {**SEAWEED.table_for(data), "access_key_id": KEY, "secret_access_key": SECRET}
                settings = settings.model_copy(update={"blobs": BlobSettings(**table)})
            return settings

        Settings.from_layers = classmethod(from_layers)  # type: ignore[method-assign,assignment]


DATABASES = Databases()
DATABASES.route_in_process_cli()
