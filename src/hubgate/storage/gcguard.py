"""Garbage collection and the writers that reuse stored objects take turns.

A writer that makes a new reference to something already stored (a commit building on existing git
objects or naming an uploaded LFS object, a new branch at an existing commit) calls `hold_off_gc`
first in its transaction; the collector's sweeping transactions call `exclude_writers`. Each sweep
then sees either the writer's whole transaction or none of it, and a writer that comes after a
sweep finds the collected objects gone (and fails or re-creates them) instead of pointing at them.
SQLite serialises writing transactions anyway (both take its write lock); PostgreSQL gets a shared
and an exclusive row lock on the `maintenance` row of `gc`, so writers do not wait for each other.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hubgate.storage.metadata import Maintenance

GC = "gc"


def hold_off_gc(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Maintenance.name).where(Maintenance.name == GC).with_for_update(read=True))
    else:
        _write_lock(session)


def exclude_writers(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Maintenance.name).where(Maintenance.name == GC).with_for_update())
    else:
        _write_lock(session)


def _write_lock(session: Session) -> None:
    # A write that changes nothing: SQLite's write lock from here to the end of the transaction.
    session.execute(update(Maintenance).where(Maintenance.name == GC).values(name=Maintenance.name))
