"""Bring a metadata database to the current schema with Alembic, once, whoever starts first.

The server's workers, the admin CLI and other replicas may start together on one database: they
migrate one after the other (the later ones find nothing to do). SQLite takes an exclusive lock
file next to the database; PostgreSQL a transaction-level advisory lock, held until the migration
commits (its DDL is transactional, so a crash mid-way leaves the schema as it was).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The key of PostgreSQL's advisory lock for migrations (any constant 64-bit number, hubgate's own).
MIGRATION_LOCK = 0x6875_6267_6174_65  # "hubgate"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextmanager
def _exclusive(lock_path: Path | None) -> Iterator[None]:
    if lock_path is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def upgrade(engine: Engine, lock_path: Path | None = None) -> bool:
    """Migrate to the newest revision; False when the database already had it."""
    config = alembic_config()
    with _exclusive(lock_path), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        if _current(connection) == ScriptDirectory.from_config(config).get_current_head():
            return False
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return True


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
