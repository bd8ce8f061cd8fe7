"""Bring a metadata database to the current schema with Alembic, once, whoever starts first.

The server's workers, the admin CLI and other replicas may start together on one database: they
migrate one after the other (the later ones find nothing to do): `storage.dialects.migrating`
(SQLite: an exclusive lock file next to the database; PostgreSQL: a transaction-level advisory
lock, held until the migration commits; its DDL is transactional, so a crash mid-way leaves the
schema as it was).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from hubgate.storage.dialects import migrating

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The key of PostgreSQL's advisory lock for migrations (any constant 64-bit number, hubgate's own).
MIGRATION_LOCK = 0x6875_6267_6174_65  # "hubgate"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> bool:
    """Migrate to the newest revision; False when the database already had it."""
    config = alembic_config()
    with migrating(engine, MIGRATION_LOCK) as connection:
        if _current(connection) == ScriptDirectory.from_config(config).get_current_head():
            return False
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return True


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
