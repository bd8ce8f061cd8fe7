"""Everything that differs between the two databases hubgate's metadata runs on, in one place.

SQLite (the embedded default) and PostgreSQL (replicas) get: their engine set up (`create`), one
process at a time migrating (`migrating`), their own `INSERT ... ON CONFLICT` (`insert_for`), and a
lock on chosen rows until the transaction ends (`lock_rows`). Other modules never look at the
dialect's name.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, create_engine, event, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

POSTGRESQL, SQLITE = "postgresql", "sqlite"
_INSERTS = {POSTGRESQL: postgresql.insert, SQLITE: sqlite.insert}


def _kind(bind: Engine | Connection) -> str:
    name = bind.dialect.name
    if name not in _INSERTS:
        raise NotImplementedError(f"hubgate's metadata runs on SQLite or PostgreSQL, not {name}")
    return name


def create(url: str, pool_size: int) -> Engine:
    """An engine on `url`: PostgreSQL through psycopg with a 10 s connect timeout (a database that
    does not answer fails a request, and /readyz, in seconds); SQLite in WAL mode with a 30 s
    busy timeout, its folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == SQLITE and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.drivername == POSTGRESQL:  # the driver hubgate depends on, not SQLAlchemy's default (psycopg2)
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() == POSTGRESQL else {}
    engine = create_engine(parsed, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args)
    if _kind(engine) == SQLITE:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def migrating(engine: Engine, key: int) -> Iterator[Connection]:
    """A transaction no other process runs alongside (whoever else enters waits): on PostgreSQL a
    transaction-level advisory lock numbered `key`; on SQLite an exclusive lock file next to the
    database (taken before the transaction, so waiting never holds SQLite's own locks)."""
    lock_file = engine.url.database + ".migrate.lock" if _kind(engine) == SQLITE and engine.url.database else None
    with _flocked(lock_file), engine.begin() as connection:
        if _kind(engine) == POSTGRESQL:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield connection


@contextmanager
def _flocked(path: str | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def insert_for(session: Session) -> Callable[..., Any]:
    """The dialect's `insert` (which has `on_conflict_do_update` / `on_conflict_do_nothing`)."""
    return _INSERTS[_kind(session.connection())]


def lock_rows(session: Session, column: Any, where: ColumnElement[bool], *, shared: bool) -> None:
    """Lock the rows of `column`'s table matching `where` until the transaction ends; `shared`
    holders do not wait for each other, an exclusive one waits for and blocks all. PostgreSQL:
    `SELECT ... FOR SHARE` / `FOR UPDATE`. SQLite has no row locks, only one writer at a time:
    a write that changes nothing takes its write lock, exclusive either way."""
    if _kind(session.connection()) == POSTGRESQL:
        session.execute(select(column).where(where).with_for_update(read=shared))
    else:
        session.execute(update(column.class_).where(where).values({column.key: column}))
