"""Failed authentications counted per client address in the database (so across every worker
process), in fixed windows; past the limit the address is answered the Hub's 429 until the
window ends."""

from __future__ import annotations

import math
import time

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from hubgate.errors import TooManyRequests
from hubgate.storage.metadata import AuthFailures, MetadataStore


class FailureThrottle:
    def __init__(self, metadata: MetadataStore, max_failures: int, window: float) -> None:
        self.metadata = metadata
        self.max_failures = max_failures
        self.window = window

    def check(self, client: str | None) -> None:
        """TooManyRequests if this address used up its failures for the current window."""
        if not self.max_failures or not client:
            return
        now = time.time()
        with self.metadata.session() as session:
            row = session.get(AuthFailures, client[:64])
            if row is None or now - row.window_start >= self.window or row.count < self.max_failures:
                return
            wait = max(1, math.ceil(row.window_start + self.window - now))
        raise TooManyRequests(
            f"Too many failed authentications from this address; try again in {wait} seconds", retry_after=wait
        )

    def failed(self, client: str | None) -> None:
        if not self.max_failures or not client:
            return
        now, key = time.time(), client[:64]
        current = AuthFailures.window_start > now - self.window
        try:
            with self.metadata.session() as session:  # one statement each: no lost update between workers
                counted = session.execute(
                    update(AuthFailures).where(AuthFailures.client == key, current).values(count=AuthFailures.count + 1)
                )
                if not counted.rowcount:  # type: ignore[attr-defined]
                    session.execute(delete(AuthFailures).where(AuthFailures.client == key))
                    session.add(AuthFailures(client=key, window_start=now, count=1))
                # old windows of other addresses go, so the table stays as small as the active ones
                session.execute(delete(AuthFailures).where(AuthFailures.window_start < now - 10 * self.window))
        except IntegrityError:  # another worker opened this address's window just now: count in it
            with self.metadata.session() as session:
                session.execute(update(AuthFailures).where(AuthFailures.client == key).values(count=AuthFailures.count + 1))
