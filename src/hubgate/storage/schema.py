"""Bring a metadata database to the current schema with Alembic, once, whoever starts first.

The server's workers and the admin CLI may start together on one data folder: an exclusive lock
file next to the database makes them migrate one after the other (the later ones find nothing
to do).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


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


def upgrade(engine: Engine, lock_path: Path | None = None) -> None:
    config = alembic_config()
    with _exclusive(lock_path), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
