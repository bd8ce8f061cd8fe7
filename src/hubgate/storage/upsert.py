"""Insert-or-update in one statement, whichever database holds the metadata.

SQLite and PostgreSQL both speak `INSERT ... ON CONFLICT`; SQLAlchemy builds it from each
dialect's own `insert` (`storage.dialects.insert_for` picks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from hubgate.storage.dialects import insert_for
from hubgate.storage.metadata import Base

Row = Mapping[str, Any]
# What a conflicting row gets: None copies every given column but the keys from the new row,
# a list names the columns to copy, and a mapping sets columns to expressions.
Updates = Sequence[str] | Mapping[str, Any] | None


def upsert(session: Session, model: type[Base], rows: Row | Sequence[Row], keys: Sequence[str], updates: Updates = None,
           where: Any = None) -> None:
    """Insert `rows` (one or many) into `model`'s table; a row whose `keys` exist is updated as
    `updates` says (only if it matches `where`, when given: else it is left alone). Many rows go as
    one executemany (batched by SQLAlchemy)."""
    many = [rows] if isinstance(rows, Mapping) else list(rows)
    if not many:
        return
    statement = insert_for(session)(model)
    if isinstance(updates, Mapping):
        values = dict(updates)
    else:
        names = [name for name in many[0] if name not in keys] if updates is None else list(updates)
        values = {name: statement.excluded[name] for name in names}
    session.connection().execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values, where=where), many)


def insert_missing(session: Session, model: type[Base], rows: Sequence[Row]) -> None:
    """Insert the `rows` whose primary key is not there yet; leave existing rows alone."""
    if rows:
        session.connection().execute(insert_for(session)(model).on_conflict_do_nothing(), list(rows))
