"""Telling "out of a resource right now" (answered 503 with Retry-After) from a bug (500)."""

from __future__ import annotations

import errno

import sqlalchemy.exc

# errno values that mean "out of a resource right now", not "bug": open files, memory, buffers.
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


def out_of_resources(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the process running out of files, memory or database
    connections: answered 503 with Retry-After, never 500."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of causes is short; a cycle must not loop
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in _EXHAUSTED:
            return True
        if isinstance(seen, sqlalchemy.exc.TimeoutError):  # the connection pool is exhausted
            return True
        if isinstance(seen, sqlalchemy.exc.OperationalError) and "unable to open database file" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
