"""Garbage collection and the writers that reuse stored objects take turns.

A writer that makes a new reference to something already stored (a commit building on existing git
objects or naming an uploaded LFS object, a new branch at an existing commit) calls `hold_off_gc`
first in its transaction; the collector's sweeping transactions call `exclude_writers`. Each sweep
then sees either the writer's whole transaction or none of it, and a writer that comes after a
sweep finds the collected objects gone (and fails or re-creates them) instead of pointing at them.
Both lock the `maintenance` row of `gc` (`storage.dialects.lock_rows`): writers a shared lock, so
they do not wait for each other on PostgreSQL, the collector an exclusive one (SQLite, having one
writer at a time, serialises both anyway).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hubgate.storage.dialects import lock_rows
from hubgate.storage.metadata import Maintenance

GC = "gc"


def hold_off_gc(session: Session) -> None:
    lock_rows(session, Maintenance.name, Maintenance.name == GC, shared=True)


def exclude_writers(session: Session) -> None:
    lock_rows(session, Maintenance.name, Maintenance.name == GC, shared=False)
