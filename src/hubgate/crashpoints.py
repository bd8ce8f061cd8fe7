"""Crash points, for crash-safety tests only: `HUBGATE_CRASH_AT=name[,name]` makes the server
SIGKILL itself when it reaches one of those named points, as a power cut or an OOM kill would.

Never set it outside tests. Unset (the default), `hit` is one set lookup. To add a point: name it
in `POINTS` and call `crash.hit("name")` where the process may die (the `CrashPoints` object is
built once by the Hub from the settings and handed to the services that need it).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

POINTS = frozenset({
    "blob-written",  # a blob is complete and synced in tmp/, not yet renamed into blobs/
    "lfs-stored",  # an uploaded LFS object is in blobs/, not yet linked to its repo
    "objects-written",  # a commit's git objects are written (same transaction), the branch not yet moved
    "mirror-verified",  # a mirrored file is complete and verified in its part file, not yet published
    "mirror-published",  # a mirrored file is in blobs/, not yet recorded in the mirror's cache
    "gc-swept",  # garbage collection deleted a batch of git objects, not yet links or blobs
    "gc-unlinking",  # garbage collection took a blob out of blobs/, not yet deleted or put back
})


@dataclass(frozen=True)
class CrashPoints:
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, spec: str) -> CrashPoints:
        names = frozenset(name.strip() for name in spec.split(",") if name.strip())
        unknown = names - POINTS
        if unknown:
            raise ValueError(f"unknown crash point(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(POINTS))}")
        return cls(names)

    def hit(self, name: str) -> None:
        if name in self.names:
            os.kill(os.getpid(), signal.SIGKILL)


NO_CRASH = CrashPoints()  # what services get when no crash point is configured
