"""hubgate on PostgreSQL + S3: the tests of tests/test_postgresql.py that run on any store (the
API, mirror, access, token and Xet tests it borrows, and its own checks of where metadata and
blobs live) again, with every server's blobs under a key prefix of its own in the run's SeaweedFS.

A module of its own so that a parallel run (pytest-xdist, by file) takes it on another worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import test_postgresql

# Everything test_postgresql.py collects (its tests, the ones it borrows, their fixtures) but what
# only PostgreSQL concerns: the migration lock, and the plain-copy test, which keeps local blobs.
POSTGRESQL_ONLY = {"stores", "test_concurrent_starts_migrate_once_under_the_advisory_lock",
                   "test_a_plain_download_keeps_a_copy_the_next_one_is_served_from", "hub"}
globals().update({name: value for name, value in vars(test_postgresql).items()
                  if not name.startswith("__") and name not in POSTGRESQL_ONLY})


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[str]:
    yield from test_postgresql.use_stores("postgresql+s3")
