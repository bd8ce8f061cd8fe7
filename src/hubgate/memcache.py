"""In-process caches capped by bytes, not entries: memory stays bounded whatever is cached."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteCache(Generic[K, V]):
    """A thread-safe LRU map holding at most `max_bytes`, as estimated by `weigh(value)`.

    A value heavier than the whole cache is simply not kept.
    """

    def __init__(self, max_bytes: int, weigh: Callable[[V], int]) -> None:
        self._cache: LRUCache[K, V] = LRUCache(maxsize=max(1, max_bytes), getsizeof=lambda v: max(1, weigh(v)))
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock, contextlib.suppress(ValueError):  # larger than the whole cache
            self._cache[key] = value

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._cache

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    @property
    def weight(self) -> int:
        return int(self._cache.currsize)

    def cached(self, load: Callable[[K], V | None]) -> Callable[[K], V | None]:
        """`load` with its results kept here (None is not cached)."""

        def get_or_load(key: K) -> V | None:
            found = self.get(key)
            if found is None:
                found = load(key)
                if found is not None:
                    self.put(key, found)
            return found

        return get_or_load
