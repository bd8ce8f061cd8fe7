"""Git blob ids with the standard library only: shared by the server and the light client."""

from __future__ import annotations

import hashlib


def blob_hasher(size: int) -> hashlib._Hash:
    """A SHA-1 primed with git's blob header: feed it the `size` content bytes, read the id."""
    return hashlib.sha1(b"blob %d\0" % size)


def blob_id(data: bytes) -> str:
    hasher = blob_hasher(len(data))
    hasher.update(data)
    return hasher.hexdigest()
